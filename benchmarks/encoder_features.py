"""Would a frozen sentence encoder help the linear model on unseen sources? TF-IDF alone, frozen all-MiniLM-L6-v2
sentence embeddings alone, and both side by side, each under one logistic regression, on the splits and OOD
sources a training run draws (`train.run_splits`), scored on validation and OOD with argmax and with the main
job's threshold policy (fitted on validation). The text goes in raw (no input pipeline, no augmentation), so the
figures compare feature sets, not the logged models.

    python -m benchmarks.encoder_features [--sample 0] [--C 16] [--embedding-weights 1,3]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from promptcls.class_weights import sample_weights
from promptcls.config import TrainArgs
from promptcls.data import load_dataset
from promptcls.families.traditional import build_pipeline, load_config
from promptcls.metrics import security_metrics
from promptcls.ood.scoring import genre_flag_rates
from promptcls.ood.sources import policy_mask
from promptcls.policy import fit_policy
from promptcls.train import run_splits

SPLITS = ("train", "val", "ood")


def embed(frames: dict[str, pd.DataFrame], max_length: int) -> dict[str, np.ndarray]:
    from sentence_transformers import SentenceTransformer

    from promptcls.families.transformers_family import resolve_model

    encoder = SentenceTransformer(resolve_model("minilm").location, device="cpu")  # the packaged all-MiniLM-L6-v2
    encoder.max_seq_length = max_length
    out = {}
    for name, frame in frames.items():
        start = time.perf_counter()
        out[name] = encoder.encode(frame["text"].tolist(), batch_size=64, normalize_embeddings=True)
        print(f"embedded {name}: {len(frame)} rows in {time.perf_counter() - start:.0f} s", flush=True)
    return out


def evaluate(name: str, features: dict, frames: dict[str, pd.DataFrame], C: float, seed: int) -> list[dict]:
    train = frames["train"]
    start = time.perf_counter()
    model = LogisticRegression(C=C, max_iter=3000, random_state=seed).fit(
        features["train"], train["label"], sample_weight=sample_weights("balanced", train["label"].to_numpy()))
    fit_s = time.perf_counter() - start
    proba = {split: model.predict_proba(features[split]) for split in ("val", "ood")}
    val = frames["val"]
    policy = fit_policy(proba["val"], val["label"].to_numpy(), review_target=0.10, risky=policy_mask(val).to_numpy())
    rows = []
    for split in ("val", "ood"):
        for decision, pred in (("argmax", proba[split].argmax(1)), ("policy", policy.decide(proba[split]))):
            m = security_metrics(frames[split]["label"].to_numpy(), pred)
            row = {"features": name, "split": split, "decision": decision, "fit_s": fit_s,
                   **{k: m[k] for k in ("custom_score", "recall_c2", "benign_flag_rate")}}
            if split == "ood":  # benign rows flagged malicious, per genre of benign source
                row |= {k.removeprefix("ood_benign_flag_rate_"): v
                        for k, v in genre_flag_rates(frames[split], pred).items()}
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", type=int, default=0, help="class-stratified sample of the corpus (0 = all)")
    parser.add_argument("--C", type=float, default=16.0, help="inverse regularisation (the main job's logreg: 16)")
    parser.add_argument("--embedding-weights", default="1,3",
                        help="scales of the embedding block beside TF-IDF (comma-separated)")
    parser.add_argument("--max-length", type=int, default=128, help="encoder tokens per prompt")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run_args = TrainArgs(model="logreg", sample=args.sample, external="")
    splits, ood = run_splits(load_dataset(run_args.data).frame, run_args)
    if ood is None:
        raise SystemExit("the default OOD sources are needed (promptcls/conf/sources.yaml)")
    frames = {"train": splits.train, "val": splits.val, "ood": ood}
    config = load_config()  # the traditional family's TF-IDF settings
    union = build_pipeline(config["models"]["logreg"], config["features"], run_args.seed).named_steps["features"]
    words = {"train": union.fit_transform(frames["train"]["text"])}
    words |= {split: union.transform(frames[split]["text"]) for split in ("val", "ood")}
    dense = embed(frames, args.max_length)
    rows = evaluate("tfidf", words, frames, args.C, run_args.seed)
    rows += evaluate("minilm", dense, frames, args.C, run_args.seed)
    for weight in (float(w) for w in args.embedding_weights.split(",")):
        both = {s: sparse.hstack([words[s], sparse.csr_matrix(dense[s] * weight)]).tocsr() for s in SPLITS}
        rows += evaluate(f"tfidf+minilm*{weight:g}", both, frames, args.C, run_args.seed)
    print("\n" + pd.DataFrame(rows).to_string(index=False, float_format="%.3f", na_rep=""))


if __name__ == "__main__":
    main()
