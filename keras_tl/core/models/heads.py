"""What every transfer model shares after its backbone: the layer names, the new head, the problem kind.

A keras-tl model, whatever its modality, is `inputs -> [in-graph preprocessing] -> backbone (layer
"backbone", in inference mode when pretrained) -> pooling (layer "head_pool") -> head`, whose
output layer is "predictions" (a multi-task model: a dict of heads, layers "predictions_<head>"). The feature cache (`keras_tl.core.train.features`), the unfreeze
policies (`keras_tl.core.train.training`) and export find their way through these names.
"""

import dataclasses
import numbers

import keras
import numpy as np

from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.data import multitask_labels
from keras_tl.core.models import multitask
from keras_tl.core.models.layers import InferenceMode
from keras_tl.core.utils import private

BACKBONE_LAYER = "backbone"
POOL_LAYER = "head_pool"
NORM_LAYER = "head_norm"  # `HeadSpec(normalize=True)`'s standardization ("<name>_head_norm" for a named head).
OUTPUT_LAYER = "predictions"
PROBLEMS = ("multiclass", "binary", "multilabel", "multitask")


def is_pretrained(weights):
    """True if `weights` loads learned values (anything but None/"none")."""
    return weights not in (None, "none")


def check_problem(problem, num_classes):
    """Raises `ValueError` unless `problem` is known and fits `num_classes`."""
    if problem not in PROBLEMS:
        raise ConfigError(f"`problem` must be one of {list(PROBLEMS)}. Received: problem={problem!r}")
    if problem == "multitask":
        return
    if problem == "binary" and num_classes != 2:
        raise ConfigError(f"problem='binary' needs exactly 2 classes. Received: num_classes={num_classes}")
    if num_classes < 2:
        raise ConfigError(f"A classifier needs at least 2 classes. Received: num_classes={num_classes}")


