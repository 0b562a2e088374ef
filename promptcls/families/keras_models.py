"""Keras builders of the deep-learning family and the few custom layers they share.

Every builder takes padded token ids (0 = padding, any length up to `max_length`) and returns class probabilities.
Padding never changes a prediction: embeddings of padded positions are zeroed before convolutions, recurrent and
attention layers get the padding mask explicitly, and pooling ignores padded positions. So a prompt gets the same
scores alone or in a batch padded to a longer prompt, which is what lets training use length-bucketed batches.

Imported only by `promptcls.families.deep_learning` (TensorFlow is never imported with the package).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from promptcls import LABELS

N_CLASSES = len(LABELS)


@keras.saving.register_keras_serializable(package="promptcls")
class Truncate(layers.Layer):
    """Keep the first `max_length` token ids (TextVectorization pads to the longest prompt of the batch).

    A prompt with no token at all (empty, or punctuation only) becomes one out-of-vocabulary token (id 1), so every
    prompt has at least one real position and gets a proper probability vector.
    """

    def __init__(self, max_length: int, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length

    def call(self, ids):
        ids = ops.pad(ids, [[0, 0], [0, 1]])[:, : self.max_length]  # width >= 1 even for a batch of empty prompts
        first = ops.where(ops.any(ops.not_equal(ids, 0), axis=1, keepdims=True), ids[:, :1], ops.ones_like(ids[:, :1]))
        return ops.concatenate([first, ids[:, 1:]], axis=1)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}


@keras.saving.register_keras_serializable(package="promptcls")
class PaddingMask(layers.Layer):
    """Boolean mask, True on real tokens (id != 0)."""

    def call(self, ids):
        return ops.not_equal(ids, 0)


@keras.saving.register_keras_serializable(package="promptcls")
class ZeroPadded(layers.Layer):
    """Zero the vectors of padded positions, so a 'same' convolution sees exactly the zero padding it adds itself."""

    def call(self, x, mask):
        return x * ops.expand_dims(ops.cast(mask, x.dtype), -1)


@keras.saving.register_keras_serializable(package="promptcls")
class MaskedGlobalMaxPool(layers.Layer):
    """Global max over the real (unpadded) positions."""

    def call(self, x, mask):
        return ops.max(ops.where(ops.expand_dims(mask, -1), x, ops.full_like(x, -1e9)), axis=1)


@keras.saving.register_keras_serializable(package="promptcls")
class PositionEmbedding(layers.Layer):
    """Adds a learned embedding of each position (0 .. max_length-1) to the token embeddings."""

    def __init__(self, max_length: int, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length

    def build(self, input_shape):
        self.positions = self.add_weight(shape=(self.max_length, input_shape[-1]), initializer="uniform",
                                         name="positions")

    def call(self, x):
        return x + ops.expand_dims(self.positions[: ops.shape(x)[1]], 0)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}


def _embed(vocab_size: int, embedding_dim: int):
    ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    mask = PaddingMask(name="padding_mask")(ids)
    return ids, mask, layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)


def _head(ids, x, dropout: float, name: str) -> keras.Model:
    x = layers.Dropout(dropout)(x)
    return keras.Model(ids, layers.Dense(N_CLASSES, activation="softmax", name="probabilities")(x), name=name)


def cnn(vocab_size, max_length, embedding_dim, kernel_sizes=(3, 4, 5), filters=64, dropout=0.3):
    """Parallel 1-D convolutions (one per kernel size), max-pooled over real tokens and concatenated."""
    ids, mask, x = _embed(vocab_size, embedding_dim)
    x = ZeroPadded()(x, mask)
    pooled = [MaskedGlobalMaxPool()(layers.Conv1D(filters, k, padding="same", activation="relu")(x), mask)
              for k in kernel_sizes]
    return _head(ids, layers.Concatenate()(pooled) if len(pooled) > 1 else pooled[0], dropout, "cnn")


def lstm(vocab_size, max_length, embedding_dim, units=64, dropout=0.3):
    """One LSTM over the real tokens; its last state classifies."""
    ids, mask, x = _embed(vocab_size, embedding_dim)
    return _head(ids, layers.LSTM(units)(x, mask=mask), dropout, "lstm")


def bilstm(vocab_size, max_length, embedding_dim, units=48, dropout=0.3):
    """A bidirectional LSTM over the real tokens."""
    ids, mask, x = _embed(vocab_size, embedding_dim)
    return _head(ids, layers.Bidirectional(layers.LSTM(units))(x, mask=mask), dropout, "bilstm")


def hybrid(vocab_size, max_length, embedding_dim, filters=64, kernel_size=5, units=48, dropout=0.3):
    """A convolution for local n-gram features, then a bidirectional LSTM over them."""
    ids, mask, x = _embed(vocab_size, embedding_dim)
    x = layers.Conv1D(filters, kernel_size, padding="same", activation="relu")(ZeroPadded()(x, mask))
    return _head(ids, layers.Bidirectional(layers.LSTM(units))(x, mask=mask), dropout, "hybrid")


def transformer(vocab_size, max_length, embedding_dim, heads=2, ff_dim=128, dropout=0.2):
    """One encoder block (self-attention + feed-forward, post-norm) over token + position embeddings."""
    ids, mask, x = _embed(vocab_size, embedding_dim)
    x = PositionEmbedding(max_length)(x)
    attention = layers.MultiHeadAttention(heads, embedding_dim // heads, dropout=dropout)(
        x, x, query_mask=mask, value_mask=mask)
    x = layers.LayerNormalization(epsilon=1e-6)(x + layers.Dropout(dropout)(attention))
    ff = layers.Dense(embedding_dim)(layers.Dense(ff_dim, activation="relu")(x))
    x = layers.LayerNormalization(epsilon=1e-6)(x + layers.Dropout(dropout)(ff))
    return _head(ids, layers.GlobalAveragePooling1D()(x, mask=mask), dropout, "transformer")


BUILDERS = {"cnn": cnn, "lstm": lstm, "bilstm": bilstm, "hybrid": hybrid, "transformer": transformer}
