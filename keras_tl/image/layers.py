"""The image modality's in-graph preprocessing layer (ships inside saved and exported models)."""

import keras
from keras import ops

from keras_tl.core.contract.errors import ConfigError

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
    >>> layer = keras_tl.image.layers.ImagePreprocessing("tf")
    >>> layer(np.array([[[[0, 127.5, 255]]]])).numpy()
    array([[[[-1.,  0.,  1.]]]], dtype=float32)
    """

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ConfigError(f"`mode` must be one of {list(MODES)}. Received: mode={mode!r}")
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
