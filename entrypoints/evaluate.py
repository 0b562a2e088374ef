"""MLproject entry point `evaluate`: score any model URI on any labelled file. See `--help`."""

from promptcls.config import parse_args, run_cli
from promptcls.evaluate_cli import EvaluateArgs, run

if __name__ == "__main__":
    args = parse_args(EvaluateArgs)
    run_cli(lambda: run(args))
