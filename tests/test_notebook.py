"""The walkthrough notebook runs top to bottom against the test server."""

import os
from pathlib import Path

import nbformat
from mlflow.tracking import MlflowClient
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_runs_top_to_bottom(tracking_server, monkeypatch):
    monkeypatch.setenv("PROMPTCLS_NOTEBOOK_SAMPLE", "700")
    monkeypatch.setenv("PROMPTCLS_NOTEBOOK_EXPERIMENT", "test-notebook")
    monkeypatch.setenv("PROMPTCLS_NOTEBOOK_MODEL", "pc-notebook")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert MlflowClient().get_model_version_by_alias("pc-notebook", "champion")
    last = notebook.cells[-1].outputs
    assert any("text/html" in o.get("data", {}) or "text/plain" in o.get("data", {}) for o in last)
    assert os.environ["MLFLOW_TRACKING_URI"] == tracking_server.uri
