"""Deep-learning family: Keras (TensorFlow) CNN, LSTM, BiLSTM, conv+BiLSTM hybrid and a small transformer.

The saved model takes raw text: string -> TextVectorization (adapted on the training split only) -> truncate to
`max_length` -> the architecture (`promptcls/families/keras_models.py`, settings in `conf/deep_learning.yaml`).
Training feeds the same architecture pre-vectorised, length-bucketed batches; padding is masked in every
architecture, so bucketing changes speed, never predictions. Each epoch logs loss, accuracy, val_loss,
val_accuracy, val_custom_score and learning_rate with `step=epoch`; early stopping and ReduceLROnPlateau watch the
validation split only and the best epoch's weights are restored. TensorFlow is imported only when training or
loading a model of this family.
"""

from __future__ import annotations

import io
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from promptcls import LABELS
from promptcls.class_weights import check_source_weights, class_weight_vector, parse_class_weights, source_balanced
from promptcls.config import TrainArgs, family_config
from promptcls.data import Splits
from promptcls.families.base import Family
from promptcls.metrics import security_metrics
from promptcls.schemas import SearchSpace, Strict
from promptcls.text.settings import robustness

log = logging.getLogger(__name__)
LOSSES = ("crossentropy", "focal")
CURVES = ("loss", "accuracy", "val_loss", "val_accuracy", "val_custom_score", "learning_rate")


class Vocabulary(Strict):
    max_tokens: int
    standardize: str


class Training(Strict):
    monitor: str
    reduce_lr_monitor: str
    reduce_lr_factor: float
    reduce_lr_patience: int
    min_learning_rate: float
    length_bucket: int


class DeepLearningConfig(Strict):
    """Schema of promptcls/conf/deep_learning.yaml; `models` values are keyword arguments of the builders in
    keras_models.py (tests/code/test_configs.py builds each one)."""

    vocabulary: Vocabulary
    training: Training
    models: dict[str, dict[str, Any]]
    search_space: SearchSpace = {}


CONFIG_SCHEMA = DeepLearningConfig
load_config = partial(family_config, "deep_learning")  # promptcls/conf/deep_learning.yaml


