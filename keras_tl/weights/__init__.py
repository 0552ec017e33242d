"""Checkpoint readers and converters: ImageNet weights that installed packages ship, read without
PyTorch and mapped tensor by tensor onto Keras layers. Imports nothing from the registry."""

from keras_tl.core.utils.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
