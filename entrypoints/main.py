"""MLproject entry point `main`: the default experiment end to end. See `--help`."""

from promptcls.config import parse_args, run_cli
from promptcls.pipeline import MainArgs, run

if __name__ == "__main__":
    args = parse_args(MainArgs)
    run_cli(lambda: run(args))
