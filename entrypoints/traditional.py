"""MLproject entry point `traditional`: TF-IDF + classical models. See `--help`."""

from promptcls.config import parse_args
from promptcls.families.traditional import TraditionalArgs, TraditionalFamily
from promptcls.train import main

if __name__ == "__main__":
    main(TraditionalFamily(), parse_args(TraditionalArgs))
