"""MLproject entry point `transformers`: fine-tune a pre-trained transformer encoder. See `--help`."""

from promptcls.config import parse_args
from promptcls.families.transformers_family import TransformersArgs, TransformersFamily
from promptcls.train import main

if __name__ == "__main__":
    main(TransformersFamily(), parse_args(TransformersArgs))
