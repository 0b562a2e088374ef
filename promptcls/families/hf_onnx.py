"""A fine-tuned Hugging Face classifier exported to ONNX (fp32, or int8 by onnxruntime's dynamic quantisation) and
served by onnxruntime + `tokenizers` alone: loading it imports neither torch nor transformers, so its logged
requirements leave both out (a CPU serving image without a multi-GB torch install).

`export(hf_classifier, precision)` builds it from an `HFTextClassifier` (torch.onnx's TorchScript exporter, opset 17,
dynamic batch and sequence axes); `OnnxTextClassifier` is the contract's `TextClassifier`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from promptcls import LABELS
from promptcls.text.windows import token_window_chars

PRECISIONS = ("none", "fp32", "int8")
OPSET = 17
REQUIREMENTS = ["onnxruntime", "tokenizers"]
"""What a logged ONNX model needs beyond the contract's base set: no torch, no transformers."""


class OnnxTextClassifier:
    """`model.onnx` + `tokenizer.json` behind the contract: batches of similar length, truncated to max_length."""

    MODEL, TOKENIZER, META = "model.onnx", "tokenizer.json", "promptcls_onnx.json"

    def __init__(self, model_bytes: bytes, tokenizer_json: str, meta: dict):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_bytes, self.tokenizer_json, self.meta = model_bytes, tokenizer_json, meta
        options = ort.SessionOptions()
        threads = int(os.environ.get("PROMPTCLS_ONNX_THREADS", "0"))  # 0: onnxruntime's default (all cores)
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.tokenizer.enable_truncation(meta["max_length"])
        self.tokenizer.enable_padding(pad_id=meta["pad_id"], pad_token=meta["pad_token"])
        self.input_names = meta["input_names"]
        self.batch_size = meta.get("batch_size", 64)

    @property
    def window_chars(self) -> int:
        """The same window as the torch model it was exported from."""
        return token_window_chars(self.meta["max_length"])

    @property
    def precision(self) -> str:
        return self.meta["precision"]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        proba = np.empty((len(texts), len(LABELS)))
        for start in range(0, len(texts), self.batch_size):
            idx = order[start:start + self.batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in idx])
            feed = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                    "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
            logits = self.session.run(None, {name: feed[name] for name in self.input_names})[0].astype(np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            exp = np.exp(logits)
            proba[idx] = exp / exp.sum(axis=1, keepdims=True)
        return proba

    def save(self, path: str) -> None:
        target = Path(path)
        (target / self.MODEL).write_bytes(self.model_bytes)
        (target / self.TOKENIZER).write_text(self.tokenizer_json, encoding="utf-8")
        (target / self.META).write_text(json.dumps(self.meta))

    @classmethod
    def load(cls, path: str) -> "OnnxTextClassifier":
        source = Path(path)
        return cls((source / cls.MODEL).read_bytes(), (source / cls.TOKENIZER).read_text(encoding="utf-8"),
                   json.loads((source / cls.META).read_text()))


def export(hf_classifier, precision: str = "fp32") -> OnnxTextClassifier:
    """The ONNX twin of an `HFTextClassifier` (its model is left on its device, in eval mode)."""
    import torch

    if precision not in ("fp32", "int8"):
        raise ValueError(f"ONNX precision must be fp32 or int8, got {precision!r}")
    model, tokenizer, names = hf_classifier.model, hf_classifier.tokenizer, hf_classifier.input_names
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("ONNX export needs a fast tokenizer (tokenizer.json); this checkpoint has a slow one")

    class Logits(torch.nn.Module):  # positional inputs in `names` order -> logits
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, *inputs):
            return self.inner(**dict(zip(names, inputs))).logits

    device = next(model.parameters()).device
    sample = tokenizer(["an example prompt to trace", "hi"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    wrapper = Logits().to("cpu").eval()  # eval: the exporter restores the wrapper's mode afterwards
    with tempfile.TemporaryDirectory(prefix="promptcls-onnx-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with warnings.catch_warnings():  # the tracer's advice on Python-side branches and index ops; the export is
            warnings.simplefilter("ignore")  # checked against torch within 1e-4 (tests/test_onnx.py)
            torch.onnx.export(wrapper, tuple(sample[n] for n in names), str(fp32), input_names=names,
                              output_names=["logits"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        model.to(device).eval()
        model_bytes = fp32.read_bytes()
    meta = {"precision": "fp32", "opset": OPSET, "input_names": names, "max_length": hf_classifier.max_length,
            "batch_size": hf_classifier.batch_size, "pad_id": tokenizer.pad_token_id,
            "pad_token": tokenizer.pad_token, "model_type": model.config.model_type}
    exported = OnnxTextClassifier(model_bytes, tokenizer.backend_tokenizer.to_str(), meta)
    return quantized(exported) if precision == "int8" else exported


def quantized(fp32: OnnxTextClassifier) -> OnnxTextClassifier:
    """int8 weights by onnxruntime's dynamic quantisation, one scale per output channel: on a MiniLM fine-tune that
    kept validation custom_score within 0.43 points of fp32, where one scale per tensor lost 2.45 (README)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="promptcls-onnx-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(fp32.model_bytes)
        with _quiet_root_logger():
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
        return OnnxTextClassifier(target.read_bytes(), fp32.tokenizer_json, {**fp32.meta, "precision": "int8"})


@contextmanager
def _quiet_root_logger():
    """onnxruntime's quantiser logs through the root logger: ~40 INFO lines a MiniLM ("Quantization parameters for
    tensor ... not specified") and a WARNING advising pre-processing. Only its errors reach the run's log."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
