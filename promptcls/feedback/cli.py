"""Command line of the feedback loop: `promptcls review export|import`, `promptcls feedback build`,
`promptcls monitor` (registered into promptcls/cli.py by `register`)."""

from __future__ import annotations

import argparse
import sys

from promptcls.config import DEFAULT_DATA, run_cli
from promptcls.feedback import MONITOR_EXPERIMENT


def _decisions(args: argparse.Namespace) -> str:
    """--experiment, else the experiment promptcls/conf/feedback.yaml records decisions into."""
    from promptcls.feedback.settings import load_settings

    return args.experiment or load_settings("feedback")["experiment"]


def _review(args: argparse.Namespace) -> int:
    from promptcls.feedback import review

    def job():
        if args.action == "export":
            n = review.export(_decisions(args), args.output, args.only_unreviewed, args.max_results)
            print(f"exported {n} decision(s) -> {args.output}; fill `review_label`, then "
                  f"`promptcls review import {args.output} --reviewer NAME`", file=sys.stderr)
        else:
            n = review.import_labels(args.file, args.reviewer)
            print(f"imported {n} label(s) from {args.file} as assessments by {args.reviewer}", file=sys.stderr)

    run_cli(job)
    return 0


def _feedback(args: argparse.Namespace) -> int:
    from promptcls.feedback.build import build

    def job():
        result = build(_decisions(args), args.output, args.corpus)
        print(f"feedback dataset {result.path}: {result.rows} rows, digest {result.digest}; {result.counts}")

    run_cli(job)
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from promptcls.feedback.monitor import monitor

    code = []
    run_cli(lambda: code.append(monitor(args.window, args.from_traces, args.reference, args.previous,
                                        args.model_uri, args.thresholds, args.experiment, args.max_traces,
                                        args.reference_sample, args.seed)))
    return code[0] if code else 1


def register(commands) -> None:
    """Add the review, feedback and monitor commands to the `promptcls` sub-command parser."""
    rev = commands.add_parser("review", help="export recorded decisions for labelling / import the labels")
    actions = rev.add_subparsers(dest="action", required=True)
    exp = actions.add_parser("export", help="decision traces -> CSV or JSONL with a review_label column")
    exp.add_argument("--experiment", help="experiment holding the traces (default: promptcls/conf/feedback.yaml's)")
    exp.add_argument("--output", required=True, help="file to write (.csv or .jsonl)")
    exp.add_argument("--only-unreviewed", action="store_true", help="leave out decisions that have a label")
    exp.add_argument("--max-results", type=int, default=None, help="newest N decisions only")
    imp = actions.add_parser("import", help="store the filled review_label column as MLflow assessments")
    imp.add_argument("file", help="the exported file with review_label (and review_comment) filled in")
    imp.add_argument("--reviewer", required=True, help="the reviewer's name (the assessments' source)")
    rev.set_defaults(handler=_review)
    fb = commands.add_parser("feedback", help="reviewed decisions -> a versioned feedback dataset")
    fb.add_argument("action", choices=["build"])
    fb.add_argument("--experiment", help="experiment holding the traces (default: promptcls/conf/feedback.yaml's)")
    fb.add_argument("--output", default="data/feedback-{digest}.jsonl",
                    help="file to write; {digest} (or <digest>) is replaced by the dataset digest")
    fb.add_argument("--corpus", default=str(DEFAULT_DATA), help="corpus checked for conflicting labels")
    fb.set_defaults(handler=_feedback)
    mon = commands.add_parser("monitor", help="drift of recent traffic against the training data (exit 3 on drift)")
    source = mon.add_mutually_exclusive_group(required=True)
    source.add_argument("--window", help="scored file of recent traffic (`promptcls score` output)")
    source.add_argument("--from-traces", metavar="EXPERIMENT", help="use the recorded decision traces instead")
    mon.add_argument("--reference", default=str(DEFAULT_DATA), help="scored file, or a corpus scored by --model-uri")
    mon.add_argument("--previous", help="the previous window (scored file), compared as previous_* metrics")
    mon.add_argument("--model-uri", help="model scoring a reference or previous file without score columns")
    mon.add_argument("--thresholds", help="YAML overriding keys of promptcls/conf/monitor.yaml")
    mon.add_argument("--experiment", default=MONITOR_EXPERIMENT, help="experiment of the monitor run")
    mon.add_argument("--max-traces", type=int, default=10000, help="newest N traces with --from-traces")
    mon.add_argument("--reference-sample", type=int, default=3000, help="reference rows scored (0 = all)")
    mon.add_argument("--seed", type=int, default=0, help="seed of the reference sample")
    mon.set_defaults(handler=_monitor)
