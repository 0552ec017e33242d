"""Backbone registry: one dict of frozen specs, filled by explicit `register(...)` calls.

A `BackboneSpec` carries what downstream needs — default and minimum input size, preprocessing
mode, feature size and how to find block boundaries for unfreezing — so the data pipeline knows
the image size before any model exists. Looking a spec up loads no weights. Nothing outside this
module branches on a backbone's name.

Keras Applications backbones are registered below (all 40 constructors). KerasHub image presets
are looked up by handle: a built-in preset name, `kaggle://...`, `hf://...` or a local preset
directory.
"""

import fnmatch
import json
import os
import re
from dataclasses import dataclass

import keras

from keras_tl.layers import ImagePreprocessing

WEIGHT_CHOICES = ("imagenet", "none", "<path to a weights file>", "preset")
_HUB_SCHEMES = ("kaggle://", "hf://", "modelscope://")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be fetched (usually: no network). The message says what to do."""


@dataclass(frozen=True)
class BackboneSpec:
    """What keras-tl knows about a backbone before building it.

    Args:
        name: str. Registry name, e.g. "mobilenet_v2".
        constructor: str. The `keras.applications` function, or the KerasHub preset handle.
        default_size: int. Input side the pretrained weights were trained at.
        min_size: int. Smallest input side the architecture accepts.
        preprocessing: str. An `ImagePreprocessing` mode; "none" when the backbone scales itself.
        feature_dim: int. Channels of the backbone's last feature map (None if unknown before
            loading, as for KerasHub presets).
        block_pattern: str. Regex whose first group names the block a layer belongs to.
        block_marker: str. "start" if the pattern matches a block's first layers, "end" if it
            matches the layer that closes a block.
        source: str. "keras_applications" or "keras_hub".
        variant: str. "" (the constructor as is); "torchvision": the same layers with
            torchvision's conventions (symmetric padding of stride-2 convs, BatchNorm epsilon
            1e-5), so torchvision's ImageNet weights port exactly (`keras_tl.imports`); "lite":
            EfficientNet-Lite0 built from B0's config (no squeeze-excite, ReLU6).
        imagenet_from: str. Where "imagenet" weights come from: "keras" (downloaded by Keras) or
            the name of a `keras_tl.imports` converter (a package that ships them; no network).
    """

    name: str
    constructor: str
    default_size: int
    min_size: int
    preprocessing: str
    feature_dim: int | None
    block_pattern: str = ""
    block_marker: str = "start"
    source: str = "keras_applications"
    variant: str = ""
    imagenet_from: str = "keras"


_REGISTRY: dict[str, BackboneSpec] = {}


def _key(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


def register(spec):
    """Adds a spec to the registry; its name (case and `_` ignored) must be new."""
    key = _key(spec.name)
    if key in _REGISTRY:
        raise ValueError(f"Backbone {spec.name!r} is already registered.")
    _REGISTRY[key] = spec
    return spec


def is_registered(name):
    """True if `name` is a registry name (case and `_` ignored); loads nothing."""
    return isinstance(name, str) and _key(name) in _REGISTRY


def is_hub_handle(name):
    """True if `name` is a KerasHub preset handle or a local preset directory."""
    return name.startswith(_HUB_SCHEMES) or os.path.isdir(name)


def get(name):
    """Returns the spec for a registry name or a KerasHub preset handle.

    Args:
        name: str. A registry name ("efficientnet_b0", "EfficientNetB0" also works), a KerasHub
            handle ("kaggle://keras/resnetv2/keras/resnet_50_imagenet", "hf://timm/...") or a local
            KerasHub preset directory.

    Example:
    >>> keras_tl.backbones.get("mobilenet_v2").default_size
    224
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A backbone name must be a non-empty string. Received: {name!r}")
    spec = _REGISTRY.get(_key(name))
    if spec is not None:
        return spec
    if is_hub_handle(name):
        return _hub_spec(name)
    raise ValueError(
        f"Unknown backbone {name!r}. Available: {names()}; or a KerasHub preset handle "
        "(kaggle://..., hf://...) or local preset directory."
    )


