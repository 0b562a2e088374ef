"""Ensembles of logged models: soft voting with weights fitted on validation, or stacking with a logistic-regression
meta-learner, over any runs' contract models (default: the best run of each family in the experiment).

The ensemble is a family like the others, so `promptcls.train` gives it the same splits, OOD set, policy,
evaluation, model logging and latency. Its members must have been trained on exactly the same splits (checked on
the validation rows they logged); their logged models are copied into the ensemble's artifact, so the ensemble
serves standalone through `mlflow.pyfunc.load_model`.

Each member windows a long prompt itself (its own contract, its own window size); the ensemble makes no windows of
its own, so a member sees the whole prompt as it would alone (and, in the main job, the texts its run scored).

* voting: P = sum_i w_i P_i, w = softmax(z) fitted by minimising validation log-loss.
* stacking: multinomial logistic regression on the members' log-probabilities, fitted on validation. Its own
  validation scores (and the decision policy fitted on them) use 5-fold cross-fitted predictions on validation,
  so `val_*` is not scored on the rows the meta-learner was fitted on.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from scipy.optimize import minimize
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from promptcls.config import TrainArgs, UsageError
from promptcls.contract import SCORE_COLUMNS, RememberedRows, RememberedScores
from promptcls.data import Splits, load_dataset
from promptcls.families.base import Family
from promptcls.names import FAMILY_TAG
from promptcls.ood.paired import load_predictions
from promptcls.ood.scoring import RANK_SCORE, row_key
from promptcls.text.settings import robustness
from promptcls.tracking import MODEL_URI_TAG, model_runs

log = logging.getLogger(__name__)
METHODS = ("voting", "stacking")
SPLIT_PARAMS = ("seed", "sample", "val_size", "test_size", "ood_sources")
EPS = 1e-7


@dataclass
class EnsembleArgs(TrainArgs):
    """Combine logged models into one: soft voting (weights fitted on validation) or stacking."""

    model: str = field(default="all", metadata={"help": "voting, stacking, or all (one child run each)"})
    members: str = field(default="", metadata={"help": "comma-separated run ids of members (default: the best run "
                                                       "of each family in the experiment, by rank_score)"})
    explain_samples: int = field(default=0, metadata={"help": "validation prompts explained with SHAP (0 = off)"})

    def __post_init__(self):
        if self.model not in (*METHODS, "all"):
            raise ValueError(f"model must be voting, stacking or all, got {self.model!r}")
        super().__post_init__()


class EnsembleClassifier:
    """Members' contract pyfuncs combined by `method`; `oof` (training only, never saved) holds cross-fitted
    validation probabilities of a stacker, keyed by text."""

    META = "ensemble.json"

    def __init__(self, method: str, members: list, member_dirs: list[str], member_runs: list[str],
                 weights: np.ndarray | None = None, meta=None, cache: dict | None = None):
        self.method, self.members, self.member_dirs, self.member_runs = method, members, member_dirs, member_runs
        self.weights, self.meta, self.cache, self.oof = weights, meta, cache, {}

    @property
    def window_chars(self) -> int:
        """No windows at the ensemble's level: each member's contract windows for itself."""
        return int(robustness()["limits"]["max_input_chars"])

    def member_proba(self, texts: list[str]) -> list[np.ndarray]:
        """Each member's contract probabilities; in training remembered per text in `cache` (run id ->
        `RememberedRows`), shared by the voting and stacking runs; a loaded ensemble remembers nothing."""
        out = []
        for run_id, member in zip(self.member_runs, self.members):
            def score(batch, member=member):
                return member.predict(pd.DataFrame({"text": batch}))[SCORE_COLUMNS].to_numpy(dtype=float)
            if self.cache is None:
                out.append(score(texts))
                continue
            if run_id not in self.cache:
                self.cache[run_id] = RememberedRows(score)
            out.append(self.cache[run_id](texts))
        return out

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        proba = self.combine(self.member_proba(texts))
        for i, text in enumerate(texts):
            if text in self.oof:
                proba[i] = self.oof[text]
        return proba

    def raw_proba(self, texts: list[str]) -> np.ndarray:
        """The members' raw-string probabilities (their input pipelines bypassed: `predict_texts(normalize=False)`)
        combined: what "pipeline off" measures for an ensemble. Nothing remembered."""
        return self.combine([member.unwrap_python_model().predict_texts(list(texts), normalize=False)
                             [SCORE_COLUMNS].to_numpy(dtype=float) for member in self.members])

    def combine(self, parts: list[np.ndarray]) -> np.ndarray:
        if self.method == "voting":
            return sum(w * p for w, p in zip(self.weights, parts))
        return self.meta.predict_proba(features(parts))

    def save(self, path: str) -> None:
        for i, source in enumerate(self.member_dirs):
            shutil.copytree(source, Path(path) / "members" / str(i))
        meta = {"method": self.method, "member_runs": self.member_runs,
                "weights": None if self.weights is None else [float(w) for w in self.weights]}
        (Path(path) / self.META).write_text(json.dumps(meta))
        if self.meta is not None:
            (Path(path) / "meta_learner.pkl").write_bytes(cloudpickle.dumps(self.meta))

    @classmethod
    def load(cls, path: str) -> "EnsembleClassifier":
        meta = json.loads((Path(path) / cls.META).read_text())
        dirs = [str(Path(path) / "members" / str(i)) for i in range(len(meta["member_runs"]))]
        members = [mlflow.pyfunc.load_model(d) for d in dirs]
        learner = cloudpickle.loads((Path(path) / "meta_learner.pkl").read_bytes()) \
            if meta["method"] == "stacking" else None
        weights = np.array(meta["weights"]) if meta["weights"] is not None else None
        return cls(meta["method"], members, dirs, meta["member_runs"], weights, learner)


def features(parts: list[np.ndarray]) -> np.ndarray:
    return np.hstack([np.log(np.clip(p, EPS, 1.0)) for p in parts])


def fit_weights(parts: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Simplex weights minimising the log-loss of the weighted mean of `parts` on labels `y`."""
    stacked = np.stack(parts)                      # members x rows x classes
    picked = stacked[:, np.arange(len(y)), y]      # members x rows

    def loss(z):
        return -np.log(np.clip(softmax(z) @ picked, EPS, None)).mean()

    return softmax(minimize(loss, np.zeros(len(parts)), method="L-BFGS-B").x)


