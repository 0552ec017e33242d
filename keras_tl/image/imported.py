"""Imported image backbones: build the network for a `keras_tl.weights` importer and fill it in.

The weights side (`keras_tl.weights.imports`) reads checkpoints and maps tensors; this module builds
the matching image network from the registry, caches converted weights in `$KERAS_HOME/keras_tl/`
(so `weights="pretrained"` on such a backbone works offline once the package is installed) and offers
the imported network with its ImageNet head.
"""

import os

import keras

from keras_tl.core.contract import registry
from keras_tl.core.contract.errors import WeightsError
from keras_tl.core.utils.log import log
from keras_tl.core.utils.paths import keras_tl_cache
from keras_tl.image.applications import construct
from keras_tl.image.layers import ImagePreprocessing
from keras_tl.weights.imports import convert_into, convert_to_file, get, names  # noqa: F401  (names: the CLI's list)


def classifier(name, image_size=224):
    """The imported backbone with its ImageNet head: raw RGB images in [0, 255] -> 1,000 probabilities.

    Example:
    >>> model = keras_tl.image.imported.classifier("torchvision_mobilenet_v2")
    >>> model.predict(images).argmax(-1)  # ImageNet class indices
    """
    importer = get(name)
    if not importer.imagenet_head:
        raise WeightsError(f"{name!r} has no ImageNet classifier ({importer.note}); use import_weights().")
    spec = registry.get(importer.backbone)
    network = construct(
        spec, include_top=True, input_shape=(image_size, image_size, 3), classes=1000, classifier_activation="softmax"
    )
    convert_into(name, network)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    outputs = network(ImagePreprocessing(spec.preprocessing, name="preprocessing")(inputs))
    return keras.Model(inputs, outputs, name=f"{spec.name}_imagenet")


def import_weights(name, out):
    """Converts an importer's checkpoint into a backbone weights file (no ImageNet head).

    Args:
        name: str. An importer from `names()`.
        out: str. The `.weights.h5` file to write (written to a temporary file, then renamed).

    Returns:
        `out`, loadable with `keras_tl.image.model.build_model(importer.backbone, weights=out)`.
    """
    importer = get(name)
    if not out.endswith(".weights.h5"):
        raise WeightsError(f"The output must be a `.weights.h5` file. Received: {out!r}")
    spec = registry.get(importer.backbone)
    network = construct(spec, include_top=False, input_shape=(spec.default_size, spec.default_size, 3))
    convert_to_file(name, network, out)
    log.info(
        f"wrote {out}: {importer.note} weights of {importer.backbone!r} from {importer.package} ({importer.licence})"
    )
    return out


def imagenet_weights(name):
    """The cached converted weights of an importer (converted on first use). Path to the file."""
    importer = get(name)
    path = keras_tl_cache(f"{importer.backbone}_imagenet.weights.h5")
    if not os.path.isfile(path):
        import_weights(name, path)
    return path
