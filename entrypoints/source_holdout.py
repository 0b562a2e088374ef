"""MLproject entry point `source_holdout`: leave-one-source-out evaluation. See `--help`."""

from promptcls.config import parse_args, run_cli
from promptcls.holdout import SourceHoldoutArgs, run

if __name__ == "__main__":
    args = parse_args(SourceHoldoutArgs)
    run_cli(lambda: run(args))
