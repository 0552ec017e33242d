"""Image backbones: the registry entries of all 40 Keras Applications, KerasHub image presets, and
how to build one with the layer that preprocesses raw pixels for it.

Keras Applications backbones are registered below. KerasHub image presets are resolved from a
handle: "kaggle://...", "hf://...", "modelscope://..." or a local preset directory (one without
a tokenizer: those are text encoders). Where "imagenet" weights come from is a tag on the spec
(`weights_from`): Keras' download, or a `keras_tl.weights` importer of a package that ships them.
"""

import json
import os
import re


from keras_tl.core.errors import WeightsUnavailableError
from keras_tl.core.paths import keras_models_cache
from keras_tl.core.registry import BackboneSpec, register
from keras_tl.image.applications import construct
from keras_tl.image.layers import ImagePreprocessing

WEIGHT_CHOICES = ("imagenet", "none", "<path to a weights file>", "preset")
HUB_SCHEMES = ("kaggle://", "hf://", "modelscope://")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model", "merges.txt")


def resolve(name, explicit=False):
    """The spec of a KerasHub image preset handle or local preset directory; None for other names.

    A directory holding tokenizer files is a text encoder's, not an image preset.
    """
    if os.path.isdir(name):
        if any(os.path.isfile(os.path.join(name, f)) for f in TOKENIZER_FILES):
            return None
        return _hub_spec(name)
    if name.startswith(HUB_SCHEMES):
        return _hub_spec(name)
    return None


def _hub_spec(handle):
    size = 224
    converter_path = os.path.join(handle, "image_converter.json")  # Local presets only.
    if os.path.isfile(converter_path):
        with open(converter_path, encoding="utf-8") as f:
            image_size = json.load(f).get("config", {}).get("image_size")
        if image_size:
            size = int(image_size[0])
    return BackboneSpec(name=handle, modality="image", constructor=handle, default_size=size, min_size=32,
                        preprocessing="none", source="keras_hub", weights_from="keras_hub")


def check_weights(spec, weights):
    """Raises `ValueError` unless `weights` is something `spec` can load; loads nothing."""
    if spec.source == "keras_hub":
        allowed = ("preset", "imagenet", "none")
        if weights not in allowed:
            raise ValueError(f"`weights` for the KerasHub preset {spec.name!r} must be 'preset' (the preset's "
                             f"own weights) or 'none'. Received: weights={weights!r}")
        return
    if weights == "preset":
        raise ValueError(f"weights='preset' is for KerasHub presets; {spec.name!r} is a Keras Applications "
                         "backbone. Expected 'imagenet', 'none' or a weights file.")
    if weights not in ("imagenet", "none") and not os.path.isfile(weights):
        raise ValueError(f"`weights` for {spec.name!r} must be 'imagenet', 'none' or an existing weights file; "
                         f"no file exists at {weights!r}. Received: weights={weights!r}")


def build(spec, weights="imagenet", image_size=None):
    """Builds the backbone (without top) and the layer that preprocesses raw pixels for it.

    Args:
        spec: BackboneSpec. From `keras_tl.core.registry.get(...)`.
        weights: str or None. "imagenet", "none"/None, a local weights file
            (`.weights.h5` or a Keras Applications `.h5`), or for KerasHub "preset"/"none".
        image_size: int. Input side; defaults to `spec.default_size`.

    Returns:
        A tuple `(preprocessing_layer, backbone_model)`.

    Example:
    >>> spec = keras_tl.core.registry.get("mobilenet_v2")
    >>> preprocess, backbone = keras_tl.image.backbones.build(spec, weights="none", image_size=64)
    """
    size = image_size or spec.default_size
    if size < spec.min_size:
        raise ValueError(
            f"Backbone {spec.name!r} needs images of at least {spec.min_size}px. "
            f"Received: image_size={size}"
        )
    weights = "none" if weights is None else weights
    check_weights(spec, weights)
    if spec.source == "keras_hub":
        return _build_hub(spec, weights)
    kwargs = dict(include_top=False, input_shape=(size, size, 3))
    if weights == "none":
        backbone = construct(spec, **kwargs)
    elif weights == "imagenet" and spec.weights_from != "keras":
        from keras_tl.image import imported  # Converts weights a package ships (once, cached).

        backbone = construct(spec, **kwargs)
        backbone.load_weights(imported.imagenet_weights(spec.weights_from))
    elif weights == "imagenet":
        backbone = _download_guard(spec, lambda: construct(spec, weights="imagenet", **kwargs))
    else:
        backbone = construct(spec, **kwargs)
        backbone.load_weights(weights)
    backbone.name = "backbone"
    return ImagePreprocessing(spec.preprocessing, name="preprocessing"), backbone


