"""The text modality's pooling layer (ships inside saved and exported models).

Registered as `keras_tl>TokenPooling`, the name `.keras` files of earlier versions carry.
"""

import keras
import numpy as np
from keras import ops

from keras_tl.core.contract.errors import ConfigError


@keras.saving.register_keras_serializable(package="keras_tl")
class TokenPooling(keras.layers.Layer):
    """Pools an encoder's token outputs `(B, T, D)` into one vector per text, ignoring padding.

    Args:
        mode: str. "avg" (mean over the real tokens, as sentence-transformers pools MiniLM), "max"
            (maximum over the real tokens) or "cls" (the first token, `[CLS]`/`<s>`).
            Defaults to "avg".

    Call args:
        inputs: a tensor `(B, T, D)`, or a dict with "sequence_output" (BERT-style backbones).
        padding_mask: bool or int tensor `(B, T)`, true for real tokens.

    Example:
    >>> pool = keras_tl.text.layers.TokenPooling("avg")
    >>> pool(np.ones((1, 3, 2)) * [[[1], [3], [9]]], np.array([[1, 1, 0]])).numpy()
    array([[2., 2.]], dtype=float32)
    """

    MODES = ("avg", "max", "cls")

    def __init__(self, mode="avg", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ConfigError(f"`mode` must be one of {list(self.MODES)}. Received: mode={mode!r}")
        self.mode = mode

    def call(self, inputs, padding_mask):
        if isinstance(inputs, dict):
            inputs = inputs["sequence_output"]
        if self.mode == "cls":
            return inputs[:, 0, :]
        if self.mode == "max":
            # Padding positions take the dtype's lowest finite value (not `x - 1e9`, which is -inf, and
            # 0 * inf = NaN at the real tokens, in float16).
            real = ops.cast(padding_mask, "bool")[:, :, None]
            lowest = float(np.finfo(keras.backend.standardize_dtype(inputs.dtype)).min)
            return ops.max(ops.where(real, inputs, ops.full_like(inputs, lowest)), axis=1)
        mask = ops.cast(padding_mask, inputs.dtype)[:, :, None]
        return ops.sum(inputs * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        if isinstance(inputs_shape, dict):
            inputs_shape = inputs_shape["sequence_output"]
        return (inputs_shape[0], inputs_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