def _same(value: str | None, wanted: object) -> bool:
    try:
        return float(value) == float(wanted)
    except (TypeError, ValueError):
        return value == str(wanted)


def default_members(client: MlflowClient, experiment_id: str, args: EnsembleArgs, digest: str) -> list[str]:
    """The best finished run of each (non-ensemble) family by rank_score among runs with the same splits."""
    best: dict[str, str] = {}
    for run in model_runs(client, experiment_id, "attributes.status = 'FINISHED'", [f"metrics.`{RANK_SCORE}` DESC"]):
        family, params = run.data.tags.get(FAMILY_TAG), run.data.params
        if family in (None, "ensemble") or family in best or RANK_SCORE not in run.data.metrics:
            continue
        if params.get("data_digest") == digest and all(_same(params.get(k), getattr(args, k)) for k in SPLIT_PARAMS):
            best[family] = run.info.run_id
    return list(best.values())


class EnsembleFamily(Family):
    name = "ensemble"
    args_class = EnsembleArgs

    def __init__(self, remembered: dict | None = None):
        self.cache: dict = {}            # member probabilities, shared by the voting and stacking runs
        self.remembered = remembered or {}  # run id -> its classifier's scores per text (the main job's members)
        self.loaded: dict[str, tuple] = {}
        self.distributions: list[str] = []

    def model_names(self) -> list[str]:
        return list(METHODS)

    def requirements(self) -> list[str]:
        return self.distributions

    def resolve(self, args: EnsembleArgs) -> list[str]:
        if args.members:
            return [m.strip() for m in args.members.split(",") if m.strip()]
        experiment_id = mlflow.active_run().info.experiment_id  # the ensemble's own experiment
        members = default_members(MlflowClient(), experiment_id, args, load_dataset(args.data).digest)
        log.info("ensemble members (best run of each family by %s): %s", RANK_SCORE, ", ".join(members) or "none")
        return members

    def load_member(self, run_id: str, val: pd.DataFrame) -> tuple:
        """(pyfunc, local model directory) of a member whose validation rows are exactly `val`."""
        if run_id in self.loaded:
            return self.loaded[run_id]
        try:
            run = MlflowClient().get_run(run_id)
        except Exception as exc:  # noqa: BLE001 - an unknown id is a usage error, whatever the store says
            raise UsageError(f"members: run {run_id!r} not found ({exc})") from None
        uri = run.data.tags.get(MODEL_URI_TAG)
        if not uri:
            raise UsageError(f"members: run {run_id} logged no contract model (tag {MODEL_URI_TAG})")
        rows = load_predictions(run_id)
        wanted = set(val["text"].map(row_key))
        if rows is None or set(rows.loc[rows["split"] == "val", "key"]) != wanted:
            raise UsageError(f"members: run {run_id} was not trained on this ensemble's splits (its validation rows "
                             f"differ); use the same data, {', '.join(SPLIT_PARAMS)}")
        local = mlflow.artifacts.download_artifacts(uri)
        requirements = Path(local, "requirements.txt").read_text().split()
        self.distributions = list(dict.fromkeys(
            [*self.distributions, *(r.split("==")[0] for r in requirements if not r.startswith("-"))]))
        member = mlflow.pyfunc.load_model(local)
        if run_id in self.remembered:  # the same weights scored these texts in the member's own run: reuse them
            model = member.unwrap_python_model()
            model.classifier = RememberedScores(model.classifier, self.remembered[run_id])
        self.loaded[run_id] = (member, local)
        return self.loaded[run_id]

    def train(self, model_name: str, splits: Splits, args: EnsembleArgs) -> EnsembleClassifier:
        members = self.resolve(args)
        if len(members) < 2:
            raise UsageError(f"an ensemble needs >= 2 member runs, got {len(members)}: pass members=ID,ID or train "
                             "runs of two families with the same splits first")
        loaded = [self.load_member(m, splits.val) for m in members]
        ensemble = EnsembleClassifier(model_name, [p for p, _ in loaded], [d for _, d in loaded], members,
                                      cache=self.cache)
        texts, y = splits.val["text"].tolist(), splits.val["label"].to_numpy()
        parts = ensemble.member_proba(texts)
        mlflow.log_params({"ensemble_members": ",".join(members), "ensemble_method": model_name})
        mlflow.log_metric("n_members", len(members))
        if model_name == "voting":
            ensemble.weights = fit_weights(parts, y)
            mlflow.log_params({f"weight_{i}": round(float(w), 4) for i, w in enumerate(ensemble.weights)})
        else:
            x = features(parts)
            learner = LogisticRegression(C=1.0, max_iter=2000)
            folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=args.seed)
            oof = cross_val_predict(learner, x, y, cv=folds, method="predict_proba")
            ensemble.meta = learner.fit(x, y)
            ensemble.oof = dict(zip(texts, oof))
        log.info("ensemble %s of %s", model_name, ", ".join(members))
        return ensemble