def names(pattern=None):
    """Registry names, sorted; `pattern` filters them with shell wildcards (case-insensitive)."""
    all_names = sorted(spec.name for spec in _REGISTRY.values())
    if pattern:
        pattern = pattern.lower() if any(c in pattern for c in "*?[") else f"*{pattern.lower()}*"
        all_names = [n for n in all_names if fnmatch.fnmatch(n, pattern)]
    return all_names


def _hub_spec(handle):
    size = 224
    converter_path = os.path.join(handle, "image_converter.json")  # Local presets only.
    if os.path.isfile(converter_path):
        with open(converter_path, encoding="utf-8") as f:
            image_size = json.load(f).get("config", {}).get("image_size")
        if image_size:
            size = int(image_size[0])
    return BackboneSpec(
        name=handle,
        constructor=handle,
        default_size=size,
        min_size=32,
        preprocessing="none",
        feature_dim=None,
        source="keras_hub",
    )


def build(spec, weights="imagenet", image_size=None):
    """Builds the backbone (without top) and the layer that preprocesses raw pixels for it.

    Args:
        spec: BackboneSpec. From `get(...)`.
        weights: str or None. "imagenet", "none"/None, a local weights file
            (`.weights.h5` or a Keras Applications `.h5`), or for KerasHub "preset"/"none".
        image_size: int. Input side; defaults to `spec.default_size`.

    Returns:
        A tuple `(preprocessing_layer, backbone_model)`.
    """
    size = image_size or spec.default_size
    if size < spec.min_size:
        raise ValueError(
            f"Backbone {spec.name!r} needs images of at least {spec.min_size}px. "
            f"Received: image_size={size}"
        )
    weights = "none" if weights is None else weights
    if spec.source == "keras_hub":
        return _build_hub(spec, weights)
    kwargs = dict(include_top=False, input_shape=(size, size, 3))
    if weights == "none":
        backbone = construct(spec, **kwargs)
    elif weights == "imagenet" and spec.imagenet_from != "keras":
        from keras_tl import imports  # Converts weights a package ships; imports this module.

        backbone = construct(spec, **kwargs)
        backbone.load_weights(imports.imagenet_weights(spec.imagenet_from))
    elif weights == "imagenet":
        backbone = _download_guard(spec, lambda: construct(spec, weights="imagenet", **kwargs))
    elif os.path.isfile(weights):
        backbone = construct(spec, **kwargs)
        backbone.load_weights(weights)
    else:
        raise ValueError(
            f"`weights` for {spec.name!r} must be one of {list(WEIGHT_CHOICES[:3])}; "
            f"no file exists at {weights!r}."
        )
    backbone.name = "backbone"
    return ImagePreprocessing(spec.preprocessing, name="preprocessing"), backbone


def construct(spec, weights=None, **kwargs):
    """Calls the spec's `keras.applications` constructor and applies its variant.

    Args:
        spec: BackboneSpec.
        weights: None or "imagenet" (Keras' download; variants take None only).
        **kwargs: `include_top`, `input_shape`, `classes`, ... as the constructor takes them.
    """
    model = getattr(keras.applications, spec.constructor)(weights=weights, **kwargs)
    if spec.variant == "torchvision":
        model = keras.Model.from_config(_torchvision_padding(model.get_config()))
    elif spec.variant == "lite":
        model = keras.Model.from_config(_efficientnet_lite(model.get_config()))
    return model


def _torchvision_padding(config):
    """PyTorch pads every 3x3 conv by 1 on all sides; Keras pads stride-2 ones (0, 1) ("same" or
    ZeroPadding2D + "valid"). Makes every stride-2 conv symmetric and BatchNorm epsilon 1e-5."""
    layers = []
    for layer in config["layers"]:
        cfg = layer["config"]
        if layer["class_name"] == "ZeroPadding2D":
            cfg["padding"] = ((1, 1), (1, 1))
        elif layer["class_name"] == "BatchNormalization":
            cfg["epsilon"] = 1e-5
        elif layer["class_name"] in ("Conv2D", "DepthwiseConv2D") and cfg["padding"] == "same" \
                and tuple(cfg["strides"]) != (1, 1):
            pad_name = f"{layer['name']}_pad"
            node = layer["inbound_nodes"][0]
            layers.append({
                "module": "keras.layers", "class_name": "ZeroPadding2D", "name": pad_name,
                "config": {"name": pad_name, "padding": ((1, 1), (1, 1)), "data_format": "channels_last",
                           "trainable": True, "dtype": cfg["dtype"]},
                "registered_name": None,
                "inbound_nodes": [node],
                "build_config": layer.get("build_config"),
            })
            tensor = dict(node["args"][0]["config"])
            tensor["keras_history"] = [pad_name, 0, 0]
            layer["inbound_nodes"] = [{"args": ({"class_name": "__keras_tensor__", "config": tensor},),
                                       "kwargs": node.get("kwargs", {})}]
            cfg["padding"] = "valid"
        layers.append(layer)
    config["layers"] = layers
    return config


