"""MLproject entry point `deep_learning`: Keras CNN / LSTM / BiLSTM / hybrid / transformer. See `--help`."""

from promptcls.config import parse_args
from promptcls.families.deep_learning import DeepLearningArgs, DeepLearningFamily
from promptcls.train import main

if __name__ == "__main__":
    main(DeepLearningFamily(), parse_args(DeepLearningArgs))
