"""MLproject entry point `report`: results.csv and comparison plots over an experiment's model runs. See `--help`."""

from promptcls.config import parse_args, run_cli
from promptcls.report import ReportArgs, run

if __name__ == "__main__":
    args = parse_args(ReportArgs)
    run_cli(lambda: run(args))
