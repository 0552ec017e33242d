"""The contract the layers above share, keras-free: the errors, the checks of the paths a config
names, the choice lists, the run config, the backbone registry and the modality plug-in contract."""

from keras_tl.core.utils.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
