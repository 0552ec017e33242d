"""Domain shift and adaptation: the proxy A-distance, AdaBN, CORAL, DANN and the prior shift."""

from keras_tl.core.utils.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
