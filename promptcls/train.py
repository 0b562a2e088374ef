"""The one training driver every family goes through.

load + validate data -> group-aware split -> MLflow run (the one `mlflow run` created, or a new one) ->
family.train(model) -> evaluate val / test / external through the contract wrapper -> log the pyfunc ->
measure the logged model's latency. `model=all` runs each model of the family as a nested child run.

Under torchrun (WORLD_SIZE > 1, families with `supports_distributed` only) every rank loads and splits the data
identically and takes part in `family.train`; rank 0 alone opens the run and does everything else.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import pandas as pd

from promptcls import LABELS
from promptcls.config import TrainArgs, run_cli
from promptcls.contract import SCORE_COLUMNS, PromptClassifierModel, RememberedScores, log_model, pip_requirements
from promptcls.data import Dataset, Splits, load_dataset, split_dataset, stratified_sample
from promptcls.distributed import is_main_process, rank, require_single_process, world_size
from promptcls.evasion import split_flip_rates
from promptcls.evaluate import log_external_evaluation, log_latency, log_scored, predict, split_metrics
from promptcls.explain import log_explanations
from promptcls.families.base import Family
from promptcls.feedback.retrain import Feedback, load_feedback
from promptcls.names import BEST_MODEL_TAG, DATA_DIGEST_TAG, FAMILY_TAG, MODEL_TAG
from promptcls.ood.scoring import (RANK_SCORE, log_ood_evaluation, log_ood_rows, log_operating_points,
                                   log_paired_predictions, rank_score)
from promptcls.ood.sources import policy_mask, split_ood
from promptcls.policy import DecisionPolicy, fit_policy
from promptcls.text.augment import augmented_frame
from promptcls.text.settings import augment_kinds
from promptcls.tracking import (MODEL_URI_TAG, child_run, entry_run, final_step, log_input, log_new_params,
                                provenance_tags)

log = logging.getLogger(__name__)
RANK_METRIC = "val_custom_score"
POLICY_EFFECT_METRICS = ("custom_score", "benign_flag_rate", "recall_c2", "false_alarm_rate", "malicious_miss_rate")


def log_dataset(dataset: Dataset, splits: Splits) -> None:
    """Dataset inputs (one per split, with per-class row counts) plus digest and counts as params."""
    params = {"data_path": str(dataset.path), "data_digest": dataset.digest,
              "data_exact_duplicates_dropped": dataset.n_exact_duplicates}
    for split, frame in splits.items():
        counts = frame["label"].value_counts().reindex(range(len(LABELS)), fill_value=0)
        tags = {"rows": str(len(frame)), **{f"rows_{LABELS[c]}": str(n) for c, n in counts.items()}}
        source = mlflow.data.from_pandas(frame[["text", "label", "source"]], source=str(dataset.path),
                                         targets="label", name=f"{dataset.path.stem}-{split}")
        log_input(source, context=split, tags=tags)
        params[f"n_{split}"] = len(frame)
        params.update({f"n_{split}_c{c}": int(n) for c, n in counts.items()})
    mlflow.log_params(params)
    mlflow.set_tag(DATA_DIGEST_TAG, dataset.digest)
    by_source = {split: frame.groupby(["source", "label"]).size().unstack(fill_value=0)
                 .rename(columns=dict(enumerate(LABELS))).to_dict(orient="index") for split, frame in splits.items()}
    mlflow.log_dict(by_source, "data/rows_by_source.json")


@contextlib.contextmanager
def stage(what: str):
    """Log how long one post-training step took: the main job's budget is spent here as much as in training."""
    start = time.perf_counter()
    yield
    log.info("%s: %.0f s", what, time.perf_counter() - start)


def served_policy_fitter(classifier, val: pd.DataFrame, args: TrainArgs) -> Callable[[float], DecisionPolicy]:
    """Fits the threshold policy on the validation split at a given benign-flag target, on the probabilities the
    contract serves (views and windows aggregated, computed once here), so the fitted bounds hold as served."""
    served = predict(PromptClassifierModel(classifier).as_predict_fn(), val["text"].tolist())[SCORE_COLUMNS]
    proba, labels, risky = served.to_numpy(dtype=float), val["label"].to_numpy(), policy_mask(val).to_numpy()
    return lambda benign_flag_target: fit_policy(proba, labels, benign_flag_target, args.policy_miss_target,
                                                 review_target=args.policy_review_target, risky=risky)


