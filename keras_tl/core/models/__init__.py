"""Model pieces of every modality: the head and its layer names, Keras layers saved inside models,
multi-task heads, optimizers (discriminative rates) and learning-rate schedules."""

from keras_tl.core.utils.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
