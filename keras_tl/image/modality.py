"""The image modality plug-in: what images need that the shared core does not know.

Keras-free at import: its config checks run before the CLI imports TensorFlow; the methods that
build, feed or export a model import what they need when called.
"""

import os

import numpy as np

from keras_tl.core.contract import registry
from keras_tl.core.contract.choices import PRETRAINED
from keras_tl.core.contract.errors import ConfigError, WeightsUnavailableError
from keras_tl.core.contract.files import check_data_path
from keras_tl.core.contract.modality import Modality, ServingRequest
from keras_tl.core.utils.network import reachable
from keras_tl.image import IMAGE_EXTENSIONS, presets
from keras_tl.image.config import resolve_augment

DATA = "a folder of class folders of images, a .csv manifest (path,label[,split]) or tfds:NAME"


class ImageModality(Modality):
    name = "image"
    unit = "images"
    default_optimizer = "adam"
    default_schedule = "cosine"
    file_extensions = IMAGE_EXTENSIONS
    batch_preview = True

    def check_config(self, config, spec, source=None):
        if source is None:
            check_data_path(config.data, expected=DATA)
        if config.pooling not in ("avg", "max"):
            raise ConfigError(
                f"`pooling` for images must be 'avg' or 'max' ('cls' is for text encoders). "
                f"Received: pooling={config.pooling!r}"
            )
        size = config.image_size or spec.default_size
        if size < spec.min_size:
            raise ConfigError(
                f"`image_size` {size} is smaller than backbone {spec.name!r} allows "
                f"(minimum {spec.min_size}px). Received: image_size={size}"
            )
        resolve_augment(config.augment, config.augment_params)
        self.check_weights(spec, config.weights)

    def check_weights(self, spec, weights):
        """Raises unless `weights` can be loaded here: a readable file, or pretrained weights that are
        here, downloadable (network reachable), or in a package that says how to install it."""
        presets.check_weights(spec, weights)
        if weights != PRETRAINED:
            return
        status = registry.weights_status(spec)
        if status == registry.INSTALL:
            from keras_tl.weights import imports

            imports.locate(spec.weights_from)  # Raises with the install command.
        elif status == registry.DOWNLOAD and not reachable(presets.KERAS_WEIGHTS_HOST):
            raise WeightsUnavailableError(presets.unavailable_message(spec))
        elif status == registry.PRESET and not reachable(presets.preset_host(spec.constructor)):
            raise WeightsUnavailableError(presets.unavailable_preset_message(spec))

    def resolve_config(self, config, spec):
        return {"image_size": config.image_size or spec.default_size}

    def input_size(self, config):
        return f"{config.image_size}px"

    def load_source(self, config):
        from keras_tl.image import data

        return data.load_source(config.data)

    def build_network(self, spec, config, head):
        from keras_tl.image import augment
        from keras_tl.image.model import build_model

        in_model = None
        if config.augment_on == "model":
            params = resolve_augment(config.augment, config.augment_params)
            in_model = augment.image_layers(params, config.image_size, config.seed)
        model = build_model(
            spec,
            head=head,
            augmentation=in_model,
            weights=config.weights,
            image_size=config.image_size,
            pooling=config.pooling,
        )
        return model, None

    def prepare_weights(self, spec, weights):
        self.check_weights(spec, weights)
        if weights == PRETRAINED and spec.weights_from not in ("keras", "keras_hub"):
            # Weights a package ships: convert them (once) before the seeded work starts, so a first
            # run and a later one train identically.
            from keras_tl.image import imported

            imported.imagenet_weights(spec.weights_from)

    def import_weights(self, importer, out):
        from keras_tl.image import imported

        return imported.import_weights(importer, out)

    def build_backbone(self, spec, weights, size):
        from keras_tl.image import backbones

        preprocess, network = backbones.build(spec, weights=weights, image_size=size)
        return [preprocess], network

    def skeleton(self, spec, config):
        from keras_tl.image import backbones

        return backbones.build(spec, weights="none", image_size=config.image_size or spec.default_size)[1]

    def dataset(self, classifier, split, config, *, training=False, seed=None, cache="memory"):
        from keras_tl.image import data, export

        return data.make_dataset(
            split,
            image_size=export.image_size_of(classifier.model),
            augment=config.augment,
            augment_params=config.augment_params,
            augment_on=config.augment_on,
            cache=cache,
            **self.batching(classifier, config, training, seed),
        )

    def augmenting(self, config):
        from keras_tl.image import augment

        return not augment.is_identity(resolve_augment(config.augment, config.augment_params))

    def read_items(self, items):
        from keras_tl.image import data

        for path in items:
            reason = data.check_image_file(path) if os.path.isfile(path) else "no such file"
            if reason:
                raise ConfigError(
                    f"Cannot read image {path!r}: {reason}. Expected an image file ({', '.join(IMAGE_EXTENSIONS)})."
                )
        return list(items)

    def model_inputs(self, classifier, items):
        """uint8 images `(N, S, S, 3)` at the model's size, from arrays of any size or image files."""
        from keras_tl.core.data import Split
        from keras_tl.image import data, export

        size = export.image_size_of(classifier.model)
        if len(items) == 0:  # No item (a perfect test split has no confident errors to draw).
            return np.zeros((0, size, size, 3), np.uint8)
        split = Split(items, np.zeros(len(items), dtype=np.int64))
        ds = data.make_dataset(split, image_size=size, batch_size=64, num_classes=2, problem="binary", cache=False)
        batches = [x.numpy() for x, _ in ds]
        return np.concatenate(batches) if batches else np.zeros((0, size, size, 3), np.uint8)

    def pictures(self, classifier, items):
        return self.model_inputs(classifier, items)

    def serving_endpoints(self, classifier, info):
        from keras_tl.image import export

        return export.serving_endpoints(classifier, info.class_names)

    def serving_request(self, items):
        """Encoded image files (or their bytes) to `serving_default`, which decodes and resizes in the graph."""
        return ServingRequest("serving_default", "image_bytes", [_read_bytes(item) for item in items])

    def endpoint_arguments(self, classifier, info):
        from keras_tl.image import export

        return export.endpoint_arguments(self.model_inputs(classifier, info.check_items))

    def card(self, classifier):
        from keras_tl.image import export

        size = export.image_size_of(classifier.model)
        return {
            "input_size": size,
            "input": {
                "shape": [size, size, 3],
                "dtype": "float32 (or uint8)",
                "value_range": [0, 255],
                "channels": "RGB",
                "resize": f"whole image to {size}x{size}, bilinear without antialiasing or half-pixel "
                "centres (TensorFlow's ResizeBilinear(half_pixel_centers=False)), no crop, as MediaPipe Tasks "
                "does: how training, evaluation, predict and the SavedModel's serving_default resize",
            },
        }

    def tflite_signature(self, classifier):
        import keras

        from keras_tl.image import export

        size = export.image_size_of(classifier.model)
        return keras.InputSpec(shape=(1, size, size, 3), dtype="float32")

    def tflite_input_metadata(self, classifier, inputs, info):
        from keras_tl.core.export import tflite_metadata
        from keras_tl.image import export

        return tflite_metadata.Inputs(
            [export.tflite_input(export.image_size_of(classifier.model), quantized=info.int8_io)]
        )

    def tflite_calibration(self, classifier, items):
        return [[image[None].astype(np.float32)] for image in self.model_inputs(classifier, items)]

    def show_batch(self, classifier, dataset, path):
        """A PNG grid of one augmented training batch with its (possibly mixed) labels."""
        from keras_tl.core.evaluation import plots

        images, targets = next(iter(dataset))
        titles = []
        for row in targets.numpy():
            if row.shape[-1] == 1:
                row = np.array([1 - row[0], row[0]])
            shown = [(classifier.class_names[i], row[i]) for i in np.argsort(-row) if row[i] > 0.01][:2]
            titles.append(" + ".join(f"{n} {w:.2f}" if w < 0.99 else n for n, w in shown))
        plots.image_grid(images.numpy(), titles, path)
        return path


def _read_bytes(item):
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if not os.path.isfile(item):
        raise ConfigError(f"Cannot read image {item!r}: no such file.")
    with open(item, "rb") as f:
        return f.read()


MODALITY = ImageModality()