def head(x, *, num_classes, problem, dense_units=(), dropout=0.2, name=OUTPUT_LAYER, class_names=(), head_kinds=None):
    """The new classification head on pooled features `x`.

    Optional Dense+ReLU layers, dropout, and the output layer `name` (softmax, or sigmoid for
    binary and multi-label), kept in float32 under mixed precision.

    Args:
        x: KerasTensor `(B, D)`. Pooled backbone features.
        num_classes: int.
        problem: str. "multiclass", "binary" (one sigmoid unit) or "multilabel" (one sigmoid a class).
        dense_units: list of int. Extra Dense+ReLU layers. Defaults to none.
        dropout: float. Dropout before the output layer. Defaults to 0.2.
        name: str. The output layer's name. Defaults to "predictions".
        class_names: list of str. "head:class" names: needed by "multitask" (one softmax per head,
            `keras_tl.core.models.multitask.multitask_head`).
        head_kinds: dict. "multitask": `{head: "multilabel"}` for the heads with sigmoid outputs
            (`keras_tl.core.data.multitask_labels.head_kinds`); the others are softmax.
    """
    return HeadSpec(num_classes, problem, dense_units, dropout, class_names, head_kinds)(x, name=name)


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """The new head a plug-in puts on its pooled features: what `head` takes, checked when made
    (before any backbone is built).

    Args:
        num_classes: int.
        problem: str. "multiclass", "binary", "multilabel" or "multitask".
        dense_units: tuple of int. Extra Dense+ReLU layers.
        dropout: float. Dropout before the output layer.
        class_names: tuple of str. "head:class" names: needed by "multitask".
        head_kinds: dict. "multitask": `{head: "multilabel"}` for the heads with sigmoid outputs.
        normalize: bool. Standardize the pooled features first, as linear probes do: a frozen
            BatchNormalization without scale and offset ("head_norm") whose mean and variance are
            the cached training features' (`keras_tl.core.train.features.standardize_from`; the
            frozen phase must run on cached features). Features whose dimensions differ in scale by
            orders of magnitude (musicnn's) then train a head as standardized ones would.
    """

    num_classes: int
    problem: str = "multiclass"
    dense_units: tuple = ()
    dropout: float = 0.2
    class_names: tuple = ()
    head_kinds: dict | None = None
    normalize: bool = False

    def __post_init__(self):
        if not isinstance(self.num_classes, numbers.Integral) or isinstance(self.num_classes, bool):
            raise ConfigError(f"`num_classes` must be an integer. Received: num_classes={self.num_classes!r}")
        # Plain values, whatever was passed (numpy integers, lists): the spec is a value.
        object.__setattr__(self, "num_classes", int(self.num_classes))
        object.__setattr__(self, "dense_units", tuple(int(u) for u in self.dense_units))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if not isinstance(self.normalize, bool):
            raise ConfigError(f"`normalize` must be true or false. Received: normalize={self.normalize!r}")
        check_problem(self.problem, self.num_classes)
        if self.problem == "multitask":
            if len(self.class_names) != self.num_classes:
                raise ConfigError(
                    f"A multi-task head needs its {self.num_classes} 'head:class' names. Received: "
                    f"{len(self.class_names)} class names"
                )
            multitask_labels.heads_of(self.class_names)  # Checked now, before any backbone is built.

    __hash__ = None  # `head_kinds` is a dict.

    @classmethod
    def of(cls, head, num_classes, head_options):
        """A plug-in builder's head: `head` (a HeadSpec) or one made of `num_classes` and `head_options`,
        not both."""
        if head is None:
            return cls(num_classes, **head_options)
        if num_classes is not None or head_options:
            raise ConfigError(
                "Give the head as `head=HeadSpec(...)` or as `num_classes` and head options, not both. "
                f"Received: head={head!r}, num_classes={num_classes!r}, {sorted(head_options)}"
            )
        return head

    @classmethod
    def from_config(cls, config, num_classes, class_names=(), head_kinds=None):
        """The head a (resolved) `TrainConfig` asks for."""
        return cls(
            num_classes, config.problem, config.dense_units, config.dropout, class_names, head_kinds, config.head_norm
        )

    def __call__(self, x, name=OUTPUT_LAYER):
        """The head's output on pooled features `x` (`head`)."""
        prefix = "head" if name == OUTPUT_LAYER else f"{name}_head"
        if self.normalize:  # Fixed (inference mode): the cached training features' mean and variance,
            # set once by `features.standardize_from`, as a linear probe's scaler.
            norm = keras.layers.BatchNormalization(center=False, scale=False, name=f"{prefix}_norm")
            norm.trainable = False
            x = norm(x)
        if self.problem == "multitask":  # `{head: output}`: Keras' multi-output model.
            return multitask.multitask_head(
                x, self.class_names, kinds=self.head_kinds, dense_units=self.dense_units, dropout=self.dropout
            )
        for i, units in enumerate(self.dense_units):
            x = keras.layers.Dense(units, activation="relu", name=f"{prefix}_dense_{i}")(x)
            x = keras.layers.Dropout(self.dropout, name=f"{prefix}_dropout_{i}")(x)
        if self.dropout and not self.dense_units:
            x = keras.layers.Dropout(self.dropout, name=f"{prefix}_dropout")(x)
        return keras.layers.Dense(
            1 if self.problem == "binary" else self.num_classes,
            activation="softmax" if self.problem == "multiclass" else "sigmoid",
            dtype="float32",
            name=name,
        )(x)


def backbone_layer(backbone, inputs, pretrained):
    """Calls `backbone` on `inputs` as the layer "backbone": in inference mode when pretrained.

    With pretrained weights the backbone always runs with `training=False` (the Keras
    transfer-learning guide; `InferenceMode`, because Keras 3 would otherwise pass `fit`'s
    `training=True` through): BatchNorm keeps its moving statistics and dropout stays off, frozen
    or not. From random weights there are no statistics to protect and it trains normally.
    """
    if pretrained:
        return InferenceMode(backbone, name=BACKBONE_LAYER)(inputs)
    backbone.name = BACKBONE_LAYER
    return backbone(inputs)


def short_run_batchnorm(backbone, momentum=0.9):
    """Lets BatchNorm statistics of a from-scratch backbone converge within a short run.

    Keras Applications use momentum 0.99-0.999, tuned for ImageNet-length training: after a few
    hundred steps from random weights the moving statistics are still near their initial values
    and the model is right in training mode but at chance in inference mode.
    """
    for layer in private.nested_layers(backbone):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def problem_of(model, output=OUTPUT_LAYER):
    """ "binary", "multilabel", "multiclass" or "multitask", read off a built model's output (layer)."""
    if multitask.is_multitask(model):
        return "multitask"
    layer = model.get_layer(output)
    if layer.units == 1:
        return "binary"
    return "multilabel" if getattr(layer.activation, "__name__", "") == "sigmoid" else "multiclass"


