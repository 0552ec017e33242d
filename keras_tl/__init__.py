"""keras-tl: transfer learning with Keras 3 and TensorFlow, for images, text and audio.

The package is a shared core (`keras_tl.core`: config, registry, heads, training, features,
evaluation, run directory, export, serving) with one plug-in folder per modality
(`keras_tl.image`, `keras_tl.text`, `keras_tl.audio`), offline weight converters (`keras_tl.weights`), offline
datasets (`keras_tl.datasets`) and the whole-run functions (`keras_tl.workflow`). See
docs/ARCHITECTURE.md. Importing `keras_tl` imports nothing heavy: Keras and TensorFlow load when a
function that needs them is first used.

Example:
>>> import keras_tl
>>> config = keras_tl.TrainConfig(data="photos/", backbone="efficientnet_b0", out="runs/photos")
>>> result = keras_tl.train(config)
"""

import importlib

from keras_tl.core.utils import lazy as _lazy
from keras_tl.core.utils import quiet as _quiet
from keras_tl.core.utils.version import __version__  # noqa: F401  (written in that one place)

# The modules whose import registers keras-tl's Keras classes (layers, optimizers, schedules): a
# `.keras` file keras-tl wrote loads with plain `keras.saving.load_model` once `keras_tl` is imported,
# whichever of keras and keras_tl came first. Each imports, at module level, only Keras, numpy and
# keras-free keras_tl modules (tests/test_architecture.py holds that), so registering them while
# another keras_tl module is half-way through importing Keras is safe.
KERAS_OBJECT_MODULES = (
    "keras_tl.core.models.layers",
    "keras_tl.core.models.multitask",
    "keras_tl.core.models.optimizers",
    "keras_tl.core.models.schedules",
    "keras_tl.image.layers",
    "keras_tl.text.layers",
    "keras_tl.audio.layers",
)


def _register_keras_objects(keras_module=None):
    for name in KERAS_OBJECT_MODULES:
        importlib.import_module(name)


_quiet.install_import_hook()  # TensorFlow's start-up lines, when keras-tl is what imports it.
_quiet.on_import("keras", after=_register_keras_objects)

# Public name -> the module that defines it; imported on first use.
_PUBLIC = {
    "TrainConfig": "keras_tl.core.contract.config",
    "Classifier": "keras_tl.core.models.classifier",
    "KerasTLError": "keras_tl.core.contract.errors",
    "ConfigError": "keras_tl.core.contract.errors",
    "DataError": "keras_tl.core.contract.errors",
    "DatasetUnavailableError": "keras_tl.core.contract.errors",
    "WeightsError": "keras_tl.core.contract.errors",
    "WeightsUnavailableError": "keras_tl.core.contract.errors",
    "RunExistsError": "keras_tl.core.contract.errors",
    "TrainingDivergedError": "keras_tl.core.contract.errors",
    "ExportError": "keras_tl.core.contract.errors",
    "ExportCheckError": "keras_tl.core.contract.errors",
    "TFLiteConversionError": "keras_tl.core.contract.errors",
    "ServingError": "keras_tl.core.contract.errors",
    "ServingUnavailableError": "keras_tl.core.contract.errors",
    "build_classifier": "keras_tl.workflow",
    "set_trainable": "keras_tl.core.train.training",
    "compile_model": "keras_tl.core.train.training",
    "fine_tune": "keras_tl.core.train.training",
    "train": "keras_tl.workflow",
    "auto": "keras_tl.workflow",
    "compare_backbones": "keras_tl.workflow",
    "lr_find": "keras_tl.workflow",
    "rank": "keras_tl.workflow",
    "domain_shift": "keras_tl.workflow",
    "show_batch": "keras_tl.workflow",
    "evaluate_run": "keras_tl.workflow",
    "export_run": "keras_tl.workflow",
    "load_run": "keras_tl.workflow",
    "predict": "keras_tl.workflow",
    "save_backbone_weights": "keras_tl.workflow",
}
_submodule, _submodules = _lazy.lazy_names(__name__, __path__)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    return _submodule(name)  # keras_tl.image, keras_tl.workflow, ...


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC) | set(_submodules()))
