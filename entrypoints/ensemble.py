"""MLproject entry point `ensemble`: soft voting / stacking over logged runs. See `--help`."""

from promptcls.config import parse_args
from promptcls.families.ensemble import EnsembleArgs, EnsembleFamily
from promptcls.train import main

if __name__ == "__main__":
    main(EnsembleFamily(), parse_args(EnsembleArgs))
