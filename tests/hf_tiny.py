"""Tiny randomly initialised sequence classifiers for tests: one per architecture family, built offline from the
config classes with a tokenizer trained by the `tokenizers` library on a slice of the corpus."""

from __future__ import annotations

import json
from pathlib import Path

ARCHITECTURES = ("bert", "distilbert", "roberta", "albert", "xlm-roberta")
SIZE = {"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64, "positions": 160, "vocab": 1000}


def corpus_texts(path: Path, n: int = 2000) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(n), f)]


def _wordpiece(texts):
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.processors import BertProcessing
    from transformers import PreTrainedTokenizerFast

    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(texts, vocab_size=SIZE["vocab"], min_frequency=2,
                            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    inner = tok._tokenizer  # the post-processor is only set when the vocab exists: add [CLS] ... [SEP] here
    inner.post_processor = BertProcessing(("[SEP]", inner.token_to_id("[SEP]")), ("[CLS]", inner.token_to_id("[CLS]")))
    return PreTrainedTokenizerFast(tokenizer_object=inner, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _roberta_like(texts, unigram: bool):
    from tokenizers import ByteLevelBPETokenizer, SentencePieceUnigramTokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    if unigram:  # XLM-RoBERTa uses a SentencePiece unigram model
        tok = SentencePieceUnigramTokenizer()
        tok.train_from_iterator(texts, vocab_size=SIZE["vocab"], special_tokens=specials, unk_token="<unk>")
    else:        # RoBERTa uses byte-level BPE
        tok = ByteLevelBPETokenizer()
        tok.train_from_iterator(texts, vocab_size=SIZE["vocab"], min_frequency=2, special_tokens=specials)
    inner = tok._tokenizer
    inner.post_processor = RobertaProcessing(("</s>", inner.token_to_id("</s>")), ("<s>", inner.token_to_id("<s>")))
    return PreTrainedTokenizerFast(tokenizer_object=inner, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>",
                                   model_input_names=["input_ids", "attention_mask"])


def build_tiny_model(arch: str, texts: list[str], target: Path) -> Path:
    """Save a tiny `arch` classifier (3 labels) + tokenizer into `target`; returns it."""
    from transformers import (AlbertConfig, AutoModelForSequenceClassification, BertConfig, DistilBertConfig,
                              RobertaConfig, XLMRobertaConfig)

    s = SIZE
    if arch in ("roberta", "xlm-roberta"):
        tokenizer = _roberta_like(texts, unigram=arch == "xlm-roberta")
    else:
        tokenizer = _wordpiece(texts)
    common = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, num_labels=3)
    bert_like = dict(hidden_size=s["hidden"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                     intermediate_size=s["intermediate"], max_position_embeddings=s["positions"], **common)
    if arch == "bert":
        config = BertConfig(**bert_like)
    elif arch == "albert":
        config = AlbertConfig(embedding_size=16, **bert_like)
    elif arch == "distilbert":
        config = DistilBertConfig(dim=s["hidden"], n_layers=s["layers"], n_heads=s["heads"],
                                  hidden_dim=s["intermediate"], max_position_embeddings=s["positions"], **common)
    elif arch == "roberta":
        config = RobertaConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **bert_like)
    elif arch == "xlm-roberta":
        config = XLMRobertaConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                  **bert_like)
    else:
        raise ValueError(f"unknown architecture {arch!r}")
    model = AutoModelForSequenceClassification.from_config(config)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