def fit_decision_policy(classifier, val: pd.DataFrame, args: TrainArgs) -> DecisionPolicy:
    """The policy the logged model serves: fitted on the validation split, or plain argmax."""
    if args.policy == "none":
        return DecisionPolicy()
    policy = served_policy_fitter(classifier, val, args)(args.policy_benign_flag_target)
    mlflow.log_params({f"policy_{k}": v for k, v in policy.to_dict().items() if k != "kind"})
    return policy


class FittedModel:
    """A trained model with the decision policy it serves; `metrics` collects what has been scored so far."""

    def __init__(self, scores: RememberedScores, policy: DecisionPolicy, metrics: dict[str, float]):
        self.scores, self.policy, self.metrics = scores, policy, metrics
        self.classifier = scores.classifier  # what is logged
        self.predict_fn = PromptClassifierModel(self.scores, policy).as_predict_fn()
        self.step = final_step()  # after the family's per-epoch curves: the restored model's values are the run's
        self.scored: dict[str, tuple[pd.DataFrame, object]] = {}  # split -> (rows, predicted labels)

    def score(self, frame: pd.DataFrame, prefix: str) -> None:
        """Log `{prefix}_*` metrics on one split (under a policy, also its argmax effect) and keep them."""
        with stage(f"scored {prefix} ({len(frame)} rows)"):
            out = predict(self.predict_fn, frame["text"].tolist())
        scores = log_scored(frame, out, prefix, with_ci=prefix == "test", step=self.step)
        self.scored[prefix] = (frame, out["label"].to_numpy())
        self.metrics.update({f"{prefix}_{k}": v for k, v in scores.items()})
        if self.policy.kind != "none":  # the policy's effect: the same split under plain argmax
            argmax = split_metrics(PromptClassifierModel(self.scores).as_predict_fn(), frame)
            mlflow.log_metrics({f"{prefix}_argmax_{k}": argmax[k] for k in POLICY_EFFECT_METRICS})

    def score_ood(self, ood: pd.DataFrame) -> None:
        """Log `ood_*` on the held-out sources (never trained on) and `rank_score`, and keep them."""
        with stage(f"scored ood ({len(ood)} rows)"):
            ood_metrics, ood_pred = log_ood_evaluation(self.predict_fn, ood, step=self.step)
        self.metrics.update(ood_metrics)
        self.scored["ood"] = (ood, ood_pred)
        self.metrics[RANK_SCORE] = rank_score(self.metrics)
        mlflow.log_metric(RANK_SCORE, self.metrics[RANK_SCORE], step=self.step)

    def log_operating_points(self, val: pd.DataFrame, ood: pd.DataFrame, args: TrainArgs) -> None:
        """Under the threshold policy: the policy refitted at other validation benign-flag targets, on validation
        and OOD (the classifier's scores are remembered, so this costs the input pipeline, not the model)."""
        if self.policy.kind == "none":
            return
        with stage("OOD operating points"):
            fit_at = served_policy_fitter(self.scores, val, args)
            log_operating_points(lambda target: PromptClassifierModel(self.scores, fit_at(target)).as_predict_fn(),
                                 args.policy_benign_flag_target, val, ood)


def augmented(splits: Splits, args: TrainArgs, window_chars: int | None) -> Splits:
    """The splits with the training split augmented as `args.augment` says (counts logged as params), copies cut
    to `window_chars` for a model that reads no more (`Family.window_chars`)."""
    if args.augment == "none":
        return splits
    train, counts = augmented_frame(splits.train, augment_kinds(args.augment), args.seed, window_chars)
    log_new_params(counts)
    log.info("augment=%s: %d rows added to %d training rows", args.augment, len(train) - len(splits.train),
             len(splits.train))
    return Splits(train=train, val=splits.val, test=splits.test)


