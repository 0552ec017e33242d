"""The image modality: Keras Applications and KerasHub image backbones, image sources and decoding,
in-graph pixel preprocessing, augmentation, and TF Serving signatures on encoded bytes."""

from keras_tl.core.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
