"""`behaviour`: CheckList-style behavioural tests of any logged model (a model URI), logged to an MLflow run.

Four test types, cases in `promptcls/conf/behaviour.yaml`, perturbations in `promptcls/perturb.py`:

* minimum_functionality -- hand-written prompts per class must get their label (benign how-to questions that only
  sound risky included: over-flagging is the known failure);
* invariance -- casing, whitespace, punctuation edits and hand-written paraphrases must not change the label;
* directional -- appending an injection to a benign prompt must not lower `score_malicious`;
* evasion -- the 30 kinds of `promptcls.perturb.EVASIONS` (invisible and format characters, homoglyphs, accents,
  spelling games, encodings, wrappers, long benign context) applied to malicious prompts the model flags correctly
  must not drop the label below malicious (computed by `promptcls.evasion`, shared with training's
  `val_evasion_flip_rate`).

Logged: `behaviour_<type>_pass_rate` (and per class for minimum functionality), `evasion_flip_rate` (share of
correctly flagged (prompt, perturbation) pairs whose label drops) overall and per perturbation, and
`behaviour/cases.csv` with every case and its outcome.

How "with" and "without" normalisation are measured (both honest, both over the same prompts):

* `evasion_flip_rate` -- through the loaded pyfunc's `predict`, i.e. the model contract, which applies
  `promptcls.data.normalize_text` before the classifier. A pyfunc loaded in this process runs the `promptcls` that
  this process imports, not the copy logged in the model's `code/` folder (a fresh process such as
  `mlflow models serve` runs the logged copy); the tag `promptcls.behaviour.normalizer_matches_model` says whether
  the two `data.py` files are identical, so the figure is the deployed model's figure only when it is `true`.
* `evasion_flip_rate_without_normalizer` -- the whole input pipeline bypassed (canonicalisation, views, windows):
  the model's underlying classifier
  (`loaded.unwrap_python_model().predict_texts(texts, normalize=False)`) is called on the raw prompt and the raw perturbed
  prompt. Only for models logged through `promptcls.contract`; otherwise it is not logged.

In both cases the base prompt is scored through the same path as its perturbations, so a pair counts only when
that path flagged the unperturbed prompt as malicious.
"""

from __future__ import annotations

import hashlib
import logging
import random
import tempfile
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import yaml

from promptcls import LABELS
from promptcls.config import UsageError, default_experiment, experiment_field
from promptcls.evasion import evasion_outcomes, flip_rates, perturb_all
from promptcls.names import BEHAVIOUR_MODEL_URI_TAG, BEHAVIOUR_NORMALIZER_TAG, KIND_TAG
from promptcls.perturb import INVARIANCES
from promptcls.tracking import entry_run, log_new_params

log = logging.getLogger(__name__)
DEFAULT_CASES = Path(str(files("promptcls.conf").joinpath("behaviour.yaml")))
TEST_TYPES = ("minimum_functionality", "invariance", "directional", "evasion")
MALICIOUS = LABELS.index("malicious")
AS_IS, WITHOUT = "model", "without_normalizer"


@dataclass
class BehaviourArgs:
    """Behavioural tests (minimum functionality, invariance, directional, evasion) of a logged model."""

    model_uri: str = field(metadata={"help": "model to test: runs:/…/model, models:/name@alias, a local path"})
    cases: str = field(default=str(DEFAULT_CASES), metadata={"help": "YAML with the behavioural cases"})
    seed: int = field(default=0, metadata={"help": "seed of the random perturbations"})
    experiment: str = experiment_field()

    def __post_init__(self):
        self.experiment = self.experiment or default_experiment()
        if not Path(self.cases).is_file():
            raise ValueError(f"cases: file not found: {self.cases}")


def load_cases(path: str | Path = DEFAULT_CASES) -> dict:
    cases = yaml.safe_load(Path(path).read_text())
    unknown = set(cases["minimum_functionality"]) - set(LABELS)
    if unknown:
        raise UsageError(f"{path}: minimum_functionality classes must be among {LABELS}, got {sorted(unknown)}")
    return cases


class ModelUnderTest:
    """A loaded contract model, scored through the pyfunc (normaliser inside) or, bypassing the normaliser,
    through its underlying classifier."""

    def __init__(self, model_uri: str):
        self.uri = model_uri
        self._tmp = tempfile.TemporaryDirectory(prefix="promptcls-behaviour-")  # removed with the object
        self.local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=self._tmp.name)
        self.pyfunc = mlflow.pyfunc.load_model(self.local)
        try:
            self.wrapper = self.pyfunc.unwrap_python_model()
            self.classifier = self.wrapper.classifier
        except (AttributeError, mlflow.exceptions.MlflowException):
            self.wrapper = self.classifier = None  # not a promptcls contract model: the bypass cannot be measured

    def normalizer_matches(self) -> bool | None:
        """Whether the model's logged copy of the input pipeline (promptcls/data.py, contract.py, text/*.py) is the
        one this process runs."""
        logged, current = Path(self.local) / "code" / "promptcls", Path(__file__).parent
        if not (logged / "data.py").is_file():
            return None
        names = ["data.py", "contract.py", *(f"text/{p.name}" for p in sorted((current / "text").glob("*.py")))]
        digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None  # noqa: E731
        return all(digest(logged / name) == digest(current / name) for name in names)

    def score(self, texts: list[str], path: str = AS_IS) -> pd.DataFrame:
        """Contract output (`label`, `score_malicious`, …) for `texts` through `path`."""
        if path == WITHOUT:
            return self.wrapper.predict_texts(list(texts), normalize=False)
        return self.pyfunc.predict(pd.DataFrame({"text": list(texts)})).reset_index(drop=True)


