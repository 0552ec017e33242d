"""Keras Applications constructors and the variants keras-tl builds from them.

"torchvision": the same layers with torchvision's conventions (symmetric padding of stride-2 convs,
BatchNorm epsilon 1e-5), so torchvision's ImageNet weights port exactly (`keras_tl.weights`);
"lite": EfficientNet-Lite0 built from B0's config (no squeeze-excite, ReLU6). Knows nothing of the
registry: a spec is passed in.
"""

import keras


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
        elif (
            layer["class_name"] in ("Conv2D", "DepthwiseConv2D")
            and cfg["padding"] == "same"
            and tuple(cfg["strides"]) != (1, 1)
        ):
            pad_name = f"{layer['name']}_pad"
            node = layer["inbound_nodes"][0]
            layers.append(
                {
                    "module": "keras.layers",
                    "class_name": "ZeroPadding2D",
                    "name": pad_name,
                    "config": {
                        "name": pad_name,
                        "padding": ((1, 1), (1, 1)),
                        "data_format": "channels_last",
                        "trainable": True,
                        "dtype": cfg["dtype"],
                    },
                    "registered_name": None,
                    "inbound_nodes": [node],
                    "build_config": layer.get("build_config"),
                }
            )
            tensor = dict(node["args"][0]["config"])
            tensor["keras_history"] = [pad_name, 0, 0]
            layer["inbound_nodes"] = [
                {"args": ({"class_name": "__keras_tensor__", "config": tensor},), "kwargs": node.get("kwargs", {})}
            ]
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
