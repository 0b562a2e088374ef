"""`promptcls` command line: the local tracking server, `select`, and prediction and batch scoring with the champion."""

from __future__ import annotations

import argparse
import sys

from promptcls import server
from promptcls.feedback import cli as feedback_cli
from promptcls.names import CHAMPION_URI

DEFAULT_ROOT = ".mlflow-local"


def _server(args: argparse.Namespace) -> int:
    if args.action == "start":
        try:
            srv = server.start(args.root, args.port or None, host=args.host, backend_store_uri=args.backend_store_uri,
                               artifacts_destination=args.artifacts_destination, auth=args.auth,
                               auth_database_uri=args.auth_database_uri, workers=args.workers,
                               auth_cache_ttl=args.auth_cache_ttl)
        except (RuntimeError, ValueError) as exc:  # a bad argument, or the log tail (bad URI, no admin password)
            print(f"promptcls server: {exc}", file=sys.stderr)
            return 1
        print(f"mlflow server running: {srv.uri} (pid {srv.pid}, data in {srv.root})", file=sys.stderr)
        print(server.env_exports(srv), end="")  # eval "$(promptcls server start)" points this shell at it
        return 0
    if args.action == "stop":
        stopped = server.stop(args.root)
        print("stopped" if stopped else f"no server recorded under {args.root}", file=sys.stderr)
        return 0
    srv = server.running(server.Path(args.root))
    print(f"running: {srv.uri} (pid {srv.pid})" if srv else "not running")
    return 0 if srv else 1


