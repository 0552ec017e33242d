"""keras-tl: transfer learning with Keras 3 and TensorFlow.

Example:
>>> import keras_tl
>>> config = keras_tl.TrainConfig(data="photos/", backbone="efficientnet_b0", out="runs/photos")
>>> result = keras_tl.train(config)
"""

from keras_tl import augment, backbones, config, data, datasets, evaluate, layers, model, training
from keras_tl.backbones import WeightsUnavailableError
from keras_tl.config import TrainConfig
from keras_tl.model import build_model
from keras_tl.training import compile_model, fine_tune, set_trainable
from keras_tl.workflow import (
    evaluate_run,
    load_run,
    predict_files,
    save_backbone_weights,
    train,
)

__version__ = "0.1.0"