@dataclass
class DeepLearningArgs(TrainArgs):
    """Train Keras text classifiers (cnn, lstm, bilstm, hybrid, transformer) with per-epoch curves."""

    model: str = field(default="cnn", metadata={"help": "one of the models in conf/deep_learning.yaml, or all"})
    max_epochs: int = field(default=20, metadata={"help": "upper bound on epochs (early stopping usually ends first)"})
    batch_size: int = field(default=64, metadata={"help": "prompts per training batch"})
    max_length: int = field(default=256, metadata={"help": "tokens kept per prompt (longer prompts are truncated)"})
    learning_rate: float = field(default=1e-3, metadata={"help": "initial Adam learning rate"})
    embedding_dim: int = field(default=64, metadata={"help": "token embedding size"})
    class_weights: str = field(default="balanced", metadata={"help": "balanced, none, or three weights > 0 like 1,1,2"})
    source_weights: str = field(default="none", metadata={
        "help": "none (every row the same), sqrt (a source weighs as the square root of its size) or balanced "
                "(within each class every source weighs the same in total; "
                "the main job's CNN fell from rank_score 0.431 to 0.404 with it: README, Unseen sources)"})
    loss: str = field(default="crossentropy", metadata={"help": "crossentropy or focal"})
    focal_gamma: float = field(default=2.0, metadata={"help": "focal loss focusing parameter (loss=focal)"})
    focal_alpha: float = field(default=0.25, metadata={"help": "focal loss weighting factor (loss=focal)"})
    patience: int = field(default=3, metadata={"help": "epochs without val improvement before stopping"})

    def __post_init__(self):
        valid = [*load_config()["models"], "all"]
        if self.model not in valid:
            raise ValueError(f"unknown model {self.model!r}; valid: {', '.join(valid)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        parse_class_weights(self.class_weights)
        check_source_weights(self.source_weights)
        for name in ("max_epochs", "batch_size", "max_length", "embedding_dim", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.focal_gamma < 0 or not 0 < self.focal_alpha <= 1:
            raise ValueError(f"focal_gamma must be >= 0 and focal_alpha in (0, 1]; got {self.focal_gamma}, "
                             f"{self.focal_alpha}")
        super().__post_init__()


class KerasTextClassifier:
    """A string-in Keras model (TextVectorization inside) behind the contract's `TextClassifier` interface."""

    FILE = "model.keras"
    BATCH = 256

    def __init__(self, model):
        self.model = model

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths share a batch: less padding
        proba = np.empty((len(texts), len(LABELS)), dtype=np.float32)
        with warnings.catch_warnings():  # a one-token prompt gives a softmax over one key; harmless
            warnings.filterwarnings("ignore", message="You are using a softmax over axis")
            for start in range(0, len(texts), self.BATCH):
                index = order[start:start + self.BATCH]
                batch = np.array([texts[i] for i in index], dtype=object)
                proba[index] = self.model.predict_on_batch(batch)
        return proba

    def save(self, path: str) -> None:
        self.model.save(Path(path) / self.FILE)

    @classmethod
    def load(cls, path: str) -> "KerasTextClassifier":
        import keras

        from promptcls.families import keras_models  # noqa: F401  registers the custom layers
        return cls(keras.saving.load_model(Path(path) / cls.FILE))


def bucketed_batches(ids: np.ndarray, batch_size: int, bucket: int, rng: np.random.Generator | None):
    """Index batches of similar-length prompts (shuffled within and across batches when `rng` is given), each with
    the padded width it needs (a multiple of `bucket`)."""
    lengths = np.maximum((ids != 0).sum(axis=1), 1)
    noise = rng.random(len(ids)) if rng is not None else np.zeros(len(ids))
    order = np.lexsort((noise, lengths))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return [(b, min(ids.shape[1], int(np.ceil(lengths[b].max() / bucket) * bucket))) for b in batches]


class EpochLogger:
    """Keras callback (built lazily: keras is imported only here): validation metrics, one MLflow point per epoch
    per curve (plus `epoch_seconds`, the training pass) and one progress line per epoch. Must come before
    EarlyStopping / ReduceLROnPlateau, which read the `val_*` values it adds to `logs`."""

    def __new__(cls, *args, **kwargs):
        import keras

        class _EpochLogger(keras.callbacks.Callback):
            def __init__(self, val_ids, val_labels, loss_fn, bucket, max_epochs):
                super().__init__()
                self.val_ids, self.val_labels, self.loss_fn = val_ids, val_labels, loss_fn
                self.batches = bucketed_batches(val_ids, 256, bucket, None)
                self.max_epochs, self.history = max_epochs, {name: [] for name in CURVES}

            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                seconds = time.perf_counter() - self.started  # the training pass only
                proba = np.empty((len(self.val_ids), len(LABELS)), dtype=np.float32)
                for index, width in self.batches:
                    proba[index] = keras.ops.convert_to_numpy(self.model(self.val_ids[index, :width], training=False))
                y_pred = proba.argmax(axis=1)
                onehot = np.eye(len(LABELS), dtype=np.float32)[self.val_labels]
                scores = security_metrics(self.val_labels, y_pred)
                logs["val_loss"] = float(keras.ops.convert_to_numpy(self.loss_fn(onehot, proba)))
                logs["val_accuracy"] = scores["accuracy"]
                logs["val_custom_score"] = scores["custom_score"]
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                point = {name: float(logs[name]) for name in CURVES}
                mlflow.log_metrics({**point, "epoch_seconds": seconds}, step=epoch + 1)  # 1-based, as in every family
                for name, value in point.items():
                    self.history[name].append(value)
                log.info("epoch %d/%d %.1fs: %s", epoch + 1, self.max_epochs, seconds,
                         " ".join(f"{k} {v:.4g}" for k, v in point.items()))

        return _EpochLogger(*args, **kwargs)


def curves_figure(history: dict[str, list[float]], best_epoch: int, title: str):
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 3.4), dpi=110)
    panels = (("loss", ("loss", "val_loss")), ("accuracy", ("accuracy", "val_accuracy")),
              ("val custom_score", ("val_custom_score",)), ("learning rate", ("learning_rate",)))
    for i, (name, keys) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for key in keys:
            ax.plot(range(len(history[key])), history[key], marker="o", label=key)
        ax.axvline(best_epoch, color="grey", linestyle=":", label="restored")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