def fit_validated(family: Family, model_name: str, splits: Splits, args: TrainArgs) -> FittedModel:
    """Train one model into the active run and score the validation split only: all a tuning trial does."""
    mlflow.set_tags({FAMILY_TAG: family.name, MODEL_TAG: model_name, **provenance_tags()})
    splits = augmented(splits, args, family.window_chars(args))
    log.info("training %s/%s on %d rows", family.name, model_name, len(splits.train))
    start = time.perf_counter()
    classifier = family.train(model_name, splits, args)
    metrics = {"train_seconds": time.perf_counter() - start}
    mlflow.log_metric("train_seconds", metrics["train_seconds"])
    scores = RememberedScores(classifier)
    fitted = FittedModel(scores, fit_decision_policy(scores, splits.val, args), metrics)
    fitted.score(splits.val, "val")
    with stage("val evasion flip rates"):
        evasion = split_flip_rates(lambda texts: fitted.predict_fn(pd.DataFrame({"text": texts})), splits.val,
                                   args.seed)
    mlflow.log_metrics(evasion, step=fitted.step)
    fitted.metrics.update(evasion)
    return fitted


def train_one(family: Family, model_name: str, splits: Splits, external: pd.DataFrame | None,
              args: TrainArgs, feedback: Feedback | None = None, ood: pd.DataFrame | None = None,
              remember: dict | None = None) -> dict[str, float]:
    """Train, evaluate and log one model into the active run; returns its metrics. `feedback`: reviewed rows, the
    held-out part scored as `feedback_*`; `ood`: held-out sources, scored as `ood_*` (and `rank_score`), never
    trained on; `remember`: run id -> the classifier's scores per text, kept for the main job's ensembles."""
    fitted = fit_validated(family, model_name, splits, args)
    fitted.score(splits.test, "test")
    if feedback is not None and len(feedback.holdout):
        fitted.score(feedback.holdout, "feedback")  # held-out reviewed rows: never trained on
    if ood is not None:
        fitted.score_ood(ood)
        fitted.log_operating_points(splits.val, ood, args)
    metrics, predict_fn, policy = fitted.metrics, fitted.predict_fn, fitted.policy
    log_paired_predictions(fitted.scored)
    if external is not None:
        metrics.update(log_external_evaluation(predict_fn, external))
    if args.explain_samples:
        with stage(f"SHAP on {args.explain_samples} validation prompts"):
            log_explanations(lambda texts: predict_fn(pd.DataFrame({"text": texts}))[SCORE_COLUMNS].to_numpy(),
                             splits.val["text"].tolist(), args.explain_samples, args.seed)
    with stage("logged the model and measured its latency"):
        info = log_model(fitted.classifier, splits.val["text"].tolist(), pip_requirements(*family.requirements()),
                         policy, max_input_chars=args.max_input_chars)
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)  # what `select` looks for
        metrics.update(log_latency(info.model_uri, splits.val["text"].tolist()))
    if remember is not None:
        remember[mlflow.active_run().info.run_id] = fitted.scores.rows
    log.info("%s/%s: val custom_score %.4f, test custom_score %.4f, p50 %.1f ms — model %s", family.name,
             model_name, metrics["val_custom_score"], metrics["test_custom_score"], metrics["latency_p50_ms"],
             info.model_uri)
    return metrics


@dataclass(frozen=True)
class ModelResult:
    run_id: str
    family: str
    model: str
    metrics: dict[str, float]


def train_on_other_rank(family: Family, models: list[str], splits: Splits, args: TrainArgs) -> list[ModelResult]:
    """A torchrun rank other than 0: train the same models on the same splits alongside rank 0, log nothing."""
    for name in models:
        log.info("rank %d of %d: training %s/%s; rank 0 logs to MLflow", rank(), world_size(), family.name, name)
        family.train(name, splits, args)
    return []


def run_splits(frame: pd.DataFrame, args: TrainArgs) -> tuple[Splits, pd.DataFrame | None]:
    """A training run's splits of the corpus `frame` and its held-out OOD rows (None without OOD sources): the
    sample, the OOD sources and the random split that `args` (seed, sample, sizes, ood_sources) name."""
    frame, ood = split_ood(stratified_sample(frame, args.sample, args.seed), args.ood_sources)
    return split_dataset(frame, args.val_size, args.test_size, args.seed), ood


