"""The text modality: KerasHub text encoders (and the offline MiniLM), text sources, token pooling,
and a TF Serving signature on raw strings (tokenizer in the graph)."""

from keras_tl.core.utils.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
