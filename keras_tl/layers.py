"""Custom layers that ship inside saved and exported models."""

import keras
from keras import ops

# Per-channel constants of the Keras Applications `preprocess_input` modes, in RGB order.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
MODES = ("tf", "caffe", "torch", "lite", "none")


@keras.saving.register_keras_serializable(package="keras_tl")
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw RGB pixels in [0, 255] to what a backbone expects, inside the model graph.

    The modes are those of `keras.applications.imagenet_utils.preprocess_input`, so an exported
    model takes raw images and nobody has to remember the right `preprocess_input`.

    Args:
        mode: str. "tf" (scale to [-1, 1]), "caffe" (RGB->BGR, subtract the ImageNet mean),
            "torch" (scale to [0, 1], normalize with the ImageNet mean and std), "lite"
            ((x - 127) / 128, as the EfficientNet-Lite checkpoints were trained) or "none"
            (the backbone preprocesses itself; only cast to float). Defaults to "tf".

    Example:
    >>> layer = keras_tl.layers.ImagePreprocessing("tf")
    >>> layer(np.array([[[[0, 127.5, 255]]]])).numpy()
    array([[[[-1.,  0.,  1.]]]], dtype=float32)
    """

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {list(MODES)}. Received: mode={mode!r}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "lite":
            return (x - 127.0) / 128.0
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1)
            return x - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=self.compute_dtype)
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            return (x / 255.0 - mean) / std
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="keras_tl")
class InferenceMode(keras.layers.Layer):
    """Runs a wrapped model in inference mode, whatever the `training` value of the outer call.

    The Keras guide calls a pretrained backbone with `base_model(x, training=False)`, but in Keras 3
    a functional model passes its own `training` value down to every node, overriding the nested
    `training=False` (keras-team/keras#20285): during `fit` the backbone's BatchNorm layers then
    normalize with batch statistics as soon as they are trainable, and its dropout and stochastic
    depth layers are active even while it is frozen. This layer's `call` takes no `training`
    argument, so the outer value never reaches the backbone; it always runs with `training=False`.

    Args:
        inner: keras.Model. The backbone.

    Example:
    >>> frozen = keras_tl.layers.InferenceMode(backbone, name="backbone")
    >>> features = frozen(images)  # BatchNorm and dropout in inference mode, even inside fit()
    """

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def build(self, input_shape):
        if not self.inner.built:
            self.inner.build(input_shape)
        self.built = True

    def call(self, inputs):
        return self.inner(inputs, training=False)

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "inner": keras.saving.serialize_keras_object(self.inner)}

    @classmethod
    def from_config(cls, config):
        inner = keras.saving.deserialize_keras_object(config.pop("inner"))
        return cls(inner, **config)


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
    >>> pool = keras_tl.layers.TokenPooling("avg")
    >>> pool(np.ones((1, 3, 2)) * [[[1], [3], [9]]], np.array([[1, 1, 0]])).numpy()
    array([[2., 2.]], dtype=float32)
    """

    MODES = ("avg", "max", "cls")

    def __init__(self, mode="avg", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"`mode` must be one of {list(self.MODES)}. Received: mode={mode!r}")
        self.mode = mode

    def call(self, inputs, padding_mask):
        if isinstance(inputs, dict):
            inputs = inputs["sequence_output"]
        if self.mode == "cls":
            return inputs[:, 0, :]
        mask = ops.cast(padding_mask, inputs.dtype)[:, :, None]
        if self.mode == "max":
            return ops.max(inputs + (mask - 1.0) * 1e9, axis=1)
        return ops.sum(inputs * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        if isinstance(inputs_shape, dict):
            inputs_shape = inputs_shape["sequence_output"]
        return (inputs_shape[0], inputs_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
