"""Export and serving: the formats (`.keras`, SavedModel, TFLite) with their checks, atomic publishing,
LiteRT, TFLite metadata, and the TF Serving client."""

from keras_tl.core.utils.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
