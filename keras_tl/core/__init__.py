"""The shared machinery every modality uses: config, registry, heads, training, features, evaluation,
the run directory, export and serving. A modality (`keras_tl.image`, `keras_tl.text`) fills in only
what differs; see docs/ARCHITECTURE.md."""

from keras_tl.core.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
