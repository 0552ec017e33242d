"""Process utilities every layer may use: paths, the network edge, a quiet TensorFlow, the `keras_tl`
logger, lazy imports. Keras-free; they import no other keras_tl module."""

from keras_tl.core.utils.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
