"""Token-level SHAP explanations for any model of the contract (model-agnostic: SHAP's partition explainer with a
text masker over the model's class scores), logged per run and available as `promptcls explain "text"`."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from promptcls import LABELS

log = logging.getLogger(__name__)
ProbaFn = Callable[[list[str]], np.ndarray]
TOKEN_PATTERN = r"\W+"  # words; SHAP's text masker keeps the separators with each token


def explain(proba_fn: ProbaFn, texts: list[str], max_evals: int = 200):
    """A shap.Explanation for `texts` (each `explainable`): values[i] is (tokens_i, 3)."""
    import shap  # late: ~2 s to import, only needed here

    explainer = shap.Explainer(lambda batch: proba_fn(list(batch)), shap.maskers.Text(TOKEN_PATTERN),
                               output_names=list(LABELS))
    return explainer(texts, max_evals=max_evals, batch_size=128, silent=True)


def explainable(texts: list[str]) -> list[str]:
    """The texts the partition explainer can attribute: at least two tokens of the masker's tokenizer."""
    import shap

    tokenizer = shap.maskers.Text(TOKEN_PATTERN).tokenizer
    return [t for t in texts if len(tokenizer(t)["input_ids"]) >= 2]


def top_tokens(explanation, k: int = 20) -> pd.DataFrame:
    """Per class, the k tokens with the largest total SHAP contribution towards that class."""
    total, count = defaultdict(lambda: np.zeros(len(LABELS))), defaultdict(int)
    for tokens, values in zip(explanation.data, explanation.values):
        for token, value in zip(tokens, values):
            key = token.strip().lower()
            if any(ch.isalnum() for ch in key):
                total[key] += value
                count[key] += 1
    rows = [{"class": name, "token": token, "total_shap": sums[c], "mean_shap": sums[c] / count[token],
             "occurrences": count[token]} for token, sums in total.items() for c, name in enumerate(LABELS)]
    table = pd.DataFrame(rows).sort_values("total_shap", ascending=False)
    return table.groupby("class", sort=False).head(k).reset_index(drop=True)


def top_tokens_figure(table: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(12, 5), dpi=100)
    for i, name in enumerate(LABELS):
        ax = fig.add_subplot(1, len(LABELS), i + 1)
        part = table[table["class"] == name].iloc[::-1]
        ax.barh(part["token"], part["total_shap"], color=("tab:green", "tab:orange", "tab:red")[i])
        ax.set_title(f"towards {name}")
        ax.set_xlabel("total SHAP value")
    fig.tight_layout()
    return fig


def log_explanations(proba_fn: ProbaFn, texts: list[str], n: int, seed: int) -> None:
    """SHAP on `n` validation prompts: `explain/top_tokens.csv` and `explain/top_tokens.png` on the active run."""
    try:
        import shap  # noqa: F401
    except ImportError:
        log.warning("explain_samples=%d but shap is not installed (pip install -e '.[explain]'); skipped", n)
        return
    rng = np.random.default_rng(seed)
    candidates = explainable(texts)
    sample = [candidates[i] for i in rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)]
    table = top_tokens(explain(proba_fn, sample))
    mlflow.log_text(table.to_csv(index=False), "explain/top_tokens.csv")
    mlflow.log_figure(top_tokens_figure(table), "explain/top_tokens.png")


def explain_text(model, text: str) -> tuple[pd.DataFrame, pd.Series]:
    """Token contributions of one prompt for a loaded pyfunc: (table token x class, the model's prediction)."""
    from promptcls.contract import SCORE_COLUMNS

    def proba_fn(texts):
        return model.predict(pd.DataFrame({"text": texts}))[SCORE_COLUMNS].to_numpy()

    prediction = model.predict(pd.DataFrame({"text": [text]})).iloc[0]
    if not explainable([text]):
        return pd.DataFrame(columns=["token", *LABELS]), prediction
    explanation = explain(proba_fn, [text], max_evals=500)
    table = pd.DataFrame(explanation.values[0], columns=list(LABELS))
    table.insert(0, "token", [t.strip() for t in explanation.data[0]])
    return table, prediction
