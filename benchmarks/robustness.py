"""Robust input handling (promptcls/text/): long documents, evasion flip rates, latency, the 10,000-word timing.

    python -m benchmarks.robustness [--sample 0] [--docs 100] [--augment none|evasion,indirect|...] [--minilm]
    python -m benchmarks.robustness --model-uri models:/promptcls@champion [--docs 100]

Fits a TF-IDF + logistic regression (the `logreg` grid's first point, no search) on the corpus' train split and
measures on the test split (with --model-uri: measures that logged model instead, on the test split of a training
run's default splits, OOD sources held out as the main job does; (a), (b) and (d) only; MLFLOW_TRACKING_URI names
the server; for an ensemble "no pipeline" bypasses its members' pipelines too, `EnsembleClassifier.raw_proba`):

(a) long documents: each malicious test sentence (< 400 characters) alone, and inside a document of ~2,000 words
    drawn from benign test rows (at a random position); detection = label malicious. Also the share of purely
    benign 2,000-word documents flagged (label >= 1 and == 2). With the pipeline (the contract) and without it
    (raw text straight to the classifier, i.e. the whole document as one input).
(b) evasion flip rates per kind on up to 200 flagged malicious test rows, pipeline on and off.
(c) single-prompt p50 latency of the logged pyfunc on ordinary validation prompts, and of the same pyfunc's
    pre-pipeline path (canonical text straight to the classifier: what the base commit 7cd10e6 did).
(d) one 10,000-word document through the logged pyfunc (TF-IDF; with --minilm also the pre-trained MiniLM with
    an untrained head: timing only).
"""

from __future__ import annotations

import argparse
import random
import time

import mlflow
import pandas as pd

from benchmarks.common import local_server
from promptcls.config import DEFAULT_DATA, TrainArgs
from promptcls.contract import PromptClassifierModel, log_model, pip_requirements
from promptcls.data import load_dataset, split_dataset, stratified_sample
from promptcls.evaluate import latency_ms, ordinary_prompts
from promptcls.evasion import MALICIOUS, evasion_outcomes, flip_rates, perturb_all
from promptcls.families.traditional import SklearnTextClassifier, TraditionalFamily, build_pipeline, load_config
from promptcls.text.augment import augmented_frame
from promptcls.text.settings import augment_kinds
from promptcls.text.windows import window_size
from promptcls.train import run_splits


def document(benign: list[str], rng: random.Random, words: int) -> list[str]:
    parts, count = [], 0
    while count < words:
        part = rng.choice(benign)
        parts.append(part)
        count += len(part.split())
    return parts