def _download_guard(spec, make):
    try:
        return make()
    except Exception as error:  # keras.utils.get_file raises a bare Exception on URL failures.
        if "URL fetch failure" not in str(error):
            raise
        url = re.search(r"https?://\S+?(?=:? |$)", str(error))
        raise WeightsUnavailableError(
            f"Could not download the ImageNet weights of {spec.name!r} (no network?). "
            f"On a machine with internet, fetch {url.group(0) if url else 'the weights file'} and "
            f"either place it in {keras_models_cache()} or pass its "
            "path: weights='/path/to/file.h5' (use the no-top file). "
            "Use weights='none' to train from scratch."
        ) from error


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


def _apps(names_, constructor_of, size_of, min_size, preprocessing, dims, pattern, marker="start"):
    for name, dim in zip(names_, dims):
        register(
            BackboneSpec(
                name=name,
                modality="image",
                constructor=constructor_of(name),
                default_size=size_of(name),
                min_size=min_size,
                preprocessing=preprocessing,
                feature_dim=dim,
                block_pattern=pattern,
                block_marker=marker,
            )
        )


def _register_keras_applications():
    fixed = lambda size: (lambda name: size)  # noqa: E731
    _apps(["vgg16", "vgg19"], lambda n: n.upper(), fixed(224), 32, "caffe", [512, 512],
          r"^(block\d+)_")
    _apps(["resnet50", "resnet101", "resnet152"], lambda n: "ResNet" + n[6:], fixed(224), 32,
          "caffe", [2048] * 3, r"^(conv\d)_")
    _apps(["resnet50_v2", "resnet101_v2", "resnet152_v2"],
          lambda n: "ResNet" + n[6:].replace("_v2", "V2"), fixed(224), 32, "tf", [2048] * 3,
          r"^(conv\d)_")
    _apps(["inception_v3"], lambda n: "InceptionV3", fixed(299), 75, "tf", [2048],
          r"^(mixed\d+)$", "end")
    _apps(["inception_resnet_v2"], lambda n: "InceptionResNetV2", fixed(299), 75, "tf", [1536],
          r"^(block\d+_\d+|mixed_\d[a-z])(?:_ac)?$", "end")
    _apps(["xception"], lambda n: "Xception", fixed(299), 71, "tf", [2048], r"^(block\d+)_")
    _apps(["mobilenet"], lambda n: "MobileNet", fixed(224), 32, "tf", [1024],
          r"^conv_(?:dw|pw|pad)_(\d+)")
    _apps(["mobilenet_v2"], lambda n: "MobileNetV2", fixed(224), 32, "tf", [1280],
          r"^(block_\d+)_")
    register(BackboneSpec(name="mobilenet_v2_torchvision", modality="image", constructor="MobileNetV2", default_size=224,
                          min_size=32, preprocessing="torch", feature_dim=1280,
                          block_pattern=r"^(block_\d+)_", variant="torchvision",
                          weights_from="torchvision_mobilenet_v2"))
    register(BackboneSpec(name="efficientnet_lite0", modality="image", constructor="EfficientNetB0", default_size=224,
                          min_size=32, preprocessing="lite", feature_dim=1280,
                          block_pattern=r"^(block\d+)[a-z]_", variant="lite",
                          weights_from="efficientnet_lite0"))
    _apps(["mobilenet_v3_small", "mobilenet_v3_large"],
          lambda n: "MobileNetV3" + n.split("_")[-1].title(), fixed(224), 32, "none", [576, 960],
          r"^(expanded_conv(?:_\d+)?)_")
    _apps(["densenet121", "densenet169", "densenet201"], lambda n: "DenseNet" + n[8:], fixed(224),
          32, "torch", [1024, 1664, 1920], r"^(conv\d)_block")
    _apps(["nasnet_mobile", "nasnet_large"], lambda n: "NASNet" + n.split("_")[1].title(),
          lambda n: 224 if n.endswith("mobile") else 331, 32, "tf", [1056, 4032],
          r"^(normal_concat_\d+|reduction_concat_reduce_cell_\d+)$", "end")
    b_sizes = dict(zip("01234567", (224, 240, 260, 300, 380, 456, 528, 600)))
    _apps([f"efficientnet_b{i}" for i in range(8)], lambda n: "EfficientNetB" + n[-1],
          lambda n: b_sizes[n[-1]], 32, "none",
          [1280, 1280, 1408, 1536, 1792, 2048, 2304, 2560], r"^(block\d+)[a-z]_")
    v2_sizes = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "s": 384, "m": 480, "l": 480}
    _apps([f"efficientnet_v2_{v}" for v in v2_sizes], lambda n: "EfficientNetV2" + n[16:].upper(),
          lambda n: v2_sizes[n[16:]], 32, "none", [1280, 1280, 1408, 1536, 1280, 1280, 1280],
          r"^(block\d+)[a-z]_")
    _apps([f"convnext_{v}" for v in ("tiny", "small", "base", "large", "xlarge")],
          lambda n: "ConvNeXt" + n[9:].title().replace("Xl", "XL"), fixed(224), 32, "none",
          [768, 768, 1024, 1536, 2048], r"_(stage_\d+)_")


_register_keras_applications()
