"""Evaluation: test metrics, plots, the run report, and transferability scores (LogME, linear probes)."""

from keras_tl.core.utils.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
