"""ONNX export of transformers classifiers: the fp32 export matches torch, int8 stays close, the logged model's
requirements hold neither torch nor transformers and it scores in a fresh process that never imports them; the
`export_onnx` option of the transformers entry point logs the ONNX model as the run's model."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from hf_tiny import build_tiny_model, corpus_texts
from promptcls.contract import log_model, pip_requirements
from promptcls.families import hf_onnx

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def texts():
    rows = corpus_texts(ROOT / "data" / "prompts.jsonl", 400)
    return rows[::8] + ["", "x", "word " * 500]  # short, empty and truncated (past max_length) prompts too


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, texts):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from promptcls.families.transformers_family import HFTextClassifier

    path = build_tiny_model("bert", corpus_texts(ROOT / "data" / "prompts.jsonl"),
                            tmp_path_factory.mktemp("onnx") / "tiny-bert")
    model = AutoModelForSequenceClassification.from_pretrained(path)
    return HFTextClassifier(model, AutoTokenizer.from_pretrained(path), max_length=64, batch_size=16)


def test_fp32_matches_torch_and_int8_stays_close(tiny_bert, texts):
    torch_proba = tiny_bert.predict_proba(texts)
    fp32 = hf_onnx.export(tiny_bert, "fp32")
    assert np.abs(fp32.predict_proba(texts) - torch_proba).max() < 1e-4
    int8 = hf_onnx.export(tiny_bert, "int8")
    int8_proba = int8.predict_proba(texts)
    assert len(int8.model_bytes) < len(fp32.model_bytes)
    assert np.allclose(int8_proba.sum(axis=1), 1.0) and np.abs(int8_proba - torch_proba).max() < 0.05
    assert np.abs(tiny_bert.predict_proba(texts) - torch_proba).max() == 0  # the export left torch's model as is
    assert fp32.window_chars == int8.window_chars == tiny_bert.window_chars  # long inputs: the same windows
    with pytest.raises(ValueError, match="fp32 or int8"):
        hf_onnx.export(tiny_bert, "fp16")


def test_logged_onnx_model_needs_no_torch(tracking_server, tiny_bert, texts, tmp_path):
    fp32 = hf_onnx.export(tiny_bert, "fp32")
    with mlflow.start_run(experiment_id=MlflowClient().create_experiment("onnx-log")) as run:
        info = log_model(fp32, texts, pip_requirements(*hf_onnx.REQUIREMENTS))
    requirements = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model/requirements.txt",
                                                            dst_path=str(tmp_path))).read_text()
    assert "onnxruntime==" in requirements and "tokenizers==" in requirements
    assert "torch" not in requirements and "transformers" not in requirements
    code = ("import mlflow, sys, pandas as pd; m = mlflow.pyfunc.load_model(sys.argv[1]);"
            "out = m.predict(pd.DataFrame({'text': sys.argv[2:]}));"
            "assert not {'torch', 'transformers'} & set(sys.modules), 'torch or transformers imported';"
            "print(out.to_json(orient='records'))")
    proc = subprocess.run([sys.executable, "-c", code, info.model_uri, *texts[:5]], capture_output=True, text=True,
                          timeout=300, env=os.environ, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = pd.read_json(io.StringIO(proc.stdout.strip().splitlines()[-1]))
    expected = tiny_bert.predict_proba(texts[:5])
    assert np.abs(out[["score_benign", "score_suspicious", "score_malicious"]].to_numpy() - expected).max() < 1e-4


@pytest.mark.slow
def test_entry_point_logs_the_onnx_export(tiny_bert, run_entry_point, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    checkpoint = tmp_path / "tiny-bert"
    tiny_bert.model.save_pretrained(checkpoint)
    tiny_bert.tokenizer.save_pretrained(checkpoint)
    run_entry_point("transformers", "onnx-entry", model=str(checkpoint), sample=300, max_epochs=1, max_length=32,
                    batch_size=32, export_onnx="int8", explain_samples=0)
    run = MlflowClient().search_runs([mlflow.get_experiment_by_name("onnx-entry").experiment_id])[0]
    assert run.data.tags["promptcls.onnx"] == "int8" and run.data.params["export_onnx"] == "int8"
    assert "val_custom_score" in run.data.metrics and "latency_p50_ms" in run.data.metrics
    model_uri = f"runs:/{run.info.run_id}/model"
    requirements = Path(mlflow.artifacts.download_artifacts(f"{model_uri}/requirements.txt",
                                                            dst_path=str(tmp_path))).read_text()
    assert "onnxruntime==" in requirements and "torch" not in requirements
    assert mlflow.pyfunc.load_model(model_uri).model_config["classifier_class"] == "promptcls.families.hf_onnx:OnnxTextClassifier"
