"""Building image backbones: a Keras Applications network (or a KerasHub image preset) without its
top, and the layer that preprocesses raw pixels for it.

Which backbones exist, and where their weights are, is `keras_tl.image.presets` (keras-free).
"""

import re

from keras_tl.core.contract.errors import ConfigError, WeightsUnavailableError
from keras_tl.core.contract.files import load_weights_file
from keras_tl.image.applications import construct
from keras_tl.image.layers import ImagePreprocessing
from keras_tl.image.presets import check_weights, unavailable_message


def build(spec, weights="pretrained", image_size=None):
    """Builds the backbone (without top) and the layer that preprocesses raw pixels for it.

    Args:
        spec: BackboneSpec. From `keras_tl.core.contract.registry.get(...)`.
        weights: str or None. "pretrained" (ImageNet, or a KerasHub preset's own), "none"/None, or a
            local weights file (`.weights.h5` or a Keras Applications `.h5`).
        image_size: int. Input side; defaults to `spec.default_size`.

    Returns:
        A tuple `(preprocessing_layer, backbone_model)`.

    Example:
    >>> spec = keras_tl.core.contract.registry.get("mobilenet_v2")
    >>> preprocess, backbone = keras_tl.image.backbones.build(spec, weights="none", image_size=64)
    """
    size = image_size or spec.default_size
    if size < spec.min_size:
        raise ConfigError(
            f"Backbone {spec.name!r} needs images of at least {spec.min_size}px. Received: image_size={size}"
        )
    weights = "none" if weights is None else weights
    check_weights(spec, weights)
    if spec.source == "keras_hub":
        return _build_hub(spec, weights)
    kwargs = dict(include_top=False, input_shape=(size, size, 3))
    if weights == "none":
        backbone = construct(spec, **kwargs)
    elif weights == "pretrained" and spec.weights_from != "keras":
        from keras_tl.image import imported  # Converts weights a package ships (once, cached).

        backbone = construct(spec, **kwargs)
        backbone.load_weights(imported.imagenet_weights(spec.weights_from))
    elif weights == "pretrained":
        backbone = _download_guard(spec, lambda: construct(spec, weights="imagenet", **kwargs))  # Keras' word.
    else:
        backbone = construct(spec, **kwargs)
        load_weights_file(
            backbone,
            weights,
            spec.name,
            expected="the weights of this backbone without its top (`save_weights` of a keras-tl "
            "backbone, `keras-tl import-weights`, or a Keras Applications no-top .h5)",
        )
    backbone.name = "backbone"
    return ImagePreprocessing(spec.preprocessing, name="preprocessing"), backbone


def _download_guard(spec, make):
    try:
        return make()
    except Exception as error:  # keras.utils.get_file raises a bare Exception on URL failures.
        if "URL fetch failure" not in str(error):
            raise
        url = re.search(r"https?://\S+?(?=:? |$)", str(error))
        raise WeightsUnavailableError(unavailable_message(spec, url.group(0) if url else "the weights file")) from error


def _build_hub(spec, weights):
    import keras_hub  # Optional at import time: only needed for presets.

    try:
        backbone = keras_hub.models.Backbone.from_preset(spec.constructor, load_weights=weights != "none")
        converter = keras_hub.layers.ImageConverter.from_preset(spec.constructor)
    except (OSError, ConnectionError) as error:
        raise WeightsUnavailableError(
            f"Could not fetch the KerasHub preset {spec.constructor!r} (no network?). On a machine "
            "with internet run `keras_hub.models.Backbone.from_preset(HANDLE).save_to_preset(DIR)` "
            "(and the same for its ImageConverter), copy DIR here and pass backbone=DIR."
        ) from error
    backbone.name = "backbone"
    converter.name = "preprocessing"
    return converter, backbone
