"""`promptcls score`: batch-score a large table of prompts with a model (the champion by default).

Two engines, one result: `pandas` (default) scores in this process in batches with a progress bar and writes one
file; `spark` applies the same pyfunc through `mlflow.pyfunc.spark_udf`, so the same command runs in Spark local
mode or on a cluster and writes a folder of part files. Output: the input's columns (or `keep_columns`) followed
by the contract's columns (label, label_name, score_*).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlparse

from promptcls.config import UsageError
from promptcls.contract import OUTPUT_COLUMNS
from promptcls.predict import CHAMPION_URI, load, output_columns, read_input, score_frame, write_output

ENGINES = ("pandas", "spark")
DEFAULT_MASTER = "local[*]"


def _log(message: str) -> None:
    print(f"promptcls score: {message}", file=sys.stderr, flush=True)


def _is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def _check_paths(input: str, output: str, overwrite: bool) -> None:
    if _is_local(input) and not Path(urlparse(input).path).exists():
        raise UsageError(f"{input}: file not found")
    if _is_local(output) and Path(urlparse(output).path).exists() and not overwrite:
        raise UsageError(f"{output} already exists; pass --overwrite to replace it")


def score(input: str, output: str, model_uri: str = CHAMPION_URI, engine: str = "pandas", text_column: str = "text",
          batch_size: int = 1024, keep_columns: list[str] | None = None, spark_master: str | None = None,
          overwrite: bool = False, record_traces: bool = False, trace_config: str | None = None) -> int:
    """Score `input` into `output` with `model_uri`; returns the number of rows scored. `record_traces` also
    records the decisions as MLflow traces (promptcls/feedback/traces.py), sampled as the server does."""
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if record_traces and engine != "pandas":
        raise UsageError("--record-traces works with the pandas engine only")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    _check_paths(input, output, overwrite)
    start = time.perf_counter()
    if engine == "pandas":
        rows = _score_pandas(input, output, model_uri, text_column, batch_size, keep_columns,
                             trace_config, record_traces)
    else:
        rows = _score_spark(input, output, model_uri, text_column, batch_size, keep_columns, spark_master, overwrite)
    seconds = time.perf_counter() - start
    _log(f"scored {rows} rows -> {output} in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s, {engine})")
    return rows


def _score_pandas(input, output, model_uri, text_column, batch_size, keep_columns, trace_config=None,
                  record_traces=False) -> int:
    table = read_input(Path(input))
    output_columns(list(table.columns), text_column, keep_columns)  # fail on a bad column before loading the model
    model = load(model_uri)
    start = time.perf_counter()
    scored = score_frame(model, table, text_column, batch_size, keep_columns, desc=f"scoring {input}")
    if record_traces:
        from promptcls.feedback.traces import record_scored

        per_row_ms = (time.perf_counter() - start) * 1000 / max(len(scored), 1)
        _log(f"decision traces: {record_scored(table[text_column], scored, model_uri, per_row_ms, trace_config)}")
    out = Path(output)
    if out.is_dir():  # --overwrite of an earlier spark output folder
        shutil.rmtree(out)
    write_output(scored, out)
    return len(scored)


def _java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").exists() or shutil.which("java"):
        return
    raise UsageError("the spark engine needs Java 17 or later: set JAVA_HOME or put `java` on PATH "
                     "(Debian: apt-get install default-jre-headless; `make system-deps`)")


def spark_session(master: str | None = None, batch_size: int = 1024):
    """A Spark session for scoring: `master`, else the one spark-submit passed, else local[*]. Workers run this
    Python unless PYSPARK_PYTHON says otherwise; Spark's log level is WARN."""
    _java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")  # it works with pandas 3
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("promptcls-score")
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ  # launched by spark-submit: its --master applies
    if master or not under_submit:
        builder = builder.master(master or DEFAULT_MASTER)
    builder = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - a JVM that does not start surfaces as several exception types
        raise UsageError(f"cannot start Spark (master {master or DEFAULT_MASTER}): {exc}") from None
    spark.sparkContext.setLogLevel("WARN")
    return spark


def result_type():
    """The contract's output columns as a Spark struct (the types the logged signature declares)."""
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    types = {"label": LongType(), "label_name": StringType(), "view": StringType(), "trigger_start": LongType(),
             "trigger_end": LongType()}
    return StructType([StructField(c, types.get(c, DoubleType())) for c in OUTPUT_COLUMNS])


def _score_spark(input, output, model_uri, text_column, batch_size, keep_columns, master, overwrite) -> int:
    import mlflow
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    started = time.perf_counter()
    spark = spark_session(master, batch_size)
    _log(f"spark {spark.version} on {spark.sparkContext.master} started in {time.perf_counter() - started:.1f} s")
    try:
        frame = spark.read.parquet(input)
    except AnalysisException as exc:
        raise UsageError(f"{input}: cannot read as parquet: {str(exc).splitlines()[0]}") from None
    keep = output_columns(frame.columns, text_column, keep_columns)
    rows, parts, cores = frame.count(), frame.rdd.getNumPartitions(), spark.sparkContext.defaultParallelism
    if parts < cores:  # a single small file is a single task: spread it over the cores (row order is not kept)
        frame, parts = frame.repartition(cores), cores
    try:
        udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type(), env_manager="local")
    except Exception as exc:  # noqa: BLE001 - as in predict.load
        raise UsageError(f"cannot load {model_uri} from {mlflow.get_tracking_uri()}: {exc}") from None
    text = F.coalesce(F.col(text_column).cast("string"), F.lit(""))  # null text scores as "", as in pandas
    scored = frame.select(*keep, udf(text).alias("_promptcls")).select(*keep, "_promptcls.*")
    _log(f"scoring {rows} rows of {input} in {parts} partitions with {model_uri} -> {output}")
    scored.write.mode("overwrite" if overwrite else "errorifexists").parquet(output)
    return rows
