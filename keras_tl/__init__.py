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

from keras_tl.core import quiet as _quiet

__version__ = "0.2.0"

# The modules whose import registers keras-tl's Keras classes (layers, optimizers, schedules): a
# `.keras` file keras-tl wrote loads with plain `keras.saving.load_model` once `keras_tl` is imported,
# whichever of keras and keras_tl came first. Each imports, at module level, only Keras, numpy and
# keras-free keras_tl modules (tests/test_architecture.py holds that), so registering them while
# another keras_tl module is half-way through importing Keras is safe.
KERAS_OBJECT_MODULES = (
    "keras_tl.core.layers", "keras_tl.core.multitask", "keras_tl.core.optimizers", "keras_tl.core.schedules",
    "keras_tl.image.layers", "keras_tl.text.layers", "keras_tl.audio.layers",
)


def _register_keras_objects(keras_module=None):
    for name in KERAS_OBJECT_MODULES:
        importlib.import_module(name)


_quiet.install_import_hook()  # TensorFlow's start-up lines, when keras-tl is what imports it.
_quiet.on_import("keras", after=_register_keras_objects)

# Public name -> the module that defines it; imported on first use.
_PUBLIC = {
    "TrainConfig": "keras_tl.core.config",
    "Classifier": "keras_tl.core.classifier",
    "KerasTLError": "keras_tl.core.errors",
    "ConfigError": "keras_tl.core.errors",
    "DataError": "keras_tl.core.errors",
    "DatasetUnavailableError": "keras_tl.core.errors",
    "WeightsError": "keras_tl.core.errors",
    "WeightsUnavailableError": "keras_tl.core.errors",
    "RunExistsError": "keras_tl.core.errors",
    "TrainingDivergedError": "keras_tl.core.errors",
    "ExportError": "keras_tl.core.errors",
    "ExportCheckError": "keras_tl.core.errors",
    "TFLiteConversionError": "keras_tl.core.errors",
    "ServingError": "keras_tl.core.errors",
    "ServingUnavailableError": "keras_tl.core.errors",
    "build_classifier": "keras_tl.workflow",
    "set_trainable": "keras_tl.core.training",
    "compile_model": "keras_tl.core.training",
    "fine_tune": "keras_tl.core.training",
    "train": "keras_tl.workflow",
    "compare_backbones": "keras_tl.workflow",
    "lr_find": "keras_tl.workflow",
    "rank": "keras_tl.workflow",
    "domain_shift": "keras_tl.workflow",
    "show_batch": "keras_tl.workflow",
    "evaluate_run": "keras_tl.workflow",
    "export_run": "keras_tl.workflow",
    "load_run": "keras_tl.workflow",
    "predict": "keras_tl.workflow",
    "predict_files": "keras_tl.workflow",
    "save_backbone_weights": "keras_tl.workflow",
}
_SUBPACKAGES = ("assets", "audio", "cli", "core", "datasets", "image", "quickstart", "text", "weights", "workflow")


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"keras_tl.{name}")
    raise AttributeError(f"module 'keras_tl' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_PUBLIC) + list(_SUBPACKAGES))
