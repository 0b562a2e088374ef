"""MLproject entry point `select`: rank, gate, register, promote, write the model card. See `--help`."""

from promptcls.config import parse_args, run_cli
from promptcls.select import SelectArgs, run

if __name__ == "__main__":
    args = parse_args(SelectArgs)
    run_cli(lambda: run(args))