def _efficientnet_lite(config):
    """EfficientNet-B0's config -> EfficientNet-Lite0's: no squeeze-excite, ReLU6, no built-in
    rescaling/normalization (keras-tl's preprocessing layer does it). Stem, head, blocks and the
    TF-"same" padding are B0's already."""
    layers = config["layers"]
    input_name = layers[0]["name"]
    removed = {}  # layer name -> keras_history of the tensor that replaces its output
    for layer in layers:
        name = layer["name"]
        if layer["class_name"] in ("Rescaling", "Normalization"):
            removed[name] = [input_name, 0, 0]
        elif name.endswith("se_excite"):
            removed[name] = layer["inbound_nodes"][0]["args"][0][0]["config"]["keras_history"]
        elif "_se_" in name:
            removed[name] = None  # Only feeds the excite layer.
        elif layer["class_name"] == "Activation":
            layer["config"]["activation"] = "relu6"

    def rewire(value):
        if isinstance(value, dict):
            history = value.get("keras_history")
            if history and history[0] in removed:
                value["keras_history"] = list(removed[history[0]])
            for item in value.values():
                rewire(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                rewire(item)

    config["layers"] = [layer for layer in layers if layer["name"] not in removed]
    rewire(config["layers"])
    return config


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
            f"either place it in {_keras_cache()} or pass its "
            "path: weights='/path/to/file.h5' (use the no-top file). "
            "Use weights='none' to train from scratch."
        ) from error


def _keras_cache():
    """Where `keras.utils.get_file` caches Keras Applications weights."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "models") + os.sep


def _build_hub(spec, weights):
    if weights not in ("preset", "imagenet", "none"):
        raise ValueError(
            f"`weights` for a KerasHub preset must be 'preset' (the preset's own weights) or "
            f"'none'. Received: weights={weights!r}"
        )
    import keras_hub  # Optional at import time of keras_tl: only needed for presets.

    load = weights != "none"
    try:
        backbone = keras_hub.models.Backbone.from_preset(spec.constructor, load_weights=load)
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


def block_starts(backbone, spec):
    """Ordered `(block_name, first_layer_index)` pairs of the backbone's blocks.

    Uses the spec's `block_pattern`; for `block_marker="end"` a block starts right after the layer
    that closed the previous one. Layers before the first block (the stem) belong to no block.
    """
    if not spec.block_pattern:
        return []
    pattern = re.compile(spec.block_pattern)
    starts = []
    seen = set()
    for index, layer in enumerate(backbone.layers):
        match = pattern.search(layer.name)
        if not match:
            continue
        block = match.group(1)
        if spec.block_marker == "start" and block not in seen:
            starts.append((block, index))
        elif spec.block_marker == "end" and index + 1 < len(backbone.layers):
            starts.append((f"after_{block}", index + 1))
        seen.add(block)
    return starts


def _apps(names_, constructor_of, size_of, min_size, preprocessing, dims, pattern, marker="start"):
    for name, dim in zip(names_, dims):
        register(
            BackboneSpec(
                name=name,
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
    register(BackboneSpec(name="mobilenet_v2_torchvision", constructor="MobileNetV2", default_size=224,
                          min_size=32, preprocessing="torch", feature_dim=1280,
                          block_pattern=r"^(block_\d+)_", variant="torchvision",
                          imagenet_from="torchvision_mobilenet_v2"))
    register(BackboneSpec(name="efficientnet_lite0", constructor="EfficientNetB0", default_size=224,
                          min_size=32, preprocessing="lite", feature_dim=1280,
                          block_pattern=r"^(block\d+)[a-z]_", variant="lite",
                          imagenet_from="efficientnet_lite0"))
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
