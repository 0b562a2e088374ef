"""`select`: rank finished runs under gates, register the winner, promote it, write the card.

The ranking metric comes from the gates file (default `rank_score`, the mean of `val_custom_score` and
`ood_custom_score`, see promptcls/ood/scoring.py). A winner replaces a champion trained on the same data only when
it ranks higher *and* an exact McNemar test on the validation/OOD rows both were scored on says it makes fewer
benign <-> malicious errors (one-sided p < `paired_alpha` of the gates file); `force=true` skips the paired test
(and the data-digest check).
Nothing in the registry changes until every check has passed; `dry_run` changes nothing at all.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass, field
from functools import partial
from importlib.resources import files
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from promptcls import server
from promptcls.card import registry_description, render_card
from promptcls.config import UsageError, default_experiment, experiment_field
from promptcls.names import (CHALLENGER, CHAMPION, CODE_VERSION_TAG, DATA_DIGEST_TAG, DECISION_TAG, FAMILY_TAG,
                             KIND_TAG, MODEL_TAG, PREVIOUS, PROMOTED_VERSION_TAG, SELECTED_RUN_TAG, UNCHECKED_GATES_TAG,
                             champion_uri)
from promptcls.ood.paired import PairedResult, compare_runs
from promptcls.schemas import GatesFile, load_yaml
from promptcls.tracking import MODEL_URI_TAG, code_version, entry_run, log_new_params, model_runs

log = logging.getLogger(__name__)
DEFAULT_GATES = Path(str(files("promptcls.registry").joinpath("gates.yaml")))  # package data: works from a wheel


class SelectionError(UsageError):
    """Selection could not promote anything; the registry is unchanged."""


@dataclass(frozen=True)
class Gate:
    metric: str
    min: float | None = None
    max: float | None = None
    required: bool = True

    def describe(self) -> str:
        bounds = [f">= {self.min}"] * (self.min is not None) + [f"<= {self.max}"] * (self.max is not None)
        return f"{self.metric} {' and '.join(bounds)}" + ("" if self.required else " (optional)")

    def failure(self, metrics: dict[str, float]) -> str | None:
        """None when passed, else why (with the margin)."""
        value = metrics.get(self.metric)
        if value is None:
            return f"{self.metric} not logged" if self.required else None
        if self.min is not None and value < self.min:
            return f"{self.metric}={value:.4f} < {self.min} (short by {self.min - value:.4f})"
        if self.max is not None and value > self.max:
            return f"{self.metric}={value:.4f} > {self.max} (over by {value - self.max:.4f})"
        return None

    def status(self, metrics: dict[str, float]) -> str:
        value = metrics.get(self.metric)
        reason = self.failure(metrics)
        if value is None:
            return reason or "not logged (optional)"
        return f"FAILED: {reason}" if reason else f"passed ({value:.4f})"


_OVERRIDE = re.compile(r"^\s*([\w.]+)\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


def load_gates(path: str | Path) -> GatesFile:
    """The gates file validated (promptcls/schemas.py): unknown keys, an empty gate list or a gate without a bound
    fail naming the file and key, before any run is created."""
    try:
        return load_yaml(path, GatesFile)
    except UsageError as exc:
        raise SelectionError(f"gates: {exc}") from None


@dataclass
class SelectArgs:
    """Rank runs, apply gates, register and promote the winner as the champion."""

    experiment: str = experiment_field("experiment whose runs are candidates")
    metric: str = field(default="", metadata={"help": "ranking metric, higher is better (default: gates file)"})
    gates: str = field(default=str(DEFAULT_GATES), metadata={"help": "gates YAML"})
    gates_override: str = field(default="", metadata={"help": "e.g. 'val_recall_c2>=0.9,latency_prompt_p95_ms<=50'"})
    model_name: str = field(default="", metadata={"help": "registered model name (default: gates file)"})
    dry_run: bool = field(default=False, metadata={"help": "rank and report only; change nothing"})
    force: bool = field(default=False, metadata={"help": "replace the champion without the paired test, even "
                                                         "one trained on a different data digest"})
    challenger: bool = field(default=False, metadata={
        "help": "also set the `challenger` alias on the best passing candidate that is not the champion "
                "(for `promptcls serve --shadow models:/NAME@challenger`)"})

    def __post_init__(self):
        self.experiment = self.experiment or default_experiment()
        config = load_gates(self.gates)
        gates = {g.metric: Gate(**g.model_dump()) for g in config.gates}
        for item in filter(None, self.gates_override.split(",")):
            match = _OVERRIDE.match(item)
            if not match:
                raise SelectionError(f"gates_override: cannot parse {item!r}; use metric>=value or metric<=value")
            name, op, value = match.groups()
            gates[name] = Gate(name, min=float(value)) if op == ">=" else Gate(name, max=float(value))
        self.gate_list = list(gates.values())
        self.metric = self.metric or config.metric
        self.model_name = self.model_name or config.registered_model
        self.paired_alpha = config.paired_alpha
        self.comparison: PairedResult | None = None  # the champion-vs-challenger test, once `decide` ran it
        if self.metric.startswith("test_") or any(g.metric.startswith("test_") for g in self.gate_list):
            raise SelectionError("test metrics are for the final report only; rank and gate on val_* metrics")


@dataclass
class Candidate:
    run: Run
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def find_candidates(client: MlflowClient, experiment_id: str, args: SelectArgs) -> list[Candidate]:
    """FINISHED runs with a logged model, best first by the ranking metric, each with its gate failures."""
    runs = model_runs(client, experiment_id, "attributes.status = 'FINISHED'", [f"metrics.`{args.metric}` DESC"])
    ranked = [r for r in runs if args.metric in r.data.metrics]
    return [Candidate(r, [f for g in args.gate_list if (f := g.failure(r.data.metrics))]) for r in ranked]


def ranking_table(candidates: list[Candidate], args: SelectArgs) -> pd.DataFrame:
    rows = [{"rank": i + 1, "run_id": c.run.info.run_id, "family": c.run.data.tags.get(FAMILY_TAG),
             "model": c.run.data.tags.get(MODEL_TAG),
             **{g.metric: c.run.data.metrics.get(g.metric) for g in args.gate_list},
             args.metric: c.run.data.metrics[args.metric],
             "gates": "passed" if c.passed else "; ".join(c.failures)} for i, c in enumerate(candidates)]
    return pd.DataFrame(rows)


def warn_unchecked(candidates: list[Candidate], args: SelectArgs) -> list[Gate]:
    """Optional gates (`required: false`) whose metric no candidate logged checked nothing: most likely a misspelt
    metric. Selection goes on (an optional gate may exist only for some families, e.g. CV std), but each such gate is
    printed as a WARNING, logged, and tagged on the select run (`promptcls.unchecked_gates`)."""
    unchecked = [g for g in args.gate_list if not g.required and candidates
                 and not any(g.metric in c.run.data.metrics for c in candidates)]
    for gate in unchecked:
        message = (f"WARNING: optional gate {gate.describe()} checked nothing: none of the {len(candidates)} "
                   f"candidates logged {gate.metric!r} (misspelt in {args.gates}?)")
        print(message)
        log.warning("%s", message)
    if unchecked:
        mlflow.set_tag(UNCHECKED_GATES_TAG, ",".join(g.metric for g in unchecked))
    return unchecked


def current_champion(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def decide(client: MlflowClient, winner: Run, champion, args: SelectArgs) -> tuple[bool, str]:
    """Whether the winner replaces the champion, and why."""
    if champion is None:
        return True, "no champion yet"
    if champion.run_id == winner.info.run_id:
        return False, f"the winner is already the champion (version {champion.version})"
    champion_run = client.get_run(champion.run_id)
    same_data = champion_run.data.tags.get(DATA_DIGEST_TAG) == winner.data.tags.get(DATA_DIGEST_TAG)
    if not same_data and not args.force:
        return False, (f"champion v{champion.version} was trained on other data (digest "
                       f"{champion_run.data.tags.get(DATA_DIGEST_TAG)}); its {args.metric} is not comparable."
                       " Pass force=true to replace it anyway")
    old, new = champion_run.data.metrics.get(args.metric, float("-inf")), winner.data.metrics[args.metric]
    if same_data and new <= old:
        return False, f"champion v{champion.version} ranks at least as high ({args.metric} {old:.4f} >= {new:.4f})"
    if args.force:
        return True, f"force=true: replacing champion v{champion.version} ({args.metric} {old:.4f} -> {new:.4f})"
    paired = compare_runs(champion.run_id, winner.info.run_id)
    if isinstance(paired, str):
        return False, f"no paired test against champion v{champion.version}: {paired}. Pass force=true to replace it"
    args.comparison = paired
    if paired.p_value >= args.paired_alpha:
        return False, (f"{args.metric} {new:.4f} > {old:.4f}, but not significantly better than champion "
                       f"v{champion.version}: {paired.describe()} (needs p < {args.paired_alpha}). "
                       "Pass force=true to replace it anyway")
    return True, f"{args.metric} {new:.4f} beats champion v{champion.version} ({old:.4f}); {paired.describe()}"


def version_tags(run: Run, args: SelectArgs, comparison: PairedResult | None = None) -> dict[str, str]:
    """Tags of a registered version: provenance, the headline metrics of its run and, for a promoted challenger,
    the paired test that let it replace the champion."""
    metrics = run.data.metrics
    tags = {"data_digest": run.data.tags.get(DATA_DIGEST_TAG, ""),
            "code_version": run.data.tags.get(CODE_VERSION_TAG, ""), "run_id": run.info.run_id,
            **{k: f"{metrics[k]:.4f}" for k in (args.metric, "val_custom_score", "ood_custom_score", "val_recall_c2",
                                                "val_false_alarm_rate", "ood_recall_c2", "ood_benign_flag_rate",
                                                "test_custom_score", "latency_prompt_p95_ms", "latency_p95_ms")
                                                if k in metrics}}
    if comparison:
        tags.update(paired_p_value=f"{comparison.p_value:.4g}", paired_effect=f"{comparison.effect:+.4f}")
    return tags


def mark_challenger(client: MlflowClient, passing: list[Candidate], champion_run_id: str | None,
                    args: SelectArgs) -> None:
    """Point the `challenger` alias at the best passing candidate other than the champion (its existing version,
    else a new one); with none, the alias is left as it is."""
    best = next((c.run for c in passing if c.run.info.run_id != champion_run_id), None)
    if best is None:
        print("challenger: no other passing candidate; alias unchanged")
        return
    run_id = best.info.run_id
    if args.dry_run:
        print(f"dry run: would set {CHALLENGER} to run {run_id}")
        return
    existing = client.search_model_versions(f"name = '{args.model_name}' and run_id = '{run_id}'")
    version = existing[0] if existing else mlflow.register_model(best.data.tags[MODEL_URI_TAG], args.model_name,
                                                                 tags=version_tags(best, args))
    client.set_registered_model_alias(args.model_name, CHALLENGER, version.version)
    print(f"challenger: {args.model_name} v{version.version} (run {run_id}); shadow it with "
          f"promptcls serve --shadow models:/{args.model_name}@{CHALLENGER}")


def promote(client: MlflowClient, winner: Run, champion, args: SelectArgs):
    """Register the winner, write its card, set aliases and the Production stage. Returns the new version."""
    version = mlflow.register_model(winner.data.tags[MODEL_URI_TAG], args.model_name,
                                    tags=version_tags(winner, args, args.comparison))
    card = render_card(client, winner, args, version.version)
    client.update_model_version(args.model_name, version.version,
                                description=registry_description(card, winner.info.run_id))
    client.log_text(winner.info.run_id, card, "model_card.md")
    with warnings.catch_warnings():  # stages are deprecated in MLflow 3 but still resolve; the alias is primary
        warnings.simplefilter("ignore", FutureWarning)
        # archive the old Production versions one by one: `archive_existing_versions=True` fails on PostgreSQL
        # with psycopg 3 (MLflow 3.17 compares the integer version column with a VARCHAR parameter)
        client.transition_model_version_stage(args.model_name, version.version, "Production")
        for old in client.search_model_versions(f"name = '{args.model_name}'"):
            if old.current_stage == "Production" and old.version != version.version:
                client.transition_model_version_stage(args.model_name, old.version, "Archived")
    if champion is not None:  # the aliases move last: the champion pointer changes only when all else is done
        client.set_registered_model_alias(args.model_name, PREVIOUS, champion.version)
    client.set_registered_model_alias(args.model_name, CHAMPION, version.version)
    return version, card


def run(args: SelectArgs) -> str | None:
    """Returns the champion's version after selection (None when there is none)."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("http") and not server.healthy(uri):
        raise SelectionError(f"tracking server unreachable at {uri} (start one with `make server-start`); "
                             "registry unchanged")
    client = MlflowClient()
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        raise SelectionError(f"experiment {args.experiment!r} not found at {mlflow.get_tracking_uri()}")
    with entry_run(args.experiment, run_name="select"):
        mlflow.set_tag(KIND_TAG, "select")
        log_new_params({"metric": args.metric, "gates": "; ".join(g.describe() for g in args.gate_list),
                           "candidates_experiment": args.experiment, "dry_run": args.dry_run,
                           "registered_model": args.model_name})
        candidates = find_candidates(client, experiment.experiment_id, args)
        table = ranking_table(candidates, args)
        print(f"\n{len(candidates)} candidate run(s) in {args.experiment!r}, ranked by {args.metric}:")
        print(table.drop(columns=["run_id"]).to_string(index=False) if len(table) else "(none)")
        if len(table):
            mlflow.log_text(table.to_csv(index=False), "selection/ranking.csv")
        warn_unchecked(candidates, args)
        passing = [c for c in candidates if c.passed]
        if not passing:
            raise SelectionError(f"no candidate passes the gates ({len(candidates)} ranked); registry unchanged")
        winner, champion = passing[0].run, current_champion(client, args.model_name)
        replace, reason = decide(client, winner, champion, args)
        mlflow.set_tags({SELECTED_RUN_TAG: winner.info.run_id, DECISION_TAG: reason[:5000]})
        if args.comparison:
            mlflow.log_metrics({"paired_p_value": args.comparison.p_value, "paired_effect": args.comparison.effect,
                                "paired_rows": args.comparison.n})
        label = f"{winner.data.tags.get(FAMILY_TAG)}/{winner.data.tags.get(MODEL_TAG)}"
        challenger = partial(mark_challenger, client, passing,  # the champion after this selection
                             winner.info.run_id if replace else champion.run_id, args)
        if args.dry_run:
            print(f"dry run: would {'promote' if replace else 'keep the champion, not promote'} {label} "
                  f"(run {winner.info.run_id}): {reason}. Nothing changed.")
            if args.challenger:
                challenger()
            return champion.version if champion else None
        if not replace:
            print(f"champion unchanged: {reason}")
            if args.challenger:
                challenger()
            return champion.version if champion else None
        version, card = promote(client, winner, champion, args)
        mlflow.log_text(card, "model_card.md")
        mlflow.set_tag(PROMOTED_VERSION_TAG, version.version)
        print(f"promoted {label} (run {winner.info.run_id}) as {args.model_name} v{version.version}: {reason}\n"
              f"load it with {champion_uri(args.model_name)} or models:/{args.model_name}/Production; "
              f"code version {code_version()}")
        if args.challenger:
            challenger()
        return version.version
