"""Names shared by every module: the `promptcls.*` MLflow tag keys, the registry aliases and model URIs, and the
MLflow UI links printed to users. Use these constants; never type a tag key or a `models:/` URI as a literal.
"""

from __future__ import annotations

# ---- run tags ---------------------------------------------------------------------------------------------------
FAMILY_TAG = "promptcls.family"  # model family of a training run (or of a tune / source_holdout parent)
MODEL_TAG = "promptcls.model"  # model name within the family ("all" on a parent of one child per model)
DATA_DIGEST_TAG = "promptcls.data_digest"  # digest of the labelled file a run trained or evaluated on
CODE_VERSION_TAG = "promptcls.code_version"  # package version + git commit (tracking.code_version)
KIND_TAG = "promptcls.kind"  # what a non-training run is: select, report, tune, tune_trial, evaluate, ...
MODEL_URI_TAG = "promptcls.model_uri"  # set on every run that logged a contract model: what `select` looks for
HOLDOUT_TAG = "promptcls.held_out_source"  # leave-one-source-out diagnostics: never candidates nor report rows
PIPELINE_TAG = "promptcls.pipeline"  # the main job's parent run
BEST_MODEL_TAG = "promptcls.best_model"  # a `model=all` parent: its best child by val_custom_score
SELECTED_RUN_TAG = "promptcls.selected_run"  # a select run: the winner
DECISION_TAG = "promptcls.decision"  # a select run: why the winner was (not) promoted
PROMOTED_VERSION_TAG = "promptcls.promoted_version"  # a select run: the registered version it promoted
UNCHECKED_GATES_TAG = "promptcls.unchecked_gates"  # a select run: optional gates no candidate logged a metric for
CHAMPION_VERSION_TAG = "promptcls.champion_version"  # the main job's parent run: the champion after `select`
STUDY_TAG = "promptcls.study_name"  # tune: the Optuna study
TRIAL_TAG = "promptcls.trial_number"  # tune: a trial run's number in the study
BEST_TRIAL_TAG = "promptcls.best_trial"
BEST_RUN_ID_TAG = "promptcls.best_run_id"
EVALUATED_MODEL_TAG = "promptcls.evaluated_model"  # evaluate: the model URI scored
BEHAVIOUR_MODEL_URI_TAG = "promptcls.behaviour.model_uri"
BEHAVIOUR_NORMALIZER_TAG = "promptcls.behaviour.normalizer_matches_model"
ONNX_TAG = "promptcls.onnx"  # a transformers run that logged its ONNX export: fp32 or int8
TRAIN_STOP_TAG = "promptcls.train_stop"  # a transformers run: what ended training (hf_training.stop_reason)
FEEDBACK_DIGEST_TAG = "promptcls.feedback_digest"  # a run trained with feedback=: the feedback file's digest
DRIFT_TAG = "promptcls.drift"  # a monitor run: whether any drift threshold was crossed
FEEDBACK_SOURCE = "feedback"  # the `source` of reviewed feedback rows (promptcls feedback build)
RUN_NAME_TAG = "mlflow.runName"  # MLflow's own: the name the runs list shows

# ---- decision traces (promptcls.feedback) --------------------------------------------------------------------------
TRACE_NAME = "promptcls.decision"  # the span every recorded decision is
VERDICT_TAG = "promptcls.verdict"
RECORDED_BECAUSE_TAG = "promptcls.recorded_because"
TRACE_MODEL_VERSION_TAG = "promptcls.model_version"
RECORDER_TAG = "promptcls.recorder"
PROMPT_STORAGE_TAG = "promptcls.prompt_storage"
SHADOW_DISAGREEMENT_TAG = "promptcls.shadow_disagreement"
SHADOW_LABEL_TAG = "promptcls.shadow_label"
PROMPT_SHA256_KEY = "promptcls.prompt_sha256"  # trace metadata
PROMPT_CHARS_KEY = "promptcls.prompt_chars"
SAMPLE_WEIGHT_KEY = "promptcls.sample_weight"  # decisions a sampled trace stands for (drift monitor)
LATENCY_KEY = "promptcls.latency_ms"
IMPORTED_FROM_KEY = "promptcls.imported_from"  # assessment metadata: file:line of a `review import`

# ---- registry -----------------------------------------------------------------------------------------------------
DEFAULT_MODEL_NAME = "promptcls"
CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous-champion", "challenger"


def champion_uri(model_name: str = DEFAULT_MODEL_NAME) -> str:
    """`models:/<name>@champion`: the model `predict`, `score`, `explain` and `evaluate` load by default."""
    return f"models:/{model_name}@{CHAMPION}"


CHAMPION_URI = champion_uri()

# ---- MLflow UI links ------------------------------------------------------------------------------------------------
# MLflow 3.17's UI has a global GenAI / model-training toggle (stored in the browser) that overrides the
# experiment-kind tag; `workflowType=machine_learning` in the link opens the experiment on its training runs.
UI_WORKFLOW = "workflowType=machine_learning"


def experiment_url(tracking_uri: str, experiment_id: str) -> str:
    """The experiment's training-runs view in the MLflow UI."""
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}?{UI_WORKFLOW}"


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{UI_WORKFLOW}"


def model_version_url(tracking_uri: str, model_name: str, version: str | int) -> str:
    return f"{tracking_uri.rstrip('/')}/#/models/{model_name}/versions/{version}"