def get_backbone(model):
    """The backbone (a `keras.Model`) of a keras-tl model."""
    layer = model.get_layer(BACKBONE_LAYER)
    return layer.inner if isinstance(layer, InferenceMode) else layer


def probabilities_of(outputs):
    """Class probabilities `(N, C)` float32: a binary model's `(N, 1)` becomes `(N, 2)`.

    The one place the binary expansion is written; metrics, plots, `predict` and every export use it.
    A multi-task model's `{head: probabilities}` come side by side (`multitask.joined`).
    """
    outputs = np.asarray(multitask.joined(outputs), dtype=np.float32)
    if outputs.ndim == 2 and outputs.shape[-1] == 1:
        return np.concatenate([1 - outputs, outputs], axis=-1)
    return outputs


def mean_per_item(probabilities, owners, count):
    """Rows of probabilities -> `(count, C)`: the mean of the rows each item owns (`owners[i]` = item of row i)."""
    probabilities = probabilities_of(probabilities)
    sums = np.zeros((count, probabilities.shape[-1]), np.float64)
    np.add.at(sums, np.asarray(owners), probabilities)
    counts = np.bincount(np.asarray(owners), minlength=count)[:, None]
    if np.any(counts == 0):
        raise ConfigError(
            f"Every item needs at least one row; items {np.flatnonzero(counts[:, 0] == 0)[:5]} have none."
        )
    return (sums / counts).astype(np.float32)


def per_class_model(model):
    """`model` itself, or for a binary model (one sigmoid) a model whose output is `[1 - p, p]`.

    What leaves Python (TFLite) gives one score per label in labels.txt order, as every
    classifier runtime (MediaPipe Tasks' label map) expects; training keeps its single sigmoid.
    """
    if problem_of(model) == "multitask":  # One output tensor per head, in the heads' order.
        return keras.Model(model.input, list(model.output.values()), name=f"{model.name}_per_head")
    if problem_of(model) != "binary":
        return model
    score = model.outputs[0]
    both = keras.layers.Concatenate(name="probabilities")([keras.ops.subtract(1.0, score), score])
    return keras.Model(model.input, both, name=f"{model.name}_per_class")


def probabilities_graph(outputs):
    """`probabilities_of` inside a TensorFlow graph (export signatures)."""
    import tensorflow as tf

    if isinstance(outputs, dict):  # A multi-task model's heads side by side, in their order.
        outputs = tf.concat([tf.cast(v, tf.float32) for v in outputs.values()], axis=-1)
    outputs = tf.cast(outputs, tf.float32)
    if outputs.shape[-1] == 1:
        return tf.concat([1.0 - outputs, outputs], axis=-1)
    return outputs


def serving_outputs(probabilities, class_names, kind, top_k=5, operating_point=None):
    """What every SavedModel signature returns for graph probabilities `(N, C)`.

    `kind` is the model's `problem_of`. Single problem: `probabilities`, `top_classes` (N, k) int32 and `labels` (N,) string of the top
    class. Multi-task: `probabilities` (every head side by side, as labels.txt lists them) and, per
    head, `<head>_probabilities`, `<head>_top_classes` (indices within the head) and `<head>_label`.
    A binary model with an `operating_point` (`keras_tl.core.evaluation.operating_point`) labels by
    its threshold instead of the top class.
    """
    import tensorflow as tf

    def one(probs, names):
        top = tf.math.top_k(probs, k=min(top_k, len(names)))
        return top.indices, tf.gather(tf.constant(names), top.indices[:, 0])

    if kind != "multitask":
        top, label = one(probabilities, list(class_names))
        if operating_point is not None:
            positive = list(class_names).index(operating_point["positive_class"])
            called = probabilities[:, positive] >= operating_point["threshold"]
            label = tf.where(called, class_names[positive], class_names[1 - positive])
        return {"probabilities": probabilities, "top_classes": top, "labels": label}
    result = {"probabilities": probabilities}
    for head, classes, start, stop in multitask_labels.heads_of(class_names):
        probs = probabilities[:, start:stop]
        top, label = one(probs, classes)
        result.update({f"{head}_probabilities": probs, f"{head}_top_classes": top, f"{head}_label": label})
    return result