def run(family: Family, args: TrainArgs, only: list[str] | None = None,
        remember: dict | None = None) -> list[ModelResult]:
    """Run one training entry point; returns one result per trained model, best first by rank_score (else val
    custom_score; none on torchrun ranks other than 0). `only`: with model=all, train just these models;
    `remember`: see `train_one`."""
    if not family.supports_distributed:
        require_single_process(f"the {family.name} family")
    dataset = load_dataset(args.data)
    splits, ood = run_splits(dataset.frame, args)
    feedback = None
    if args.feedback:
        feedback = load_feedback(args.feedback, splits, args.feedback_holdout, args.feedback_weight, args.seed, ood)
        splits = feedback.training_splits(splits, family.supports_sample_weights)
    models = (only or family.model_names()) if args.model == "all" else [args.model]
    if not is_main_process():
        return train_on_other_rank(family, models, splits, args)
    external = load_dataset(args.external).frame if args.external else None
    with entry_run(args.experiment, run_name=f"{family.name}-{args.model}",
                   multi_process=family.supports_distributed) as parent:
        log_new_params(args.to_params())
        log_dataset(dataset, splits)
        log_ood_rows(dataset, ood)
        if feedback is not None:
            feedback.log()
        if args.model != "all":
            metrics = train_one(family, args.model, splits, external, args, feedback, ood, remember)
            return [ModelResult(parent.info.run_id, family.name, args.model, metrics)]
        mlflow.set_tags({FAMILY_TAG: family.name, MODEL_TAG: "all"})
        results = []
        for name in models:
            with child_run(run_name=f"{family.name}-{name}") as child:
                mlflow.log_params(args.to_params() | {"model": name})
                log_dataset(dataset, splits)
                log_ood_rows(dataset, ood)
                if feedback is not None:
                    feedback.log()
                results.append(ModelResult(child.info.run_id, family.name, name,
                                           train_one(family, name, splits, external, args, feedback, ood,
                                                     remember)))
        results.sort(key=lambda r: r.metrics.get(RANK_SCORE, r.metrics[RANK_METRIC]), reverse=True)
        table = pd.DataFrame({r.model: r.metrics for r in results}).T
        mlflow.log_table(table.reset_index(names="model"), "summary.json")
        best = table.index[0]
        mlflow.set_tag(BEST_MODEL_TAG, best)
        mlflow.log_metric(f"best_{RANK_METRIC}", float(table.loc[best, RANK_METRIC]))
        log.info("summary (best first by %s):\n%s", RANK_SCORE if RANK_SCORE in table else RANK_METRIC,
                 table[[c for c in (RANK_SCORE, RANK_METRIC, "ood_custom_score", "test_custom_score",
                                    "train_seconds", "latency_p50_ms") if c in table]].to_string())
        return results


def main(family: Family, args: TrainArgs) -> None:
    """Entry point of one family's MLproject entry."""
    run_cli(lambda: run(family, args))


def main_any(argv: list[str] | None = None) -> None:
    """Entry point `train`: any family registered in promptcls/families by `--family`; `--model ''` = the family's
    default model; the family's own fields as `--family-args 'field=value,...'`."""
    import argparse
    import dataclasses

    from promptcls.config import assignments, parse_args
    from promptcls.families import FAMILIES, get_family

    pre = argparse.ArgumentParser(prog="train (generic)", add_help=False)
    pre.add_argument("--family", default="traditional", choices=list(FAMILIES), help="registered family")
    pre.add_argument("--model", default="", help="model within the family ('' = the family's default)")
    pre.add_argument("--family-args", default="", help="the family's own fields, 'field=value,...'")
    known, rest = pre.parse_known_args(argv)
    if {"-h", "--help"} & set(rest):
        print(pre.format_help())  # then the chosen family's own flags
    family = get_family(known.family)
    args = parse_args(family.args_class, rest + (["--model", known.model] if known.model else []))
    try:
        args = dataclasses.replace(args, **assignments(family.args_class, known.family_args, "family_args"))
    except ValueError as exc:
        pre.error(str(exc))
    main(family, args)
