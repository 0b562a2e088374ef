"""MLproject entry point `tune`: Optuna hyper-parameter search, trials as nested runs. See `--help`."""

from promptcls.config import parse_args, run_cli
from promptcls.tune import TuneArgs, run

if __name__ == "__main__":
    args = parse_args(TuneArgs)
    run_cli(lambda: run(args))
