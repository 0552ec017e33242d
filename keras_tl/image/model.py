"""The image transfer model: raw pixels -> preprocessing -> backbone (inference mode) -> new head."""

import keras

from keras_tl.core.contract import registry
from keras_tl.core.models.heads import (
    POOL_LAYER,
    HeadSpec,
    backbone_layer,
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
    num_classes=None,
    head=None,
    weights="pretrained",
    image_size=None,
    pooling="avg",
    augmentation=None,
    **head_options,
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
        head: HeadSpec. The whole head instead of `num_classes` and `**head_options`.
        weights: str. "pretrained", "none" or a weights file.
        image_size: int. Input side; defaults to the backbone's default size.
        pooling: str. "avg" or "max" over the feature map.
        augmentation: list of Keras layers. Random augmentation run inside the model (on the
            accelerator) in training only, as in the Keras transfer-learning guide; a
            `keras.Sequential` named "augmentation" before the preprocessing. Defaults to None.
        **head_options: the head's `problem` ("multiclass", "binary": one sigmoid unit,
            "multilabel"), `dense_units`, `dropout` (0.2), `class_names`, `head_kinds`
            (`keras_tl.core.models.heads.HeadSpec`).

    Returns:
        A `keras.Model`; its backbone is the layer named "backbone".

    Example:
    >>> model = keras_tl.image.model.build_model("mobilenet_v2", num_classes=5, weights="none", image_size=64)
    """
    spec = registry.get(backbone, modality="image") if isinstance(backbone, str) else backbone
    size = image_size or spec.default_size
    new_head = HeadSpec.of(head, num_classes, head_options)
    preprocess, base = backbones.build(spec, weights=weights, image_size=size)

    if not is_pretrained(weights):
        short_run_batchnorm(base)
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    if augmentation:
        x = keras.Sequential(list(augmentation), name=AUGMENTATION_LAYER)(x)
    x = backbone_layer(base, preprocess(x), is_pretrained(weights))
    outputs = new_head(_pool(x, pooling))
    return keras.Model(inputs, outputs, name=f"keras_tl_{spec.name.replace('/', '_')}"[:60])


def _pool(x, pooling):
    if len(x.shape) == 4:
        layer = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    elif len(x.shape) == 3:  # Token sequences (ViT-style KerasHub backbones).
        layer = keras.layers.GlobalAveragePooling1D if pooling == "avg" else keras.layers.GlobalMaxPooling1D
    else:
        return x
    return layer(name=POOL_LAYER)(x)
