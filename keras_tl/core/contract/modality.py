"""The modality plug-in contract: what an image, text or audio folder fills in, and nothing more.

The shared machinery (`keras_tl.workflow`, `keras_tl.workflow.rundir`, `keras_tl.core.export`) never
branches on a modality's name: it asks the modality object. A modality is the package
`keras_tl.<name>` (listed once in `keras_tl.core.contract.config.MODALITIES`) whose `modality` module defines
`MODALITY`, an instance of a `Modality` subclass. See docs/ARCHITECTURE.md, "How to add a modality".
"""

import abc
import importlib
from typing import NamedTuple

import numpy as np

from keras_tl.core.contract.choices import MODALITIES
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.utils import quiet


class ServingRequest(NamedTuple):
    """What a TF Serving request carries for raw items: the signature, its one input's name, and one
    value per item (`bytes`, sent base64 over REST, or `str`)."""

    signature: str
    input: str
    values: list


class Modality(abc.ABC):
    """Base class of the plug-ins. The abstract methods are what the shared code calls on every
    modality: a plug-in that lacks one cannot be instantiated, so it fails when its module is
    imported (`MODALITY = ...()`), not mid-run. The others have defaults a modality may override.

    Attributes:
        name: str. "image", "text", ...
        unit: str. What one example is called in messages ("images", "texts").
        default_optimizer, default_schedule: str. What "auto" resolves to for this modality.
        default_fine_tune_lr: float. What `fine_tune_lr: auto` resolves to.
        tflite_quantizations: tuple of str. The TFLite quantization modes its export supports.
        batchnorm: bool. Its backbones normalize with BatchNorm (AdaBN can adapt them).
        file_extensions: tuple of str. The file names its items have (what `predict --server` tells
            them by); empty when items are not files.
        batch_preview: bool. It draws training batches (`show_batch`): images, spectrograms.
    """

    name = ""
    unit = "examples"
    default_optimizer = "adam"
    default_schedule = "cosine"
    default_fine_tune_lr = 1e-5  # Phase 2's rate for `fine_tune_lr: auto` (the Keras guide's, for images).
    tflite_quantizations = ("none", "float16", "dynamic", "int8")
    batchnorm = True
    file_extensions = ()
    batch_preview = False

    # ---- config and data (before any work)
    @abc.abstractmethod
    def check_config(self, config, spec, source=None):
        """Raises `ValueError` for anything this modality cannot run; called before any file is written."""
        raise NotImplementedError

    def resolve_config(self, config, spec):
        """The config fields this modality makes concrete (dict), e.g. the image size."""
        return {}

    @abc.abstractmethod
    def input_size(self, config):
        """The input size for reports and model cards ("224px", "128 tokens", "1 s windows at 16000 Hz")."""

    def load_source(self, config):
        """The labelled source named by `config.data`."""
        raise NotImplementedError

    # ---- model and pipelines
    @abc.abstractmethod
    def build_network(self, spec, config, head):
        """`(keras.Model, host-side preprocessor or None)`: `spec`'s backbone under `config` with
        `head` (a `keras_tl.core.models.heads.HeadSpec`) on its pooled features, inside the caller's
        precision/distribution scope. `keras_tl.core.models.classifier.Classifier.build` wraps it in a Classifier."""
        raise NotImplementedError

    @abc.abstractmethod
    def skeleton(self, spec, config):
        """The backbone's architecture with random weights (to check unfreeze policies early)."""
        raise NotImplementedError

    # ---- backbones another modality may reuse (audio draws spectrograms for ImageNet CNNs)
    def prepare_weights(self, spec, weights):
        """Heavy work on the weights before any seeded work (converting those a package ships, once); the
        checks that need none are `check_config`'s. Nothing by default."""
        return None

    def import_weights(self, importer, out):
        """Converts a `keras_tl.weights` importer's checkpoint into a backbone `.weights.h5` file at `out`."""
        raise ConfigError(f"The {self.name} modality has no weight importers. Received: {importer!r}")

    def build_backbone(self, spec, weights, size):
        """`(layers that turn this modality's raw input into what the backbone reads, backbone model)`."""
        raise NotImplementedError(f"The {self.name} modality does not lend its backbones.")

    @abc.abstractmethod
    def dataset(self, classifier, split, config, *, training=False, seed=None, cache="memory"):
        """A tf.data pipeline of `(inputs, targets)` batches for one split."""
        raise NotImplementedError

    def batching(self, classifier, config, training=False, seed=None):
        """The keyword arguments every modality's tf.data pipeline takes from a run: batch size, the
        classifier's classes and problem, and the training split's shuffling seed and oversampling."""
        return {
            "batch_size": config.batch_size,
            "num_classes": len(classifier.class_names),
            "problem": classifier.problem,
            "training": training,
            "oversample": training and config.balance == "oversample",
            "seed": config.seed if seed is None else seed,
        }

    def feature_pass(self, classifier, split, config):
        """`(order, dataset)` for one pass of frozen features over `split` (`rank`, `domain_shift`).

        The dataset yields `split.subset(order)`'s batches, unshuffled and unaugmented; a modality
        may reorder the split so the pass costs less (text: by length, each batch trimmed to its
        longest row). Defaults to the split's own order and `dataset`.
        """
        return np.arange(len(split.labels)), self.dataset(classifier, split, config, cache="none")

    def augmenting(self, config):
        """True if the config augments training examples (the feature cache then needs views)."""
        return False

    # ---- raw items (predict, evaluation, export checks)
    def read_items(self, items):
        """Validates raw items from a user (image files, texts); raises `ValueError` naming the bad one."""
        return list(items)

    @abc.abstractmethod
    def model_inputs(self, classifier, items):
        """Raw items (or a split's items) -> what `classifier.model` takes, as arrays."""
        raise NotImplementedError

    def item_windows(self, classifier, items):
        """`(model inputs, owners)`: `owners[i]` is the item that input row `i` comes from, or None when
        each item is one row. A modality that cuts an item into several rows (audio windows) returns
        owners, and `Classifier.predict` averages the rows' probabilities per item."""
        return self.model_inputs(classifier, items), None

    def row_labels(self, classifier, split):
        """The label of every row the model trains on (what balanced class weights count): the split's
        labels, or (a modality that cuts items into windows) each item's label once per window."""
        return np.asarray(split.labels)

    def predict_split(self, classifier, split, config, dataset=None):
        """The model's outputs for each item of a split, as one array (`dataset`: the split's pipeline, if built)."""
        return classifier.joined(
            classifier.model.predict(
                dataset if dataset is not None else self.dataset(classifier, split, config, cache="none"),
                verbose=quiet.predict_verbose(),
            )
        )

    def confident_errors(self, classifier, split, probabilities, path_stem):
        """For a modality without `pictures` (text): writes the most confidently wrong test examples in
        its own form; returns the file name written."""
        raise NotImplementedError

    def pictures(self, classifier, items):
        """uint8 images `(N, H, W, 3)` that show `items` as the model sees them (the images themselves,
        spectrograms): the run draws its most confidently wrong test examples with them. None: the
        modality has no pictures and writes them with `confident_errors`."""
        return None

    def show_batch(self, classifier, dataset, path):
        """Writes a PNG of one (augmented) training batch of `dataset` with its labels; returns `path`.
        Only for a modality with `batch_preview`."""
        raise ConfigError(f"The {self.name} modality has no training batches to draw.")

    # ---- host-side preprocessing kept in a run directory
    def save_preprocessor(self, classifier, directory):
        """Writes the classifier's host-side preprocessor into `directory` (nothing if it has none)."""
        return None

    def load_preprocessor(self, directory):
        """The host-side preprocessor a run directory holds, or None."""
        return None

    # ---- export (see keras_tl.core.export)
    @abc.abstractmethod
    def serving_endpoints(self, classifier, info):
        """`{signature name: (tf.function, description of its input)}` for the SavedModel;
        "serving_default" first."""
        raise NotImplementedError

    @abc.abstractmethod
    def serving_request(self, items):
        """A `ServingRequest` for raw items (files, bytes, texts) to a SavedModel keras-tl exported."""
        raise NotImplementedError

    def endpoint_arguments(self, classifier, info):
        """`{signature name: {argument: tensor}}` that call each endpoint on `info.check_items`."""
        raise NotImplementedError

    def endpoint_checks(self, classifier, info):
        """`{signature name: (arguments, Keras probabilities they must reproduce)}` for the SavedModel check."""
        reference = classifier.predict(info.check_items)
        return {name: (arguments, reference) for name, arguments in self.endpoint_arguments(classifier, info).items()}

    @abc.abstractmethod
    def tflite_signature(self, classifier):
        """The `input_signature` of the TFLite model (batch 1)."""
        raise NotImplementedError

    @abc.abstractmethod
    def tflite_input_metadata(self, classifier, inputs, info):
        """`keras_tl.core.export.tflite_metadata.Inputs`: the metadata of each model input, in the order of
        `inputs` (the interpreter's input details), and any tokenizer unit and files
        (`tflite_metadata.named_inputs` names and describes them when nothing more fits)."""
        raise NotImplementedError

    def tflite_calibration(self, classifier, items):
        """int8 calibration inputs: a list of `[input]` lists, from training items."""
        raise ConfigError(
            f"int8 TFLite export needs calibration data, which the {self.name} modality does "
            f"not provide. Supported: {list(self.tflite_quantizations)}"
        )

    def card(self, classifier):
        """Model-card fields that describe the input (image size, sequence length)."""
        return {}

    def write_export_assets(self, classifier, directory):
        """Files an app needs beside an exported model (a vocabulary); labels.txt is written for all."""
        return None