def long_documents(model: PromptClassifierModel, test: pd.DataFrame, n_docs: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    benign = test.loc[(test["label"] == 0) & (test["text"].str.len() < 2000), "text"].tolist()
    malicious = test.loc[(test["label"] == MALICIOUS) & (test["text"].str.len() < 400), "text"].tolist()
    payloads = rng.sample(malicious, min(n_docs, len(malicious)))
    docs, clean = [], []
    for payload in payloads:
        parts = document(benign, rng, 2000)
        parts.insert(rng.randrange(len(parts) + 1), payload)
        docs.append(" ".join(parts))
        clean.append(" ".join(document(benign, rng, 2000)))
    rows = {}
    for name, normalize in (("pipeline", True), ("no pipeline", False)):
        alone = model.predict_texts(payloads, normalize=normalize)
        inside = model.predict_texts(docs, normalize=normalize)
        benign_docs = model.predict_texts(clean, normalize=normalize)
        rows[name] = {"sentence alone: detected": (alone["label"] == 2).mean(),
                      "in 2,000-word doc: detected": (inside["label"] == 2).mean(),
                      "benign 2,000-word doc: malicious": (benign_docs["label"] == 2).mean(),
                      "benign 2,000-word doc: >= suspicious": (benign_docs["label"] >= 1).mean()}
    print(f"\n(a) long documents: {len(payloads)} malicious test sentences, {len(clean)} benign documents")
    return pd.DataFrame(rows)


def evasion_table(model: PromptClassifierModel, test: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    malicious = test.loc[test["label"] == MALICIOUS, "text"].tolist()
    sample = rng.sample(malicious, min(200, len(malicious)))
    perturbed = perturb_all(sample, rng)
    table = {}
    for name, normalize in (("pipeline", True), ("no pipeline", False)):
        _, results = evasion_outcomes(lambda t: model.predict_texts(t, normalize=normalize), sample, perturbed)
        table[name] = flip_rates({k: kept for k, (_, kept) in results.items()})
    return pd.DataFrame(table)


def latency(uri: str, texts: list[str]) -> pd.DataFrame:
    loaded = mlflow.pyfunc.load_model(uri)
    wrapper = loaded.unwrap_python_model()
    now = latency_ms(lambda t: loaded.predict(pd.DataFrame({"text": [t]})), texts, 300)
    # the base commit's path: canonical text -> classifier -> frame (no views, no windows), same loaded model
    before = latency_ms(lambda t: wrapper.predict_texts([t.strip()], normalize=False), texts, 300)
    inner = latency_ms(lambda t: wrapper.predict_texts([t]), texts, 300)
    return pd.DataFrame({"pyfunc predict (full path)": now, "contract, pipeline on": inner,
                         "contract, pipeline off (7cd10e6 path)": before}, index=["p50 ms", "p95 ms"]).T


def ten_thousand_words(predict, benign: list[str]) -> tuple[int, float]:
    text = " ".join(document(benign, random.Random(1), 10_000))
    text = " ".join(text.split()[:10_000])
    predict(["warm up"])
    start = time.perf_counter()
    predict([text])
    return len(text), time.perf_counter() - start


def minilm_timing(benign: list[str]) -> float:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from promptcls.families.transformers_family import HFTextClassifier, resolve_model
    source = resolve_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(source.location, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(source.location, num_labels=3, local_files_only=True)
    wrapper = PromptClassifierModel(HFTextClassifier(model, tokenizer, 128))
    chars, seconds = ten_thousand_words(wrapper.predict_texts, benign)
    print(f"(d) MiniLM (pre-trained, untrained head): a 10,000-word document ({chars:,} chars) in {seconds:.2f} s")
    return seconds


def measure_logged(uri: str, docs: int, sample: int, seed: int) -> None:
    """(a), (b) and (d) on a logged model, on the test split of a training run with these sample and seed."""
    loaded = mlflow.pyfunc.load_model(uri)
    model = loaded.unwrap_python_model()
    test = run_splits(load_dataset(DEFAULT_DATA).frame, TrainArgs(model="logged", sample=sample, seed=seed))[0].test
    print(f"{uri}: {type(model.classifier).__name__}, window {window_size(model.classifier)} chars")
    pd.set_option("display.width", 160)
    print(long_documents(model, test, docs, seed).round(3).to_string())
    print("\n(b) evasion flip rates (test malicious rows)")
    print(evasion_table(model, test, seed).round(3).to_string())
    chars, seconds = ten_thousand_words(lambda t: loaded.predict(pd.DataFrame({"text": t})),
                                        test.loc[test["label"] == 0, "text"].tolist())
    print(f"\n(d) logged pyfunc: a 10,000-word document ({chars:,} chars) in {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--augment", type=augment_kinds, default="none",
                        help="TrainArgs augment: none, evasion, indirect or both comma-separated")
    parser.add_argument("--minilm", action="store_true")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model-uri", help="measure this logged model instead of fitting TF-IDF logreg")
    args = parser.parse_args()
    if args.model_uri:
        measure_logged(args.model_uri, args.docs, args.sample, args.seed)
        return
    frame = stratified_sample(load_dataset(DEFAULT_DATA).frame, args.sample, args.seed)
    splits = split_dataset(frame, 0.15, 0.15, args.seed)
    train = augmented_frame(splits.train, args.augment, args.seed)[0]
    config = load_config()
    start = time.perf_counter()
    pipeline = build_pipeline(config["models"]["logreg"], config["features"], seed=0)
    classifier = SklearnTextClassifier(pipeline.fit(train["text"].tolist(), train["label"].to_numpy()))
    print(f"TF-IDF logreg fitted on {len(train):,} rows (augment={','.join(args.augment) or 'none'}) "
          f"in {time.perf_counter() - start:.0f} s")
    model = PromptClassifierModel(classifier)
    pd.set_option("display.width", 160)
    print(long_documents(model, splits.test, args.docs, args.seed).round(3).to_string())
    print("\n(b) evasion flip rates (test malicious rows)")
    print(evasion_table(model, splits.test, args.seed).round(3).to_string())
    with local_server():
        mlflow.set_experiment("benchmark-robustness")
        with mlflow.start_run():
            uri = log_model(classifier, ["hello"], pip_requirements(*TraditionalFamily().requirements())).model_uri
        ordinary = ordinary_prompts(splits.val["text"].tolist())[:200]
        print("\n(c) single-prompt latency, ordinary validation prompts (< 300 chars)")
        print(latency(uri, ordinary).round(2).to_string())
        loaded = mlflow.pyfunc.load_model(uri)
        benign = splits.test.loc[splits.test["label"] == 0, "text"].tolist()
        chars, seconds = ten_thousand_words(lambda t: loaded.predict(pd.DataFrame({"text": t})), benign)
        print(f"\n(d) TF-IDF pyfunc: a 10,000-word document ({chars:,} chars) in {seconds:.2f} s")
    if args.minilm:
        minilm_timing(benign)


if __name__ == "__main__":
    main()
