"""A Classifier: one trainable model with everything needed to feed it raw data, for any modality.

`Classifier.model` takes what the modality's pipeline produces (images, token ids, waveforms) and holds
its in-graph preprocessing, the backbone (in inference mode when pretrained), the pooling and the
head(s). `Classifier.preprocessor` is the host-side part where one exists (a text tokenizer); the
modality object knows how to turn raw items (image files or arrays, strings) into model inputs.
Training (`keras_tl.core.train.training.fine_tune`), the run directory and every export take a Classifier.
(Not KerasHub's `Task`, a `keras.Model` subclass: the model is `Classifier.model`, a plain
functional `keras.Model` that loads wherever Keras does.)
"""

from dataclasses import dataclass, field

from keras_tl.core.models import heads, multitask


@dataclass
class Classifier:
    """A model plus what makes it usable on raw inputs.

    Args:
        model: keras.Model. Built by `keras_tl.build_classifier` (or loaded from a run).
        modality: Modality. The plug-in object (`keras_tl.core.contract.modality.get(name)`).
        spec: BackboneSpec. Its registry entry; None for a model loaded from a run whose backbone
            handle no longer resolves here.
        preprocessor: object. Host-side preprocessing (KerasHub text preprocessor), or None.
        class_names: list of str.
        config: TrainConfig. The (resolved) config the classifier was built from, where known.
        operating_point: dict. A binary model's decision threshold (`keras_tl.core.evaluation.
            operating_point`), or None: the most probable class.
    """

    model: object
    modality: object
    spec: object = None
    preprocessor: object = None
    class_names: list = field(default_factory=list)
    config: object = None
    operating_point: dict | None = None

    @classmethod
    def build(cls, modality, spec, config, num_classes, class_names=(), head_kinds=None):
        """A Classifier for backbone `spec` under a resolved `config`: the plug-in builds the network
        (`Modality.build_network`) with the head `config` asks for (`heads.HeadSpec`).

        Args:
            modality: Modality. The plug-in object.
            spec: BackboneSpec.
            config: TrainConfig. Resolved (`keras_tl.workflow.checks.resolve_config`).
            num_classes: int.
            class_names: list of str.
            head_kinds: dict. A multi-task source's `keras_tl.core.data.multitask_labels.head_kinds`.
        """
        head = heads.HeadSpec.from_config(config, num_classes, class_names, head_kinds)
        model, preprocessor = modality.build_network(spec, config, head)
        return cls(model, modality, spec, preprocessor, list(class_names), config)

    @property
    def problem(self):
        """ "multiclass", "binary", "multilabel" or "multitask"."""
        return heads.problem_of(self.model)

    @property
    def head_kinds(self):
        """A multi-task model's `{head: "multiclass" or "multilabel"}`; None for one head."""
        return multitask.kinds_of(self.model) if self.problem == "multitask" else None

    @staticmethod
    def joined(outputs):
        """The model's outputs as one array (a multi-task model's heads side by side, in order)."""
        return multitask.joined(outputs)

    @property
    def backbone(self):
        return heads.get_backbone(self.model)

    def inputs(self, items):
        """Raw items (image arrays or paths, strings, ...) -> what `model` takes."""
        return self.modality.model_inputs(self, items)

    def predict(self, items, batch_size=32, verbose=0, runner=None):
        """Class probabilities `(N, C)` for raw items (binary models give two columns).

        Args:
            runner: callable. Model inputs -> outputs, to run another copy of the model (a TFLite
                file) the same way; defaults to `self.model.predict`. Items cut into several rows
                (audio windows) get the mean of their rows' probabilities either way.
        """
        inputs, owners = self.modality.item_windows(self, items)
        if runner is None:
            outputs = self._run(inputs, batch_size, verbose)
        else:
            outputs = runner(inputs)
        if owners is None:
            return heads.probabilities_of(outputs)
        return heads.mean_per_item(outputs, owners, len(items))

    def predict_labels(self, items, batch_size=32):
        """The class name of each item: at the operating point where the model has one, else the most
        probable class. Single-label models only (a multi-label or multi-task model's `predict` gives
        each class's own probability)."""
        if self.problem in ("multilabel", "multitask"):
            from keras_tl.core.contract.errors import ConfigError

            raise ConfigError(
                f"`predict_labels` gives one class per item; a {self.problem} model has several. Use `predict`."
            )
        return [
            self.class_names[i] for i in decide(self.operating_point, self.predict(items, batch_size), self.class_names)
        ]

    def _run(self, inputs, batch_size, verbose):
        """`model.predict`, or for inputs that fit one batch an eager call: the same layers in inference
        mode without tracing a predict function first (most of a one-image `keras-tl predict`)."""
        import keras

        if len(keras.tree.flatten(inputs)[0]) > batch_size:
            return self.model.predict(inputs, batch_size=batch_size, verbose=verbose)
        outputs = self.model(inputs, training=False)
        return keras.tree.map_structure(keras.ops.convert_to_numpy, outputs)


def decide(operating_point, probabilities, class_names):
    """Class indices `(N,)`: at a binary model's operating point (`{"positive_class", "threshold"}`, see
    `keras_tl.core.evaluation.operating_point`), "positive when its probability >= threshold"; without
    one (None), the most probable class."""
    import numpy as np

    probabilities = np.asarray(probabilities)
    if operating_point is None:
        return probabilities.argmax(-1)
    positive = list(class_names).index(operating_point["positive_class"])
    return np.where(probabilities[:, positive] >= operating_point["threshold"], positive, 1 - positive)
