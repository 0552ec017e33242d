"""The image modality plug-in: what images need that the shared core does not know."""

import os

import keras
import numpy as np

from keras_tl.core import plots, tflite_metadata
from keras_tl.core.config import resolve_augment
from keras_tl.core.data import Split
from keras_tl.core.modality import Modality
from keras_tl.core.task import Task
from keras_tl.image import augment, backbones, data, export
from keras_tl.image.model import build_model


class ImageModality(Modality):
    name = "image"
    unit = "images"
    default_optimizer = "adam"
    default_schedule = "cosine"

    def check_config(self, config, spec, source=None):
        if config.pooling not in ("avg", "max"):
            raise ValueError(f"`pooling` for images must be 'avg' or 'max' ('cls' is for text encoders). "
                             f"Received: pooling={config.pooling!r}")
        size = config.image_size or spec.default_size
        if size < spec.min_size:
            raise ValueError(f"`image_size` {size} is smaller than backbone {spec.name!r} allows "
                             f"(minimum {spec.min_size}px).")
        resolve_augment(config.augment, config.augment_params)
        self.prepare_weights(spec, config.weights)
        if source is None:
            data.check_data_path(config.data)

    def resolve_config(self, config, spec):
        return {"image_size": config.image_size or spec.default_size}

    def input_size(self, config):
        return f"{config.image_size}px"

    def is_source(self, source):
        return isinstance(source, data.ImageSource)

    def load_source(self, config):
        return data.load_source(config.data)

    def build_task(self, spec, config, num_classes, class_names=(), head_kinds=None):
        in_model = None
        if config.augment_on == "model":
            params = resolve_augment(config.augment, config.augment_params)
            in_model = augment.image_layers(params, config.image_size, config.seed)
        model = build_model(spec, num_classes=num_classes, weights=config.weights, image_size=config.image_size,
                            task=config.task, pooling=config.pooling, dense_units=config.dense_units,
                            dropout=config.dropout, augmentation=in_model, class_names=list(class_names), head_kinds=head_kinds)
        return Task(model, self, spec, None, list(class_names), config)

    def prepare_weights(self, spec, weights):
        backbones.check_weights(spec, weights)
        if weights == "imagenet" and spec.weights_from not in ("keras", "keras_hub"):
            # Weights a package ships: fail now if it is missing, and convert them (once) before the
            # seeded work starts, so a first run and a later one train identically.
            from keras_tl.image import imported

            imported.imagenet_weights(spec.weights_from)

    def build_backbone(self, spec, weights, size):
        preprocess, network = backbones.build(spec, weights=weights, image_size=size)
        return [preprocess], network

    def skeleton(self, spec, config):
        return backbones.build(spec, weights="none", image_size=config.image_size or spec.default_size)[1]

    def dataset(self, task, split, config, *, training=False, seed=None, cache="memory"):
        return data.make_dataset(
            split, image_size=export.image_size_of(task.model), batch_size=config.batch_size,
            num_classes=len(task.class_names), task=task.kind, training=training,
            augment=config.augment, augment_params=config.augment_params, augment_on=config.augment_on,
            oversample=training and config.class_weight == "oversample", cache=cache,
            seed=config.seed if seed is None else seed)

    def augmenting(self, config):
        return not augment.is_identity(resolve_augment(config.augment, config.augment_params))

    def read_items(self, items):
        for path in items:
            reason = data.check_image_file(path) if os.path.isfile(path) else "no such file"
            if reason:
                raise ValueError(f"Cannot read image {path!r}: {reason}. Expected an image file "
                                 f"({', '.join(data.IMAGE_EXTENSIONS)}).")
        return list(items)

    def model_inputs(self, task, items):
        """uint8 images `(N, S, S, 3)` at the model's size, from arrays of any size or image files."""
        size = export.image_size_of(task.model)
        if len(items) == 0:  # No item (a perfect test split has no confident errors to draw).
            return np.zeros((0, size, size, 3), np.uint8)
        split = Split(items, np.zeros(len(items), dtype=np.int64))
        ds = data.make_dataset(split, image_size=size, batch_size=64, num_classes=2, task="binary", cache=False)
        batches = [x.numpy() for x, _ in ds]
        return np.concatenate(batches) if batches else np.zeros((0, size, size, 3), np.uint8)

    def confident_errors(self, task, split, probabilities, path_stem):
        wrong = np.flatnonzero(probabilities.argmax(-1) != split.labels)
        worst = wrong[np.argsort(-probabilities[wrong].max(-1))][:16]
        images = self.model_inputs(task, split.subset(worst).items)
        path = f"{path_stem}.png"
        plots.confident_errors(images, split.labels[worst], probabilities[worst], task.class_names, path)
        return os.path.basename(path)

    def serving_endpoints(self, task, info):
        return export.serving_endpoints(task, info.class_names)

    def endpoint_arguments(self, task, info):
        return export.endpoint_arguments(self.model_inputs(task, info.check_items))

    def card(self, task):
        return {"input_size": export.image_size_of(task.model)}

    def tflite_signature(self, task):
        size = export.image_size_of(task.model)
        return keras.InputSpec(shape=(1, size, size, 3), dtype="float32")

    def tflite_input_metadata(self, task, inputs, info):
        return tflite_metadata.Inputs([tflite_metadata.image_input(export.image_size_of(task.model),
                                                                   quantized=info.int8_io)])

    def tflite_calibration(self, task, items):
        return [[image[None].astype(np.float32)] for image in self.model_inputs(task, items)]

    def show_batch(self, task, dataset, path):
        """A PNG grid of one augmented training batch with its (possibly mixed) labels."""
        images, targets = next(iter(dataset))
        titles = []
        for row in targets.numpy():
            if row.shape[-1] == 1:
                row = np.array([1 - row[0], row[0]])
            shown = [(task.class_names[i], row[i]) for i in np.argsort(-row) if row[i] > 0.01][:2]
            titles.append(" + ".join(f"{n} {w:.2f}" if w < 0.99 else n for n, w in shown))
        plots.image_grid(images.numpy(), titles, path)
        return path


MODALITY = ImageModality()
