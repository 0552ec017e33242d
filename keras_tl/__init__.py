"""keras-tl: transfer learning with Keras 3 and TensorFlow.

The model side (`backbones`, `imports`, `model`, `training`, `features`, `evaluate`, `distribute`) uses
Keras 3 APIs only and imports without TensorFlow, so it runs on any Keras backend
(`KERAS_BACKEND=jax`); the tf.data pipelines (`data`, `augment`, `datasets`), the whole-run
`workflow` and `export`, and the text side (`text_backbones`, `text_data`, `text_model`,
`text_export`, `text_workflow`: KerasHub's tokenizers are tf.text ops) load TensorFlow when first used.

Example:
>>> import keras_tl
>>> config = keras_tl.TrainConfig(data="photos/", backbone="efficientnet_b0", out="runs/photos")
>>> result = keras_tl.train(config)
"""

import importlib

from keras_tl import (assets, backbones, config, distribute, evaluate, features, imports, layers, model,
                      torch_weights, training)
from keras_tl.backbones import WeightsUnavailableError
from keras_tl.config import TrainConfig
from keras_tl.model import build_model
from keras_tl.training import compile_model, fine_tune, set_trainable

__version__ = "0.1.0"

# TensorFlow-backed modules and the workflow functions: imported on first use.
_LAZY_MODULES = ("augment", "data", "datasets", "export", "plots", "report", "serving", "workflow",
                 "text_backbones", "text_data", "text_model", "text_export", "text_workflow")
_LAZY_FUNCTIONS = ("evaluate_run", "load_run", "predict_files", "save_backbone_weights", "train")


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"keras_tl.{name}")
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module("keras_tl.workflow"), name)
    raise AttributeError(f"module 'keras_tl' has no attribute {name!r}")