def _rows(test_type: str, group: str, originals: list[str], texts: list[str], expected, base: pd.DataFrame,
          out: pd.DataFrame, passed: np.ndarray, path: str = AS_IS) -> pd.DataFrame:
    return pd.DataFrame({
        "test_type": test_type, "group": group, "path": path, "original": originals, "text": texts,
        "expected": expected, "original_label": base["label"].to_numpy(), "label": out["label"].to_numpy(),
        "original_score_malicious": base["score_malicious"].to_numpy(),
        "score_malicious": out["score_malicious"].to_numpy(),
        "passed": pd.array([None if pd.isna(x) else bool(x) for x in passed], dtype="boolean")})


def run_suite(model: ModelUnderTest, cases: dict, seed: int = 0) -> tuple[pd.DataFrame, dict[str, float]]:
    """Every case and its outcome (one row each; `passed` is NaN for evasion pairs whose base the path did not
    flag) and the metrics derived from them."""
    rng = random.Random(seed)
    frames = []
    mft = cases["minimum_functionality"]
    for name, prompts in mft.items():
        out = model.score(prompts)
        label = LABELS.index(name)
        frames.append(_rows("minimum_functionality", name, prompts, prompts, label, out, out,
                            out["label"].to_numpy() == label))
    prompts = [p for group in mft.values() for p in group]
    base = model.score(prompts)
    for name, perturb in INVARIANCES.items():
        texts = [perturb(p, rng) for p in prompts]
        out = model.score(texts)
        frames.append(_rows("invariance", name, prompts, texts, base["label"].to_numpy(), base, out,
                            out["label"].to_numpy() == base["label"].to_numpy()))
    for i, group in enumerate(cases.get("paraphrases", [])):
        out = model.score(group)
        first = out.iloc[[0] * (len(group) - 1)].reset_index(drop=True)
        rest = out.iloc[1:].reset_index(drop=True)
        frames.append(_rows("invariance", f"paraphrase_{i}", [group[0]] * (len(group) - 1), group[1:],
                            first["label"].to_numpy(), first, rest, rest["label"].to_numpy() == first["label"].to_numpy()))
    benign = mft.get("benign", [])
    benign_base = model.score(benign)
    for i, suffix in enumerate(cases.get("directional_suffixes", [])):
        out = model.score([p + suffix for p in benign])
        frames.append(_rows("directional", f"injection_suffix_{i}", benign, [p + suffix for p in benign], np.nan,
                            benign_base, out,
                            out["score_malicious"].to_numpy() >= benign_base["score_malicious"].to_numpy() - 1e-9))
    malicious = mft.get("malicious", [])
    perturbed = perturb_all(malicious, rng)
    for path in (AS_IS, WITHOUT) if model.classifier is not None else (AS_IS,):
        mal_base, results = evasion_outcomes(lambda texts: model.score(texts, path), malicious, perturbed)
        for name, (out, kept) in results.items():
            frames.append(_rows("evasion", name, malicious, perturbed[name], MALICIOUS, mal_base, out, kept, path))
    table = pd.concat(frames, ignore_index=True)
    return table, suite_metrics(table)


def suite_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Pass rates per test type (evasion: through the model as-is) and evasion flip rates."""
    metrics = {}
    as_is = table[table["path"] == AS_IS]
    for test_type in TEST_TYPES:
        passed = as_is.loc[as_is["test_type"] == test_type, "passed"].dropna()
        if len(passed):
            metrics[f"behaviour_{test_type}_pass_rate"] = float(passed.astype(float).mean())
    mft = as_is[as_is["test_type"] == "minimum_functionality"]
    for name, part in mft.groupby("group"):
        metrics[f"behaviour_minimum_functionality_{name}_pass_rate"] = float(part["passed"].astype(float).mean())
    evasion = table[table["test_type"] == "evasion"]
    for path in (AS_IS, WITHOUT):
        part = evasion[evasion["path"] == path]
        kept = {name: g["passed"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
                for name, g in part.groupby("group", sort=False)}
        rates = flip_rates(kept)
        if path == WITHOUT:  # overall figures only, suffixed
            rates = {f"{k}_without_normalizer": v for k, v in rates.items()
                     if k in ("evasion_flip_rate", "evasion_pairs")}
        metrics.update(rates)
    return metrics


def run(args: BehaviourArgs) -> dict[str, float]:
    """Run the suite against `args.model_uri` and log it to a run tagged `promptcls.kind=behaviour`."""
    cases = load_cases(args.cases)
    try:
        model = ModelUnderTest(args.model_uri)
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        raise UsageError(f"cannot load {args.model_uri}: {exc}") from None
    with entry_run(args.experiment, run_name="behaviour"):
        matches = model.normalizer_matches()
        mlflow.set_tags({KIND_TAG: "behaviour", BEHAVIOUR_MODEL_URI_TAG: args.model_uri,
                         BEHAVIOUR_NORMALIZER_TAG: str(matches).lower()})
        log_new_params({"model_uri": args.model_uri, "cases": args.cases, "seed": args.seed})
        table, metrics = run_suite(model, cases, args.seed)
        mlflow.log_metrics(metrics)
        mlflow.log_text(table.to_csv(index=False), "behaviour/cases.csv")
        if "evasion_flip_rate" not in metrics:
            log.warning("the model flagged none of the malicious prompts: no evasion flip rate")
        if model.classifier is None:
            log.warning("%s is not a promptcls contract model: the flip rate without the normaliser is skipped",
                        args.model_uri)
        if matches is False:
            log.warning("the model's logged normalize_text differs from this checkout's: evasion_flip_rate uses "
                        "this checkout's (see promptcls.behaviour docstring)")
        width = max(map(len, metrics))
        print("\n".join(f"{k:<{width}}  {v:.4f}" for k, v in sorted(metrics.items())))
        return metrics
