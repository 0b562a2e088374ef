"""Closing the loop: decisions recorded as MLflow traces, analyst review as assessments, a feedback dataset for
retraining, and a drift monitor on recent traffic.

traces.py (DecisionRecorder) -> decisions.py (read them back) -> review.py (export/import labels) ->
build.py (feedback dataset) -> retrain.py (mixed into training) ; drift.py + monitor.py (`promptcls monitor`).
"""

MONITOR_EXPERIMENT = "promptcls-monitor"
"""Experiment of `promptcls monitor` runs (decision traces go to promptcls/conf/feedback.yaml's `experiment`)."""
