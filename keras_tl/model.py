"""The transfer model: raw pixels -> preprocessing -> backbone (inference mode) -> new head."""

import keras

from keras_tl import backbones
from keras_tl.layers import InferenceMode

BACKBONE_LAYER = "backbone"
AUGMENTATION_LAYER = "augmentation"
POOL_LAYER = "head_pool"


def is_pretrained(weights):
    """True if `weights` loads learned values (anything but None/"none")."""
    return weights not in (None, "none")


def build_model(
    backbone="mobilenet_v2",
    *,
    num_classes,
    weights="imagenet",
    image_size=None,
    task="multiclass",
    pooling="avg",
    dense_units=(),
    dropout=0.2,
    augmentation=None,
):
    """Builds a classifier that takes raw images (0-255, uint8 or float) of one size.

    With pretrained weights the backbone always runs in inference mode (the Keras transfer-learning
    guide's `training=False`, enforced by `keras_tl.layers.InferenceMode`, since Keras 3 would
    otherwise pass `fit`'s `training=True` through): BatchNorm keeps its moving statistics and
    dropout/stochastic depth stay off, frozen or not. With `weights="none"` there are no
    statistics to protect: the backbone trains normally, as any network trained from scratch does.

    Args:
        backbone: str or BackboneSpec. A name from `keras_tl.backbones.names()` or a KerasHub handle.
        num_classes: int. Number of classes (2 with task="binary" gives one sigmoid output).
        weights: str. "imagenet", "none", a weights file, or "preset" for KerasHub.
        image_size: int. Input side; defaults to the backbone's default size.
        task: str. "multiclass" (softmax), "binary" (one sigmoid unit) or "multilabel" (one
            sigmoid per class).
        pooling: str. "avg" or "max" over the feature map.
        dense_units: list of int. Extra Dense+ReLU layers in the head. Defaults to none.
        dropout: float. Dropout before the output layer. Defaults to 0.2.
        augmentation: list of Keras layers. Random augmentation run inside the model (on the
            accelerator) in training only, as in the Keras transfer-learning guide; a
            `keras.Sequential` named "augmentation" before the preprocessing. Defaults to None.

    Returns:
        A `keras.Model`; its backbone is the layer named "backbone".

    Example:
    >>> model = keras_tl.model.build_model("mobilenet_v2", num_classes=5, weights="none",
    ...                                    image_size=64)
    """
    spec = backbones.get(backbone) if isinstance(backbone, str) else backbone
    size = image_size or spec.default_size
    preprocess, base = backbones.build(spec, weights=weights, image_size=size)
    check_task(task, num_classes)

    if not is_pretrained(weights):
        _short_run_batchnorm(base)
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    if augmentation:
        x = keras.Sequential(list(augmentation), name=AUGMENTATION_LAYER)(x)
    x = preprocess(x)
    if is_pretrained(weights):
        x = InferenceMode(base, name=BACKBONE_LAYER)(x)
    else:
        x = base(x)
    outputs = head(_pool(x, pooling), num_classes=num_classes, task=task, dense_units=dense_units,
                   dropout=dropout)
    return keras.Model(inputs, outputs, name=f"keras_tl_{spec.name.replace('/', '_')}"[:60])


def check_task(task, num_classes):
    """Raises `ValueError` unless `task` is known and fits `num_classes`."""
    if task not in ("multiclass", "binary", "multilabel"):
        raise ValueError(f"`task` must be 'multiclass', 'binary' or 'multilabel'. Received: task={task!r}")
    if task == "binary" and num_classes != 2:
        raise ValueError(f"task='binary' needs exactly 2 classes. Received: num_classes={num_classes}")
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes. Received: num_classes={num_classes}")


def head(x, *, num_classes, task, dense_units=(), dropout=0.2):
    """The new classification head on pooled features `x`: optional Dense+ReLU layers, dropout, and
    the output layer named "predictions" (softmax, or sigmoid for binary and multi-label)."""
    for i, units in enumerate(dense_units):
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"head_dropout_{i}")(x)
    if dropout and not dense_units:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(
        1 if task == "binary" else num_classes,
        activation="softmax" if task == "multiclass" else "sigmoid",
        dtype="float32",  # Keeps probabilities in float32 under mixed precision.
        name="predictions",
    )(x)


def _short_run_batchnorm(backbone, momentum=0.9):
    """Lets BatchNorm statistics of a from-scratch backbone converge within a short run.

    Keras Applications use momentum 0.99-0.999, tuned for ImageNet-length training: after a few
    hundred steps from random weights the moving statistics are still near their initial values
    and the model is right in training mode but at chance in inference mode.
    """
    for layer in backbone._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def _pool(x, pooling):
    if len(x.shape) == 4:
        layer = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    elif len(x.shape) == 3:  # Token sequences (ViT-style KerasHub backbones).
        layer = keras.layers.GlobalAveragePooling1D if pooling == "avg" else keras.layers.GlobalMaxPooling1D
    else:
        return x
    return layer(name=POOL_LAYER)(x)


def task_of(model):
    """"binary", "multilabel" or "multiclass", read off a built model's output layer."""
    if model.output_shape[-1] == 1:
        return "binary"
    activation = model.get_layer("predictions").activation
    return "multilabel" if getattr(activation, "__name__", "") == "sigmoid" else "multiclass"


def get_backbone(model):
    """The backbone (a `keras.Model`) of a model built by `build_model`."""
    layer = model.get_layer(BACKBONE_LAYER)
    return layer.inner if isinstance(layer, InferenceMode) else layer