def _select(argv: list[str]) -> int:
    from promptcls.config import parse_args, run_cli
    from promptcls.select import SelectArgs
    from promptcls.select import run as select

    args = parse_args(SelectArgs, argv)  # a bad gates file exits here (code 2), before anything is created
    run_cli(lambda: select(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["select"]:  # the MLproject `select` entry, for an installed package without the checkout
        return _select(argv[1:])
    parser = argparse.ArgumentParser(prog="promptcls", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("select", add_help=False, help="rank runs under the gates and promote the champion (as "
                        "`mlflow run . -e select`; `promptcls select --help` lists its flags)")
    srv = commands.add_parser("server", help="start/stop/status of the local MLflow tracking server")
    srv.add_argument("action", choices=["start", "stop", "status"])
    srv.add_argument("--root", default=DEFAULT_ROOT, help=f"folder for mlflow.db and artifacts ({DEFAULT_ROOT})")
    srv.add_argument("--port", type=int, default=5000, help="port (0 = any free port)")
    srv.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for a team server)")
    srv.add_argument("--backend-store-uri", help="runs/registry database (default: SQLite under --root); "
                     "a team server: postgresql://USER:PW@HOST:5432/mlflow")
    srv.add_argument("--artifacts-destination", help="where artifacts go (default: --root/artifacts); "
                     "e.g. s3://bucket/mlflow with MLFLOW_S3_ENDPOINT_URL for MinIO")
    srv.add_argument("--auth", action="store_true", help="basic auth (MLflow's basic-auth app); the first start "
                     "needs MLFLOW_AUTH_ADMIN_PASSWORD (12+ characters)")
    srv.add_argument("--auth-database-uri", help="user database for --auth (default: SQLite under --root)")
    srv.add_argument("--auth-cache-ttl", type=int, default=server.AUTH_CACHE_TTL_SECONDS,
                     help="seconds a worker remembers a verified credential (%(default)s; 0 = verify the password "
                          "hash on every request, ~300 ms each)")
    srv.add_argument("--workers", type=int, default=1, help="server worker processes")
    srv.set_defaults(handler=_server)
    pred = commands.add_parser("predict", help="score a prompt, stdin lines, or a .jsonl/.csv file")
    pred.add_argument("text", nargs="?", help="the prompt (omit to read one prompt per line from stdin)")
    pred.add_argument("--file", help="file with a `text` column (.jsonl, .json or .csv)")
    pred.add_argument("--out", help="output file for --file (.jsonl or .csv; default: <file>.scored.jsonl)")
    pred.add_argument("--model-uri", default=CHAMPION_URI, help="model to load")
    pred.set_defaults(handler=_predict)
    scr = commands.add_parser("score", help="batch-score a large table of prompts (pandas in process, or Spark)")
    scr.add_argument("--input", required=True,
                     help="parquet file or folder (spark: also hdfs://, s3a://); pandas also reads .jsonl/.json/.csv")
    scr.add_argument("--output", required=True,
                     help="pandas: one .parquet (or .csv/.jsonl) file; spark: a folder of parquet part files")
    scr.add_argument("--model-uri", default=CHAMPION_URI, help="model to load")
    scr.add_argument("--engine", choices=["pandas", "spark"], default="pandas",
                     help="pandas: this process with a progress bar (default); spark: mlflow.pyfunc.spark_udf")
    scr.add_argument("--text-column", default="text", help="column holding the prompts (text)")
    scr.add_argument("--keep-columns", help="comma-separated input columns to carry over (default: all)")
    scr.add_argument("--batch-size", type=int, default=1024, help="rows per model call / Arrow batch (1024)")
    scr.add_argument("--spark-master", help="Spark master URL (default: spark-submit's, else local[*])")
    scr.add_argument("--overwrite", action="store_true", help="replace an existing output")
    scr.add_argument("--record-traces", action="store_true",
                     help="record the decisions as MLflow traces, sampled as the server does (pandas engine)")
    scr.add_argument("--trace-config", help="YAML overriding keys of promptcls/conf/feedback.yaml")
    scr.set_defaults(handler=_score)
    feedback_cli.register(commands)
    expl = commands.add_parser("explain", help="which tokens drove the champion's prediction for a prompt (SHAP)")
    expl.add_argument("text", help="the prompt")
    expl.add_argument("--model-uri", default=CHAMPION_URI, help="model to load")
    expl.add_argument("--top", type=int, default=15, help="tokens to show")
    expl.set_defaults(handler=_explain)
    add_serve_parser(commands)
    args = parser.parse_args(argv)
    return args.handler(args)


def add_serve_parser(commands) -> None:
    from promptcls.serving.settings import serving_defaults

    conf = serving_defaults()
    limits, shadow = conf["limits"], conf["shadow"]
    srv = commands.add_parser("serve", help="HTTP scoring server (FastAPI): /invocations, /metrics, hot swap, "
                              "shadow; see README \"Serving\"")
    srv.add_argument("--model-uri", default=conf["model_uri"], help=f"model to serve ({conf['model_uri']})")
    srv.add_argument("--host", default=conf["host"], help=f"interface ({conf['host']})")
    srv.add_argument("--port", type=int, default=conf["port"], help=f"port ({conf['port']})")
    srv.add_argument("--shadow", help="challenger scored off the caller's path, e.g. models:/promptcls@challenger")
    srv.add_argument("--token-file", help="bearer token file (default: $PROMPTCLS_SERVE_TOKEN; neither: no auth)")
    srv.add_argument("--poll-interval-s", type=float, default=conf["poll_interval_s"],
                     help=f"seconds between alias checks for a hot swap ({conf['poll_interval_s']}; 0 = never)")
    for name, value in limits.items():
        srv.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=f"limit ({value})")
    srv.add_argument("--shadow-queue-size", type=int, default=shadow["queue_size"],
                     help=f"requests waiting for the shadow; more are dropped ({shadow['queue_size']})")
    srv.add_argument("--keep-disagreements", type=int, default=shadow["keep_disagreements"],
                     help=f"newest disagreements kept for review ({shadow['keep_disagreements']})")
    srv.add_argument("--record-traces", action="store_true",
                     help="record decisions as MLflow traces (sampled; see README \"Keeping the champion good\")")
    srv.add_argument("--trace-config", help="YAML overriding keys of promptcls/conf/feedback.yaml")
    srv.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from promptcls.config import UsageError, run_cli
    from promptcls.serving.bodies import Limits
    from promptcls.serving.runner import ServeOptions, serve

    def job():
        try:
            limits = Limits(args.max_body_bytes, args.max_rows, args.max_text_chars, args.timeout_s)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        serve(ServeOptions(args.model_uri, args.host, args.port, limits, args.poll_interval_s, args.shadow,
                           args.token_file, args.shadow_queue_size, args.keep_disagreements, args.record_traces,
                           args.trace_config))

    run_cli(job)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from promptcls.config import run_cli
    from promptcls.predict import main as predict

    run_cli(lambda: predict(args.text, args.file, args.out, args.model_uri))
    return 0


def _score(args: argparse.Namespace) -> int:
    from promptcls.config import run_cli
    from promptcls.score import score

    keep = [c.strip() for c in args.keep_columns.split(",") if c.strip()] if args.keep_columns else None
    run_cli(lambda: score(args.input, args.output, args.model_uri, args.engine, args.text_column, args.batch_size,
                          keep, args.spark_master, args.overwrite, args.record_traces, args.trace_config))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from promptcls.config import run_cli
    from promptcls.explain import explain_text
    from promptcls.predict import load

    def job():
        table, prediction = explain_text(load(args.model_uri), args.text)
        name = prediction["label_name"]
        print(f"{name} (score {prediction[f'score_{name}']:.3f}); tokens by contribution towards {name}:")
        if table.empty:
            print("  (too short to attribute: at least two words are needed)")
        for row in table.sort_values(name, ascending=False).head(args.top).itertuples():
            print(f"  {getattr(row, name):+.4f}  {row.token}")

    run_cli(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
