"""ONNX benchmark (not a test): MiniLM fine-tuned briefly on a corpus sample, then the same weights scored by torch,
ONNX fp32 and ONNX int8 (onnxruntime dynamic quantisation): single-prompt latency through the contract
(`predict_texts`, normalisation included), batch throughput, and validation metrics (custom_score) on the
sample's validation split. The int8 target: within 0.5 points of torch's custom_score.

    PYTHONPATH=. python benchmarks/onnx_export.py [--sample 3000] [--epochs 1] [--out /tmp/minilm-onnx]
    PYTHONPATH=. python benchmarks/onnx_export.py --checkpoint /tmp/minilm-onnx/torch   # re-measure, no training

`--out` keeps the fine-tuned torch checkpoint (`torch/`, for `--checkpoint`) and the fp32 and int8 classifiers
(`OnnxTextClassifier.save`) for benchmarks/serve.py --onnx-dir.
The fine-tune is short (a sample, one epoch): its scores are not the project's MiniLM figures, only a fair
comparison of the three runtimes on the same weights. The machine's load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=100, help="single-prompt calls timed per runtime")
    parser.add_argument("--out", default="", help="folder to keep the checkpoint and exported classifiers in")
    parser.add_argument("--checkpoint", default="", help="a kept torch/ folder: skip the fine-tune")
    opts = parser.parse_args()

    import mlflow
    import pandas as pd

    from benchmarks.common import local_server
    from promptcls.config import DEFAULT_DATA
    from promptcls.contract import PromptClassifierModel
    from promptcls.data import load_dataset, split_dataset, stratified_sample
    from promptcls.evaluate import latency_ms, split_metrics
    from promptcls.families import hf_onnx
    from promptcls.families.transformers_family import HFTextClassifier, TransformersArgs, TransformersFamily

    print(f"load before: {os.getloadavg()}", flush=True)
    frame = stratified_sample(load_dataset(DEFAULT_DATA).frame, opts.sample, 42)
    splits = split_dataset(frame, 0.15, 0.15, 42)
    args = TransformersArgs(model="minilm", sample=opts.sample, max_epochs=opts.epochs, max_length=opts.max_length,
                            patience=0, explain_samples=0)
    if opts.checkpoint:  # same sample and seed: the same validation split the checkpoint was fine-tuned beside
        torch_model = HFTextClassifier.load(opts.checkpoint)
    else:
        with local_server():
            mlflow.set_experiment("bench-onnx")
            with mlflow.start_run():
                start = time.perf_counter()
                torch_model = TransformersFamily().train("minilm", splits, args)
                print(f"fine-tuned MiniLM on {len(splits.train)} rows, {opts.epochs} epoch(s), max_length "
                      f"{opts.max_length}: {time.perf_counter() - start:.0f} s", flush=True)
        if opts.out:
            torch_model.save(str(Path(opts.out) / "torch"))
    runtimes = {"torch": torch_model, "onnx-fp32": hf_onnx.export(torch_model, "fp32"),
                "onnx-int8": hf_onnx.export(torch_model, "int8")}
    val, texts = splits.val, splits.val["text"].tolist()
    rows = []
    for name, classifier in runtimes.items():
        wrapper = PromptClassifierModel(classifier)
        p50, p95 = latency_ms(lambda t: wrapper.predict_texts([t]), texts, opts.repeats)
        start = time.perf_counter()
        metrics = split_metrics(wrapper.as_predict_fn(), val)
        rate = len(val) / (time.perf_counter() - start)
        size = len(classifier.model_bytes) / 2**20 if hasattr(classifier, "model_bytes") else \
            sum(p.numel() * p.element_size() for p in classifier.model.parameters()) / 2**20
        rows.append({"runtime": name, "p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "val_rows_per_s": round(rate),
                     "val_custom_score": round(metrics["custom_score"], 4),
                     "val_recall_c2": round(metrics["recall_c2"], 4), "model_MiB": round(size, 1)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    base = table.loc[0, "val_custom_score"]
    table["custom_score_vs_torch_points"] = ((table["val_custom_score"] - base) * 100).round(2)
    print(f"\nvalidation split: {len(val)} rows; load after: {os.getloadavg()}\n{table.to_string(index=False)}")
    drift = abs(table.loc[2, "custom_score_vs_torch_points"])
    print(f"int8 custom_score within 0.5 points of torch: {'yes' if drift <= 0.5 else 'NO'} ({drift:.2f} points)")
    if opts.out:
        for name in ("onnx-fp32", "onnx-int8"):
            target = Path(opts.out) / name
            target.mkdir(parents=True, exist_ok=True)
            runtimes[name].save(str(target))
        print(f"kept the ONNX classifiers under {opts.out}")


if __name__ == "__main__":
    main()
