"""Training, for any modality: two-phase fine-tuning, its callbacks, the resume state, the cached frozen
phase, the learning-rate range test, distribution and precision."""

from keras_tl.core.utils.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
