"""The model contract shared by every family.

A logged model is an MLflow pyfunc that takes a DataFrame with a `text` column (or, through `mlflow models serve`,
JSON `dataframe_records` / `dataframe_split` / `inputs`) and returns a DataFrame with `label` (int), `label_name`,
`score_benign`, `score_suspicious`, `score_malicious`, then `view` (which view decided: `original`, a decoded view
such as `base64`, or `empty`) and `trigger_start` / `trigger_end` (the deciding span, in the canonical text). The
same `normalize_text` used in training runs inside the model, so raw text gives the same answer as in evaluation;
de-obfuscation views and windows (`promptcls.text`) run only here, at prediction time.

A family only supplies a `TextClassifier`: `predict_proba(texts) -> (N, 3) array`, `save(dir)` and `load(dir)`.
"""

from __future__ import annotations

import importlib
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import AnyType, ColSpec, Schema

import promptcls
from promptcls import LABELS
from promptcls.data import normalize_text
from promptcls.policy import DecisionPolicy
from promptcls.text.scoring import Candidate, candidates, most_severe
from promptcls.text.settings import robustness
from promptcls.text.windows import window_size

SCORE_COLUMNS = [f"score_{name}" for name in LABELS]
TRIGGER_COLUMNS = ["view", "trigger_start", "trigger_end"]
OUTPUT_COLUMNS = ["label", "label_name", *SCORE_COLUMNS, *TRIGGER_COLUMNS]
BASE_REQUIREMENTS = ("mlflow", "pandas", "numpy", "scikit-learn", "cloudpickle", "pyyaml", "confusable-homoglyphs",
                     "wordninja")


class TextClassifier(Protocol):
    """What a family trains. A classifier built on contract models (an ensemble) may also have
    `raw_proba(texts)`: its probabilities with the members' input pipelines bypassed too, for
    `predict_texts(normalize=False)`."""

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...
    def save(self, path: str) -> None: ...
    @classmethod
    def load(cls, path: str) -> "TextClassifier": ...


class RememberedRows:
    """`score(texts) -> (N, k) array`, remembered per text in `rows`: each distinct text reaches `score` once. For
    evaluation in training only (a served model must not grow without bound): the same validation and test texts are
    scored to fit the policy, under it and under argmax, and again by the main job's ensembles."""

    def __init__(self, score, rows: dict | None = None):
        self.score, self.rows = score, {} if rows is None else rows

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.rows]
        if missing:
            self.rows.update(zip(missing, self.score(missing)))
        return np.stack([self.rows[t] for t in texts])


class RememberedScores:
    """`classifier` with `predict_proba` remembered per text (`RememberedRows`; MiniLM takes about 25 s a pass over
    validation on 2 cores). `rows`: what the same weights already scored, e.g. in the member's own run."""

    def __init__(self, classifier: TextClassifier, rows: dict | None = None):
        self.classifier, self.predict_proba = classifier, RememberedRows(classifier.predict_proba, rows)

    @property
    def rows(self) -> dict:
        return self.predict_proba.rows

    def __getattr__(self, name):  # window_chars and the rest: the classifier's own
        return getattr(self.classifier, name)


def _invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def texts_from_input(model_input) -> list[str]:
    """The prompts in a pyfunc input: a DataFrame with `text`, a Series, a list of strings, or one string. Fails
    closed: a null, NaN, non-string or nested value raises INVALID_PARAMETER_VALUE (HTTP 400) naming the row."""
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, dict) and "text" in model_input:
        model_input = pd.DataFrame({"text": np.atleast_1d(np.asarray(model_input["text"], dtype=object))})
    if isinstance(model_input, pd.DataFrame):
        if "text" not in model_input.columns:
            raise _invalid(f"input needs a `text` column; got columns {list(model_input.columns)}")
        model_input = model_input["text"]
    values = list(model_input)
    if len(values) == 1 and isinstance(values[0], (list, tuple, np.ndarray)):
        values = list(values[0])  # `{"inputs": {"text": [...]}}` arrives as one row holding the whole list
    for i, value in enumerate(values):
        if not isinstance(value, str):
            shown = "null" if value is None or (isinstance(value, float) and np.isnan(value)) else type(value).__name__
            raise _invalid(f"input row {i}: `text` must be a string, got {shown}")
    return values


def predictions_frame(proba: np.ndarray, labels: np.ndarray, deciding: list[Candidate] | None = None) -> pd.DataFrame:
    """The contract's output for an (N, 3) probability array, the decided labels and the deciding candidates
    (view and span; without them: `original`, span unknown: -1)."""
    proba = np.asarray(proba, dtype=float).reshape(-1, len(LABELS))
    labels = np.asarray(labels, dtype=int)
    frame = pd.DataFrame({"label": labels.astype("int64"), "label_name": [LABELS[i] for i in labels]})
    for i, column in enumerate(SCORE_COLUMNS):
        frame[column] = proba[:, i]
    frame["view"] = [c.view for c in deciding] if deciding is not None else "original"
    frame["trigger_start"] = np.array([c.start for c in deciding] if deciding is not None else [-1] * len(frame),
                                      dtype="int64")
    frame["trigger_end"] = np.array([c.end for c in deciding] if deciding is not None else [-1] * len(frame),
                                    dtype="int64")
    return frame


class PromptClassifierModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper every family logs; in training it also wraps the in-memory classifier for evaluation.
    Labels come from the decision policy (plain argmax unless a policy was fitted on validation)."""

    def __init__(self, classifier: TextClassifier | None = None, policy: DecisionPolicy | None = None,
                 max_input_chars: int | None = None):
        self.classifier = classifier
        self.policy = policy or DecisionPolicy()
        self.max_input_chars = int(max_input_chars or robustness()["limits"]["max_input_chars"])
        self.window_min_malicious = float(robustness()["windows"]["min_malicious"])

    def __getstate__(self):  # classifier and policy travel as artifact and model_config, never inside the pickle
        return {"classifier": None, "policy": None}

    def as_predict_fn(self):
        """`predict` with the signature of a loaded pyfunc's: DataFrame in, contract DataFrame out."""
        return lambda frame: self.predict(None, frame)

    def load_context(self, context):
        module, _, name = context.model_config["classifier_class"].partition(":")
        self.classifier = getattr(importlib.import_module(module), name).load(context.artifacts["classifier"])
        self.policy = DecisionPolicy(**context.model_config.get("policy", {}))
        self.max_input_chars = int(context.model_config.get("max_input_chars")
                                   or robustness()["limits"]["max_input_chars"])
        self.window_min_malicious = float(robustness()["windows"]["min_malicious"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.predict_texts(texts_from_input(model_input))

    def predict_texts(self, texts: list[str], normalize: bool = True) -> pd.DataFrame:
        """Contract output for raw strings: canonicalised, scored with every de-obfuscation view and window, decided
        on the most severe. `normalize=False` scores the raw strings alone (no canonicalisation, views or windows:
        to measure what the pipeline does)."""
        for i, text in enumerate(texts):
            if len(text) > self.max_input_chars:
                raise _invalid(f"input row {i}: `text` has {len(text):,} characters; this model accepts at most "
                               f"{self.max_input_chars:,} (model_config max_input_chars)")
        if not texts:
            return predictions_frame(np.empty((0, len(LABELS))), np.empty(0, dtype=int), [])
        if not normalize:
            raw_proba = getattr(self.classifier, "raw_proba", self.classifier.predict_proba)
            proba = self.policy.calibrate(raw_proba(list(texts)))
            raw = [Candidate(i, "original", t, 0, len(t)) for i, t in enumerate(texts)]
            return predictions_frame(proba, self.policy.decide(proba), raw)
        pool = candidates([normalize_text(t) for t in texts], window_size(self.classifier))
        scored = [c for c in pool if c.view != "empty"]
        proba = np.zeros((len(pool), len(LABELS)))
        labels = np.full(len(pool), int(robustness()["empty"]["label"]))
        proba[np.arange(len(pool)), labels] = 1.0  # empty text: its documented verdict, probability 1
        if scored:
            index = [i for i, c in enumerate(pool) if c.view != "empty"]
            proba[index] = self.policy.calibrate(self.classifier.predict_proba([c.text for c in scored]))
            labels[index] = self.policy.decide(proba[index])
        best = most_severe(pool, labels, proba[:, LABELS.index("malicious")], len(texts),
                           self.window_min_malicious)
        return predictions_frame(proba[best], labels[best], [pool[i] for i in best])


def pip_requirements(*distributions: str) -> list[str]:
    """Explicit `dist==version` pins of the installed distributions (MLflow's inference pins torch's local build;
    here a local version label such as `+cpu` is dropped, so the pin installs from PyPI)."""
    pins = []
    for dist in dict.fromkeys((*BASE_REQUIREMENTS, *distributions)):
        try:
            pins.append(f"{dist}=={version(dist).split('+')[0]}")  # `2.13.0+cpu` -> `2.13.0`: PyPI has no local builds
        except PackageNotFoundError:
            raise RuntimeError(f"cannot pin requirement {dist!r}: it is not installed") from None
    return pins


def log_model(classifier: TextClassifier, example_texts: list[str], requirements: list[str],
              policy: DecisionPolicy | None = None, name: str = "model", max_input_chars: int | None = None):
    """Log `classifier` (and its decision policy and input limit) under the active run as the contract's pyfunc."""
    wrapper = PromptClassifierModel(classifier, policy, max_input_chars)
    example = pd.DataFrame({"text": example_texts[:3]})
    cls = type(classifier)
    with tempfile.TemporaryDirectory(prefix="promptcls-model-") as tmp:
        classifier.save(tmp)
        # `text` is declared Any: a `string` column makes MLflow's serving coerce JSON null to the string "None"
        # before the model sees it; the contract validates every value itself (texts_from_input, fail closed)
        outputs = infer_signature(example, wrapper.predict(None, example)).outputs
        signature = ModelSignature(inputs=Schema([ColSpec(AnyType(), "text")]), outputs=outputs)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=PromptClassifierModel(),
            artifacts={"classifier": tmp},
            model_config={"classifier_class": f"{cls.__module__}:{cls.__qualname__}",
                          "policy": wrapper.policy.to_dict(), "max_input_chars": wrapper.max_input_chars},
            code_paths=[str(Path(promptcls.__file__).parent)],
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
        )