def get(name):
    """The plug-in object of modality `name` (imports `keras_tl.<name>.modality`)."""
    if name not in MODALITIES:
        raise ConfigError(f"`modality` must be one of {list(MODALITIES)}. Received: modality={name!r}")
    return importlib.import_module(f"keras_tl.{name}.modality").MODALITY


def source_modality(source):
    """The modality whose items a source holds (`keras_tl.core.data.Source.modality`)."""
    name = getattr(source, "modality", None)
    if name not in MODALITIES:
        raise ConfigError(
            f"A source must be a keras_tl.core.data.Source of one of {list(MODALITIES)}. Received: "
            f"{type(source).__name__} (modality={name!r})"
        )
    return name


def of(config, source=None):
    """The modality of a run: `config.modality`, else the source's, else the backbone's."""
    if config.modality != "auto":
        return get(config.modality)
    if source is not None:
        return get(source_modality(source))
    from keras_tl.core.contract import registry

    return get(registry.get(config.backbone).modality)


GUESS_FILES = 5000  # files looked at to tell a data folder's modality


def guess(path):
    """The modality of the data at `path`, from what the plug-ins say their items are: a folder by its
    files' extensions (`Modality.file_extensions`), a CSV by the file names in its first rows, or else
    the one plug-in whose items are the CSV's own cells (no file extensions). A one-line error names
    `modality` when it cannot tell."""
    import csv
    import os

    from keras_tl.core.contract.errors import DataError
    from keras_tl.core.contract.files import allow_long_csv_fields

    if not isinstance(path, str) or not os.path.exists(path):
        raise DataError(
            f"Data not found: data={path!r}. Expected a folder of class folders or a CSV (`keras-tl train --help` "
            "gives each modality's layout)."
        )
    plugins = [get(name) for name in MODALITIES]
    counts = dict.fromkeys((p.name for p in plugins), 0)

    def count(name):
        suffix = os.path.splitext(str(name).strip())[1].lower()
        for plugin in plugins:
            if suffix and suffix in plugin.file_extensions:
                counts[plugin.name] += 1

    if os.path.isdir(path):
        seen = 0
        for _, _, files in os.walk(path):
            for name in files:
                count(name)
                seen += 1
            if seen >= GUESS_FILES:
                break
    elif os.path.isfile(path) and path.lower().endswith(".csv"):
        allow_long_csv_fields()  # As the loaders read long texts.
        try:
            with open(path, newline="", encoding="utf-8", errors="replace") as f:
                for i, row in enumerate(csv.reader(f)):
                    for cell in row:  # Any column may hold the file names.
                        count(cell)
                    if i >= 50:
                        break
        except csv.Error as error:  # A field over csv's size limit, a NUL byte: not a manifest of files.
            raise ConfigError(f"Cannot tell the modality of data={path!r} ({error}); give `modality`.") from None
        if not any(counts.values()):
            cells = [p.name for p in plugins if not p.file_extensions]
            if len(cells) == 1:
                return cells[0]
    found = max(counts, key=counts.get)
    if not counts[found]:
        raise ConfigError(
            f"Cannot tell the modality of data={path!r}: expected a folder of {' or '.join(p.name for p in plugins if p.file_extensions)} "
            f"files or a CSV; give `modality` ({' or '.join(MODALITIES)}; a folder of .txt files is not read as text)."
        )
    return found
