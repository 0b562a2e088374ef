"""The model contract shared by every family.

A logged model is an MLflow pyfunc that takes a DataFrame with a `text` column (or, through `mlflow models serve`,
JSON `dataframe_records` / `dataframe_split` / `inputs`) and returns a DataFrame with `label` (int), `label_name`,
`score_benign`, `score_suspicious`, `score_malicious`. The same `normalize_text` used in training runs inside the
model, so raw text gives the same answer as in evaluation.

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
from mlflow.models import infer_signature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

import promptcls
from promptcls import LABELS
from promptcls.data import normalize_text
from promptcls.policy import DecisionPolicy

SCORE_COLUMNS = [f"score_{name}" for name in LABELS]
OUTPUT_COLUMNS = ["label", "label_name", *SCORE_COLUMNS]
BASE_REQUIREMENTS = ("mlflow", "pandas", "numpy", "scikit-learn", "cloudpickle", "pyyaml", "confusable-homoglyphs")


class TextClassifier(Protocol):
    def predict_proba(self, texts: list[str]) -> np.ndarray: ...
    def save(self, path: str) -> None: ...
    @classmethod
    def load(cls, path: str) -> "TextClassifier": ...


def _invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def texts_from_input(model_input) -> list[str]:
    """The prompts in a pyfunc input: a DataFrame with `text`, a Series, a list of strings, or one string."""
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, dict) and "text" in model_input:
        model_input = pd.DataFrame({"text": np.atleast_1d(model_input["text"])})
    if isinstance(model_input, pd.DataFrame):
        if "text" not in model_input.columns:
            raise _invalid(f"input needs a `text` column; got columns {list(model_input.columns)}")
        model_input = model_input["text"]
    values = []
    for value in model_input:  # {"text": [...]} arrives as one row holding the whole list
        values.extend(value if isinstance(value, (list, tuple, np.ndarray)) else [value])
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise _invalid(f"input row {i}: `text` must be a string, got {type(value).__name__}")
    return values


def predictions_frame(proba: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """The contract's output for an (N, 3) probability array and the decided labels."""
    proba = np.asarray(proba, dtype=float).reshape(-1, len(LABELS))
    frame = pd.DataFrame({"label": labels.astype("int64"), "label_name": [LABELS[i] for i in labels]})
    for i, column in enumerate(SCORE_COLUMNS):
        frame[column] = proba[:, i]
    return frame


class PromptClassifierModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper every family logs; in training it also wraps the in-memory classifier for evaluation.
    Labels come from the decision policy (plain argmax unless a policy was fitted on validation)."""

    def __init__(self, classifier: TextClassifier | None = None, policy: DecisionPolicy | None = None):
        self.classifier = classifier
        self.policy = policy or DecisionPolicy()

    def __getstate__(self):  # classifier and policy travel as artifact and model_config, never inside the pickle
        return {"classifier": None, "policy": None}

    def as_predict_fn(self):
        """`predict` with the signature of a loaded pyfunc's: DataFrame in, contract DataFrame out."""
        return lambda frame: self.predict(None, frame)

    def load_context(self, context):
        module, _, name = context.model_config["classifier_class"].partition(":")
        self.classifier = getattr(importlib.import_module(module), name).load(context.artifacts["classifier"])
        self.policy = DecisionPolicy(**context.model_config.get("policy", {}))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.predict_texts(texts_from_input(model_input))

    def predict_texts(self, texts: list[str], normalize: bool = True) -> pd.DataFrame:
        """Contract output for raw strings; `normalize=False` bypasses `normalize_text` (to measure what it does)."""
        texts = [normalize_text(t) for t in texts] if normalize else list(texts)
        if not texts:
            return predictions_frame(np.empty((0, len(LABELS))), np.empty(0, dtype=int))
        proba = self.policy.calibrate(self.classifier.predict_proba(texts))
        return predictions_frame(proba, self.policy.decide(proba))


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
              policy: DecisionPolicy | None = None, name: str = "model"):
    """Log `classifier` (and its decision policy) under the active run as the contract's pyfunc."""
    wrapper = PromptClassifierModel(classifier, policy)
    example = pd.DataFrame({"text": example_texts[:3]})
    cls = type(classifier)
    with tempfile.TemporaryDirectory(prefix="promptcls-model-") as tmp:
        classifier.save(tmp)
        signature = infer_signature(example, wrapper.predict(None, example))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=PromptClassifierModel(),
            artifacts={"classifier": tmp},
            model_config={"classifier_class": f"{cls.__module__}:{cls.__qualname__}",
                          "policy": wrapper.policy.to_dict()},
            code_paths=[str(Path(promptcls.__file__).parent)],
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
        )
