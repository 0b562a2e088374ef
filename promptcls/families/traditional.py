"""Traditional family: TF-IDF word + char n-grams and a scikit-learn / XGBoost estimator, tuned by grouped CV.

Models and search spaces live in `promptcls/conf/traditional.yaml`; this module only turns them into pipelines.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import FeatureUnion, Pipeline

from promptcls.class_weights import check_source_weights, parse_class_weights, sample_weights, source_balanced
from promptcls.config import TrainArgs, family_config
from promptcls.data import Splits
from promptcls.families.base import Family
from promptcls.feedback.retrain import with_feedback_weights
from promptcls.metrics import custom_score
from promptcls.schemas import SearchSpace, Strict

log = logging.getLogger(__name__)


class TraditionalModel(Strict):
    estimator: str  # import path of the estimator class
    params: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    wrap: str | None = None
    wrap_params: dict[str, Any] = {}
    features: dict[str, dict[str, Any]] | None = None


class TraditionalConfig(Strict):
    """Schema of promptcls/conf/traditional.yaml."""

    features: dict[str, dict[str, Any]]
    models: dict[str, TraditionalModel]
    search_space: SearchSpace = {}


CONFIG_SCHEMA = TraditionalConfig
load_config = partial(family_config, "traditional")  # promptcls/conf/traditional.yaml


@dataclass
class TraditionalArgs(TrainArgs):
    """Train TF-IDF + classical estimators (logreg, linear_svm, naive_bayes, random_forest, xgboost)."""

    model: str = field(default="logreg", metadata={"help": "one of the models in conf/traditional.yaml, or all"})
    cv_folds: int = field(default=3, metadata={"help": "folds of the grouped stratified CV grid search"})
    class_weights: str = field(default="balanced", metadata={"help": "balanced, none, or three weights > 0 "
                                                                             "like 1,1,2 (promptcls/class_weights.py)"})
    source_weights: str = field(default="balanced", metadata={
        "help": "balanced (within each class every source weighs the same in total), sqrt (a source weighs as the "
                "square root of its size) or none (every row the same). "
                "The main job's logreg with balanced: OOD recall_c2 0.464 -> 0.520 (README, Unseen sources)"})
    hp: str = field(default="", metadata={"help": "estimator params as a JSON object, e.g. '{\"C\": 8.0}': one fit "
                                                  "with them instead of the grid search (no CV); '' = grid search"})

    def __post_init__(self):
        valid = [*load_config()["models"], "all"]
        if self.model not in valid:
            raise ValueError(f"unknown model {self.model!r}; valid: {', '.join(valid)}")
        if self.hp:
            check_hp(self.model, self.hp)
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds must be >= 2, got {self.cv_folds}")
        parse_class_weights(self.class_weights)
        check_source_weights(self.source_weights)
        super().__post_init__()


def _import(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def check_hp(model: str, hp: str) -> dict:
    """Parse `hp` (JSON estimator params) for `model`; a ValueError names the field and the valid keys."""
    try:
        params = json.loads(hp)
    except json.JSONDecodeError as exc:
        raise ValueError(f"hp: not JSON ({exc}): {hp!r}") from None
    if not isinstance(params, dict):
        raise ValueError(f"hp: expected a JSON object of estimator params, got {hp!r}")
    if model == "all":
        raise ValueError("hp fixes one model's estimator params: pick a model, not all")
    spec = load_config()["models"][model]
    valid = build_pipeline(spec, {}, seed=0).named_steps["clf"].get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"hp: {unknown} are not params of {model} ({spec['estimator']}); valid: {', '.join(valid)}")
    return params


def build_pipeline(spec: dict, features: dict, seed: int) -> Pipeline:
    estimator = _import(spec["estimator"])(**spec.get("params", {}))
    if "wrap" in spec:
        estimator = _import(spec["wrap"])(estimator, **spec.get("wrap_params", {}))
    estimator.set_params(**{k: seed for k in estimator.get_params() if k.endswith("random_state")})
    union = FeatureUnion([(name, TfidfVectorizer(**{**cfg, "ngram_range": tuple(cfg["ngram_range"])}))
                          for name, cfg in features.items()])
    return Pipeline([("features", union), ("clf", estimator)])


def grid_jobs(spec: dict) -> int:
    """Grid-search fits run side by side, one per core (TF-IDF and the linear estimators use one core each: on
    2 cores the three linear models' searches took 129, 152 and 84 s one fit at a time); an estimator that
    parallelises itself (`n_jobs` in its params: random forest, xgboost) keeps the fits one at a time."""
    return 1 if "n_jobs" in spec.get("params", {}) else joblib.cpu_count()


def serving(pipeline: Pipeline) -> Pipeline:
    """Served one prompt at a time: a thread pool per call costs more than it saves (RF p50 36 ms -> see README)."""
    return pipeline.set_params(**{k: 1 for k in pipeline.get_params() if k.endswith("n_jobs")})


class SklearnTextClassifier:
    """A fitted text pipeline behind the contract's `TextClassifier` interface."""

    FILE = "pipeline.joblib"

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.pipeline.predict_proba(list(texts))

    def save(self, path: str) -> None:
        joblib.dump(self.pipeline, Path(path) / self.FILE)

    @classmethod
    def load(cls, path: str) -> "SklearnTextClassifier":
        return cls(joblib.load(Path(path) / cls.FILE))


class TraditionalFamily(Family):
    name = "traditional"
    args_class = TraditionalArgs
    supports_sample_weights = True

    def model_names(self) -> list[str]:
        return list(load_config()["models"])

    def requirements(self) -> list[str]:
        return ["scikit-learn", "joblib", "xgboost-cpu"]

    def build_untrained(self, model_name: str) -> Pipeline:
        config = load_config()
        spec = config["models"][model_name]
        pipeline = build_pipeline(spec, spec.get("features", config["features"]), seed=0)
        valid = pipeline.named_steps["clf"].get_params()
        unknown = sorted(set(spec.get("grid", {})) - set(valid))
        if unknown:
            raise ValueError(f"promptcls/conf/traditional.yaml models.{model_name}.grid: {unknown} are not params "
                             f"of {spec['estimator']}")
        return pipeline

    def train(self, model_name: str, splits: Splits, args: TraditionalArgs) -> SklearnTextClassifier:
        config = load_config()
        spec = config["models"][model_name]
        features = spec.get("features", config["features"])
        grid = {f"clf__{k}": v for k, v in spec.get("grid", {}).items()}
        mlflow.log_params({"estimator": spec["estimator"], "estimator_params": json.dumps(spec.get("params", {})),
                           "features": json.dumps(features)})
        train = splits.train
        weights = sample_weights(args.class_weights, train["label"].to_numpy())
        weights = source_balanced(weights, train, args.source_weights)
        weights = with_feedback_weights(train, weights)  # times the feedback rows' weights, when there are any
        if args.hp:  # one configuration (a tuning trial, or its winner retrained): no grid, no CV
            hp = check_hp(model_name, args.hp)
            pipeline = build_pipeline(spec, features, args.seed).set_params(**{f"clf__{k}": v for k, v in hp.items()})
            pipeline.fit(train["text"].tolist(), train["label"].to_numpy(), clf__sample_weight=weights)
            mlflow.log_params({f"hp_{k}": v for k, v in hp.items()})
            return SklearnTextClassifier(serving(pipeline))
        mlflow.log_param("search_space", json.dumps(grid))
        cv = StratifiedGroupKFold(n_splits=args.cv_folds, shuffle=True, random_state=args.seed)
        with tempfile.TemporaryDirectory(prefix="promptcls-cv-") as cache_dir:
            pipeline = build_pipeline(spec, features, args.seed)
            pipeline.set_params(memory=joblib.Memory(cache_dir, verbose=0))  # features fit once per fold
            search = GridSearchCV(pipeline, grid, cv=cv, n_jobs=grid_jobs(spec), scoring=make_scorer(custom_score),
                                  refit=True, verbose=1, error_score="raise")
            search.fit(train["text"].tolist(), train["label"].to_numpy(), groups=train["group"].to_numpy(),
                       clf__sample_weight=weights)
            best = serving(search.best_estimator_.set_params(memory=None))
        i = search.best_index_
        mlflow.log_params({f"hp_{k.removeprefix('clf__')}": v for k, v in search.best_params_.items()})
        mlflow.log_metrics({"cv_custom_score_mean": float(search.cv_results_["mean_test_score"][i]),
                            "cv_custom_score_std": float(search.cv_results_["std_test_score"][i])})
        log.info("%s: best %s, CV custom_score %.4f ± %.4f", model_name, search.best_params_,
                 search.cv_results_["mean_test_score"][i], search.cv_results_["std_test_score"][i])
        return SklearnTextClassifier(best)

    def tuned_args(self, args: TraditionalArgs, params: dict[str, object]) -> TraditionalArgs:
        """A trial's estimator params go to `hp` (one fit) rather than to argument fields."""
        return dataclasses.replace(args, hp=json.dumps(params))
