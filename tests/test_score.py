"""`promptcls score`: the Spark engine (local mode) gives the in-process engine's labels on a few thousand rows,
keeps the input's columns, and bad input fails with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from promptcls.config import DEFAULT_DATA, UsageError
from promptcls.contract import OUTPUT_COLUMNS, SCORE_COLUMNS, log_model, pip_requirements
from promptcls.data import load_dataset
from promptcls.families.traditional import TraditionalFamily
from promptcls.score import spark_session
from promptcls.tracking import ensure_experiment

ROOT = Path(__file__).resolve().parent.parent
ROWS = 3000


@pytest.fixture(scope="module")
def model_uri(tracking_server, small_classifier):
    # not mlflow.set_experiment: it exports MLFLOW_EXPERIMENT_ID, which every later `mlflow run` would inherit
    with mlflow.start_run(experiment_id=ensure_experiment("score")):
        info = log_model(small_classifier, ["hello"], pip_requirements(*TraditionalFamily().requirements()))
    return info.model_uri


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """ROWS corpus prompts as a parquet log with an id, a timestamp and one null prompt."""
    texts = load_dataset(DEFAULT_DATA).frame["text"].sample(ROWS, random_state=0).tolist()
    texts[7] = None
    frame = pd.DataFrame({"id": np.arange(ROWS, dtype="int64") * 10, "text": texts,
                          "ts": pd.date_range("2026-01-01", periods=ROWS, freq="s").astype("datetime64[us]")})
    path = tmp_path_factory.mktemp("logs") / "logs.parquet"
    frame.to_parquet(path, index=False)
    return path


def score_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "promptcls.cli", "score", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def test_spark_engine_matches_in_process_engine(model_uri, logs, tmp_path):
    outputs = {}
    for engine, extra in (("pandas", []), ("spark", ["--spark-master", "local[2]", "--batch-size", "500"])):
        out = tmp_path / f"{engine}.parquet"
        proc = score_cli("--input", str(logs), "--output", str(out), "--model-uri", model_uri, "--engine", engine,
                         *extra)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert f"scored {ROWS} rows" in proc.stderr
        outputs[engine] = pd.read_parquet(out)   # spark: a folder of part files, read as one table
    assert out.is_dir() and list(out.glob("part-*.parquet"))
    pandas_out, spark_out = (outputs[e] for e in ("pandas", "spark"))
    for scored in (pandas_out, spark_out):
        assert list(scored.columns) == ["id", "text", "ts", *OUTPUT_COLUMNS]
        assert len(scored) == ROWS
    spark_out = spark_out.sort_values("id").reset_index(drop=True)
    assert (pandas_out["id"] == np.arange(ROWS) * 10).all() and (spark_out["id"] == pandas_out["id"]).all()
    pd.testing.assert_series_equal(spark_out["ts"], pandas_out["ts"], check_dtype=False)
    assert (spark_out["label"] == pandas_out["label"]).all()
    assert (spark_out["label_name"] == pandas_out["label_name"]).all()
    np.testing.assert_allclose(spark_out[SCORE_COLUMNS], pandas_out[SCORE_COLUMNS], atol=1e-6)
    assert pandas_out["label"].nunique() == 3                 # a real model on real prompts, not a constant
    # --keep-columns carries only the named columns
    out = tmp_path / "ids.parquet"
    proc = score_cli("--input", str(logs), "--output", str(out), "--model-uri", model_uri, "--keep-columns", "id")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert list(pd.read_parquet(out).columns) == ["id", *OUTPUT_COLUMNS]


@pytest.mark.parametrize("engine", ["pandas", "spark"])
def test_missing_text_column_names_it(model_uri, logs, tmp_path, engine):
    proc = score_cli("--input", str(logs), "--output", str(tmp_path / "o.parquet"), "--model-uri", model_uri,
                     "--engine", engine, "--text-column", "prompt", "--spark-master", "local[1]")
    assert proc.returncode == 2, proc.stderr[-4000:]
    assert "no `prompt` column to score; the input has ['id', 'text', 'ts']" in proc.stderr


def test_missing_input_existing_output_and_unknown_engine(model_uri, logs, tmp_path):
    missing = tmp_path / "nope.parquet"
    proc = score_cli("--input", str(missing), "--output", str(tmp_path / "o.parquet"), "--engine", "spark")
    assert proc.returncode == 2 and f"{missing}: file not found" in proc.stderr
    proc = score_cli("--input", str(logs), "--output", str(logs), "--model-uri", model_uri)
    assert proc.returncode == 2 and "already exists; pass --overwrite" in proc.stderr
    proc = score_cli("--input", str(logs), "--output", str(tmp_path / "o.parquet"), "--engine", "dask")
    assert proc.returncode == 2 and "invalid choice: 'dask'" in proc.stderr


def test_spark_engine_without_java_names_java_home(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))          # no `java` on it
    with pytest.raises(UsageError, match="set JAVA_HOME or put `java` on PATH"):
        spark_session("local[1]")
