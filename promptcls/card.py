"""Model card: rendered from `promptcls/registry/model_card.md.j2` (package data) with a run's params, metrics and
evaluation artifacts."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime, timezone
from importlib.resources import files

import jinja2
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from promptcls.names import CODE_VERSION_TAG, DATA_DIGEST_TAG, FAMILY_TAG, KIND_TAG, MODEL_TAG
from promptcls.ood.scoring import OPERATING_ARTIFACT

TEMPLATE = files("promptcls.registry").joinpath("model_card.md.j2")  # package data: works from a wheel
REPORT_METRICS = ("custom_score", "recall_c2", "precision_c1", "f1_c0", "false_alarm_rate", "missed_threat_rate",
                  "benign_flag_rate", "benign_review_rate", "malicious_miss_rate", "accuracy", "f1_macro", "roc_auc")


def _artifact_json(client: MlflowClient, run_id: str, path: str):
    try:
        return json.loads(open(client.download_artifacts(run_id, path)).read())
    except Exception:  # noqa: BLE001 - an optional section of the card; older runs may lack the artifact
        return None


def _artifact_rows(client: MlflowClient, run_id: str, path: str) -> list[dict] | None:
    """A CSV artifact's rows, numbers as floats and `True`/`False` as booleans; None when the run lacks it."""
    try:
        with open(client.download_artifacts(run_id, path), newline="") as handle:
            rows = list(csv.DictReader(handle))
    except Exception:  # noqa: BLE001 - an optional section of the card; older runs may lack the artifact
        return None
    return [{k: v == "True" if v in ("True", "False") else float(v) for k, v in row.items()} for row in rows]


def _size_mb(client: MlflowClient, run_id: str, path: str = "model") -> float:
    total = 0
    for item in client.list_artifacts(run_id, path):
        total += _size_mb(client, run_id, item.path) * 2**20 if item.is_dir else (item.file_size or 0)
    return total / 2**20


LSO_METRICS = ("lso_mean_custom_score", "lso_min_recall_c2", "lso_mean_recall_c2", "lso_max_benign_flag_rate",
               "lso_mean_benign_flag_rate")


def latest_source_holdout(client: MlflowClient, run: Run):
    """The newest finished leave-one-source-out run of the same family and model in the run's experiment."""
    tags = run.data.tags
    runs = client.search_runs(
        [run.info.experiment_id],
        f"tags.`{KIND_TAG}` = 'source_holdout' and tags.`{FAMILY_TAG}` = '{tags.get(FAMILY_TAG)}' "
        f"and tags.`{MODEL_TAG}` = '{tags.get(MODEL_TAG)}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def render_card(client: MlflowClient, run: Run, args, version: str) -> str:
    """Markdown card for `run` registered as `args.model_name` v`version`, gated by `args.gate_list`."""
    params, run_id = run.data.params, run.info.run_id
    confusion = _artifact_json(client, run_id, "evaluation/test_confusion_matrix.json")
    sources = (_artifact_json(client, run_id, "data/rows_by_source.json") or {}).get("train")
    holdout = latest_source_holdout(client, run)
    template = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=False).from_string(
        TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        name=args.model_name, version=version, run_id=run_id, experiment=args.experiment, metric=args.metric,
        family=run.data.tags.get(FAMILY_TAG, "?"), model=run.data.tags.get(MODEL_TAG, "?"),
        code_version=run.data.tags.get(CODE_VERSION_TAG, "?"),
        promoted_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        hyper_params={k: v for k, v in sorted(params.items()) if k.startswith("hp_") or k == "estimator"},
        n_parameters=params.get("n_parameters"), size_mb=_size_mb(client, run_id),
        data_path=params.get("data_path", "?"), data_digest=run.data.tags.get(DATA_DIGEST_TAG, "?"),
        params=params, sources=sources, metrics=run.data.metrics, report_metrics=REPORT_METRICS,
        confusion=(confusion or {}).get("rows_true_cols_pred"), gates=args.gate_list, nan=math.nan,
        comparison=getattr(args, "comparison", None), ood_sources=params.get("ood_sources_used", ""),
        genre_rates={k.removeprefix("ood_benign_flag_rate_"): v for k, v in sorted(run.data.metrics.items())
                     if k.startswith("ood_benign_flag_rate_")},
        operating=_artifact_rows(client, run_id, OPERATING_ARTIFACT),
        holdout=holdout, holdout_metrics={k: holdout.data.metrics.get(k, math.nan) for k in LSO_METRICS}
        if holdout else {})


DESCRIPTION_LIMIT = 5000  # model-version description column: VARCHAR(5000), enforced by PostgreSQL and MySQL


def registry_description(card: str, run_id: str) -> str:
    """The card as a model-version description: whole when it fits the registry's column, else cut at the last
    section that fits, with a pointer to the full `model_card.md` artifact."""
    if len(card) <= DESCRIPTION_LIMIT:
        return card
    note = f"\n\n*(Card shortened to fit the registry; the full card is `model_card.md` in run `{run_id}`.)*"
    head = card[:DESCRIPTION_LIMIT - len(note)]
    cut = head.rfind("\n## ")
    return (head[:cut] if cut > 0 else head).rstrip() + note
