"""The image modality's share of the config: its augmentation presets and how they are resolved.

Keras-free (the CLI checks a config before TensorFlow is imported); the layers that apply them are
`keras_tl.image.augment`.
"""

from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.contract.fields import augment_preset

_OFF = dict(
    flip="none",
    rotation=0.0,
    zoom=0.0,
    translation=0.0,
    contrast=0.0,
    brightness=0.0,
    crop=1.0,
    randaugment=False,
    mixup_alpha=0.0,
    cutmix=False,
)
AUGMENT_PRESETS = {
    "none": dict(_OFF),
    "light": {**_OFF, "flip": "horizontal", "rotation": 0.05, "zoom": 0.1},
    "standard": {
        **_OFF,
        "flip": "horizontal",
        "rotation": 0.1,
        "zoom": 0.15,
        "translation": 0.1,
        "contrast": 0.2,
        "brightness": 0.2,
        "crop": 0.9,
    },
    "strong": {
        **_OFF,
        "flip": "horizontal",
        "rotation": 0.15,
        "zoom": 0.2,
        "translation": 0.1,
        "contrast": 0.3,
        "brightness": 0.3,
        "crop": 0.8,
        "randaugment": True,
        "mixup_alpha": 0.2,
    },
}
FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")


def resolve_augment(name, overrides=None):
    """The parameters of preset `name` with `overrides` applied; unknown keys are refused.

    Example:
    >>> keras_tl.image.config.resolve_augment("light", {"rotation": 0.2})["rotation"]
    0.2
    """
    params = augment_preset(AUGMENT_PRESETS, name, overrides, "image augmentation")
    if params["flip"] not in FLIPS:
        raise ConfigError(f"`flip` must be one of {list(FLIPS)}. Received: flip={params['flip']!r}")
    for key in ("rotation", "zoom", "translation", "contrast", "brightness", "mixup_alpha"):
        if not isinstance(params[key], (int, float)) or not 0 <= params[key] <= 1:
            raise ConfigError(f"`{key}` must be a number in [0, 1]. Received: {key}={params[key]!r}")
    if not isinstance(params["crop"], (int, float)) or not 0 < params["crop"] <= 1:
        raise ConfigError(f"`crop` (fraction of the side kept) must be in (0, 1]. Received: {params['crop']!r}")
    return params