class DeepLearningFamily(Family):
    name = "deep_learning"
    args_class = DeepLearningArgs

    def model_names(self) -> list[str]:
        return list(load_config()["models"])

    def build_untrained(self, model_name: str):
        from promptcls.families.keras_models import BUILDERS

        return BUILDERS[model_name](50, 16, 8, **load_config()["models"][model_name])  # vocab 50, 16 tokens, dim 8

    def requirements(self) -> list[str]:
        return ["tensorflow-cpu", "keras"]

    def window_chars(self, args: DeepLearningArgs) -> int:
        """It truncates at `max_length` tokens; the contract shows it long texts in the default windows."""
        return int(robustness()["windows"]["default_chars"])

    def train(self, model_name: str, splits: Splits, args: DeepLearningArgs) -> KerasTextClassifier:
        import keras
        import tensorflow as tf

        from promptcls.families.keras_models import BUILDERS, Truncate

        config = load_config()
        spec, vocab, training = config["models"][model_name], config["vocabulary"], config["training"]
        keras.utils.set_random_seed(args.seed)
        tf.config.experimental.enable_op_determinism()
        keras.backend.clear_session()

        train_texts = np.array(splits.train["text"].tolist(), dtype=object)
        vectorizer = keras.layers.TextVectorization(name="vectorizer", **vocab)
        vectorizer.adapt(tf.constant(train_texts.tolist()), batch_size=1024)  # training split only

        truncate = Truncate(args.max_length, name="truncate")

        def vectorize(texts):  # the same layers as in the saved model
            return truncate(vectorizer(tf.constant(list(texts)))).numpy()

        train_ids, val_ids = vectorize(train_texts), vectorize(splits.val["text"])
        core = BUILDERS[model_name](vectorizer.vocabulary_size(), args.max_length, args.embedding_dim, **spec)
        loss_fn = (keras.losses.CategoricalCrossentropy() if args.loss == "crossentropy" else
                   keras.losses.CategoricalFocalCrossentropy(alpha=args.focal_alpha, gamma=args.focal_gamma))
        core.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss=loss_fn, metrics=["accuracy"])

        y = splits.train["label"].to_numpy()
        weights = class_weight_vector(args.class_weights, y)
        sample_weight = source_balanced((np.ones(len(LABELS)) if weights is None else weights)[y], splits.train,
                                        args.source_weights).astype(np.float32)
        onehot = np.eye(len(LABELS), dtype=np.float32)[y]
        rng = np.random.default_rng(args.seed)

        def generate():  # a fresh shuffle each epoch, reproducible from the seed
            for index, width in bucketed_batches(train_ids, args.batch_size, training["length_bucket"], rng):
                yield train_ids[index, :width], onehot[index], sample_weight[index]

        dataset = tf.data.Dataset.from_generator(generate, output_signature=(
            tf.TensorSpec((None, None), tf.int64), tf.TensorSpec((None, len(LABELS)), tf.float32),
            tf.TensorSpec((None,), tf.float32))).apply(
            tf.data.experimental.assert_cardinality(-(-len(y) // args.batch_size)))
        logger = EpochLogger(val_ids, splits.val["label"].to_numpy(), loss_fn, training["length_bucket"],
                             args.max_epochs)
        callbacks = [logger,
                     keras.callbacks.EarlyStopping(monitor=training["monitor"], mode="max", patience=args.patience,
                                                   restore_best_weights=True),
                     keras.callbacks.ReduceLROnPlateau(monitor=training["reduce_lr_monitor"], mode="min",
                                                       factor=training["reduce_lr_factor"],
                                                       patience=training["reduce_lr_patience"],
                                                       min_lr=training["min_learning_rate"])]
        mlflow.log_params({"architecture": json.dumps(spec), "vocabulary": json.dumps(vocab),
                           "callbacks": json.dumps(training), "vocabulary_size": vectorizer.vocabulary_size(),
                           "trainable_params": core.count_params(),
                           "class_weights_used": json.dumps([round(float(w), 4) for w in weights])})
        core.fit(dataset, epochs=args.max_epochs, callbacks=callbacks, shuffle=False, verbose=0)

        scores = logger.history[training["monitor"]]
        best_epoch = int(np.argmax(scores))
        mlflow.log_metrics({"epochs_trained": len(scores), "best_epoch": best_epoch + 1,
                            f"best_{training['monitor']}": scores[best_epoch]})
        mlflow.log_figure(curves_figure(logger.history, best_epoch, f"{model_name}: training curves"),
                          "training_curves.png")
        text = keras.Input(shape=(), dtype="string", name="text")
        model = keras.Model(text, core(truncate(vectorizer(text))),
                            name=f"promptcls_{model_name}")
        summary = io.StringIO()
        model.summary(print_fn=lambda line, **_: summary.write(line + "\n"), expand_nested=True)
        mlflow.log_text(summary.getvalue(), "model_summary.txt")
        log.info("%s: %d epochs, best epoch %d (%s %.4f)", model_name, len(scores), best_epoch + 1,
                 training["monitor"], scores[best_epoch])
        return KerasTextClassifier(model)
