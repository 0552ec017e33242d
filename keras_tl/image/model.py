"""The image transfer model: raw pixels -> preprocessing -> backbone (inference mode) -> new head."""

import keras

from keras_tl.core.contract import registry
from keras_tl.core.models.heads import (
    POOL_LAYER,
    backbone_layer,
    check_problem,
    head,
    is_pretrained,
    short_run_batchnorm,
)
from keras_tl.core.utils import quiet
from keras_tl.image import backbones

AUGMENTATION_LAYER = "augmentation"


@quiet.tensorflow_started
def build_model(
    backbone="mobilenet_v2",
    *,
    num_classes,
    weights="pretrained",
    image_size=None,
    problem="multiclass",
    pooling="avg",
    dense_units=(),
    dropout=0.2,
    augmentation=None,
    class_names=(),
    head_kinds=None,
):
    """Builds a classifier that takes raw images (0-255, uint8 or float) of one size.

    With pretrained weights the backbone always runs in inference mode (the Keras transfer-learning
    guide's `training=False`, enforced by `keras_tl.core.models.layers.InferenceMode`, since Keras 3 would
    otherwise pass `fit`'s `training=True` through): BatchNorm keeps its moving statistics and
    dropout/stochastic depth stay off, frozen or not. With `weights="none"` there are no
    statistics to protect: the backbone trains normally, as any network trained from scratch does.

    Args:
        backbone: str or BackboneSpec. A name from `keras-tl backbones` or a KerasHub handle.
        num_classes: int. Number of classes (2 with problem="binary" gives one sigmoid output).
        weights: str. "pretrained", "none" or a weights file.
        image_size: int. Input side; defaults to the backbone's default size.
        problem: str. "multiclass" (softmax), "binary" (one sigmoid unit) or "multilabel" (one
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
    >>> model = keras_tl.image.model.build_model("mobilenet_v2", num_classes=5, weights="none", image_size=64)
    """
    spec = registry.get(backbone, modality="image") if isinstance(backbone, str) else backbone
    size = image_size or spec.default_size
    check_problem(problem, num_classes)
    preprocess, base = backbones.build(spec, weights=weights, image_size=size)

    if not is_pretrained(weights):
        short_run_batchnorm(base)
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    if augmentation:
        x = keras.Sequential(list(augmentation), name=AUGMENTATION_LAYER)(x)
    x = backbone_layer(base, preprocess(x), is_pretrained(weights))
    outputs = head(
        _pool(x, pooling),
        num_classes=num_classes,
        problem=problem,
        dense_units=dense_units,
        dropout=dropout,
        class_names=class_names,
        head_kinds=head_kinds,
    )
    return keras.Model(inputs, outputs, name=f"keras_tl_{spec.name.replace('/', '_')}"[:60])


def _pool(x, pooling):
    if len(x.shape) == 4:
        layer = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    elif len(x.shape) == 3:  # Token sequences (ViT-style KerasHub backbones).
        layer = keras.layers.GlobalAveragePooling1D if pooling == "avg" else keras.layers.GlobalMaxPooling1D
    else:
        return x
    return layer(name=POOL_LAYER)(x)
