"""MiniLM benchmark (not a test): fine-tuning throughput with dynamic padding + length grouping vs fixed padding,
extrapolated to one epoch over the full training split, and the logged pyfunc's single-prompt latency and batch
throughput.

    PYTHONPATH=. python benchmarks/transformers.py [--steps 20] [--batch-size 16] [--model-uri runs:/ID/model]

Training is timed on `--steps` optimizer steps (forward, backward, clipping, AdamW) per mode, not on full epochs;
the time per epoch is n_train / (samples/s). The machine's load average is printed: other processes on the same
cores slow every number here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# run as a script, this file's folder comes first on sys.path and `benchmarks/transformers.py` would shadow the
# `transformers` library: drop that entry
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def train_rate(model, batches, max_grad_norm: float = 1.0) -> tuple[float, float]:
    """samples/s and mean padded length over `batches` (one warm-up step first, not timed)."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    model.train()

    def step(batch):
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()

    step(batches[0])
    start = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    elapsed = time.perf_counter() - start
    n = sum(len(b["labels"]) for b in batches[1:])
    return n / elapsed, float(np.mean([b["input_ids"].shape[1] for b in batches[1:]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--model-uri", default="", help="a logged transformers pyfunc to time (default: log one)")
    parser.add_argument("--latency-repeats", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for fine-tuning (0 = torch's default; 1 is faster on shared cores)")
    opts = parser.parse_args()

    import mlflow
    import pandas as pd
    import torch
    from torch.utils.data import RandomSampler
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from promptcls.config import DEFAULT_DATA
    from promptcls.contract import log_model, pip_requirements
    from promptcls.data import load_dataset, split_dataset
    from promptcls.evaluate import latency_ms
    from promptcls.families import hf_training as hf
    from promptcls.families.transformers_family import (HFTextClassifier, TransformersFamily, model_input_names,
                                                        resolve_model)

    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(0)
    splits = split_dataset(load_dataset(DEFAULT_DATA).frame, 0.15, 0.15, 42)
    texts, labels = splits.train["text"].tolist(), splits.train["label"].to_numpy()
    location = resolve_model("minilm").location
    tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
    rows = []

    def fresh_model():
        torch.manual_seed(0)
        return AutoModelForSequenceClassification.from_pretrained(location, num_labels=3, local_files_only=True)

    n_batches = opts.steps + 1
    for mode in ("dynamic", "fixed"):
        model = fresh_model()
        names = model_input_names(model, tokenizer)
        padding = "max_length" if mode == "fixed" else False
        data = hf.EncodedDataset(hf.tokenize(tokenizer, texts, opts.max_length, names, padding=padding), labels)
        if mode == "dynamic":  # what the family's Trainer does: length-grouped batches, padded per batch
            sampler = LengthGroupedSampler(opts.batch_size, dataset=data)
            collate = DataCollatorWithPadding(tokenizer)
        else:
            sampler = RandomSampler(data)
            from transformers import default_data_collator as collate
        # batches evenly spaced over one epoch's order: the length-grouped sampler puts its longest batch first,
        # so the first few batches alone would over-state the padded length
        order = list(sampler)
        chunks = [order[i:i + opts.batch_size] for i in range(0, len(order) - opts.batch_size + 1, opts.batch_size)]
        picks = np.linspace(0, len(chunks) - 1, n_batches).astype(int)
        batches = [collate([data[i] for i in chunks[j]]) for j in picks]
        rate, mean_len = train_rate(model, batches)
        rows.append({"measure": f"fine-tune {mode} padding", "value": f"{rate:.1f} samples/s",
                     "detail": f"mean padded length {mean_len:.0f}; epoch of {len(texts)} rows "
                               f"≈ {len(texts) / rate / 60:.1f} min (extrapolated from {opts.steps} steps)"})
        print(rows[-1], flush=True)
        del model

    val = splits.val["text"].tolist()
    with tempfile.TemporaryDirectory(prefix="promptcls-bench-") as tmp:
        uri = opts.model_uri
        if not uri:  # log an (untrained-head) MiniLM through the contract: latency does not depend on the weights
            mlflow.set_tracking_uri(f"sqlite:///{tmp}/bench.db")
            mlflow.set_experiment("bench")
            with mlflow.start_run():
                classifier = HFTextClassifier(fresh_model(), tokenizer, opts.max_length)
                uri = log_model(classifier, val, pip_requirements(*TransformersFamily().requirements())).model_uri
        model = mlflow.pyfunc.load_model(uri)
        bare = model.unwrap_python_model().classifier
        p50, p95 = latency_ms(lambda text: model.predict(pd.DataFrame({"text": [text]})), val, opts.latency_repeats)
        frames = [pd.DataFrame({"text": [val[i % len(val)]]}) for i in range(opts.latency_repeats)]
        forward = []
        with torch.inference_mode():
            for frame in frames:
                enc = bare.tokenizer(frame["text"].tolist(), truncation=True, max_length=opts.max_length,
                                     return_tensors="pt")
                start = time.perf_counter()
                bare.model(**{k: enc[k] for k in bare.input_names})
                forward.append((time.perf_counter() - start) * 1000)
        batch = pd.DataFrame({"text": val[:512]})
        start = time.perf_counter()
        model.predict(batch)
        batch_rate = len(batch) / (time.perf_counter() - start)
    rows += [
        {"measure": "pyfunc single prompt", "value": f"p50 {p50:.1f} ms",
         "detail": f"p95 {p95:.1f} ms over {opts.latency_repeats} val prompts ({uri})"},
        {"measure": "bare encoder forward (1 thread)", "value": f"p50 {np.percentile(forward, 50):.1f} ms",
         "detail": f"p95 {np.percentile(forward, 95):.1f} ms, same prompts"},
        {"measure": "pyfunc batch of 512", "value": f"{batch_rate:.0f} samples/s",
         "detail": f"torch threads {torch.get_num_threads()}"},
    ]
    print(f"\nMiniLM (all-MiniLM-L6-v2), batch {opts.batch_size}, max_length {opts.max_length}, "
          f"fine-tuning threads {opts.threads or 'default'}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print(pd.DataFrame(rows).to_markdown(index=False) if _has_tabulate() else pd.DataFrame(rows).to_string())


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main()
