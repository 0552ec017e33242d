"""Multi-task heads: several named classification heads on one backbone, any modality.

A multi-task source looks like multi-label data with a block structure: its class names are
"head:class" (`grade:1/3`, `cell_type:mono`), grouped by head, and its labels are 0/1 rows; a block
of zeros means "this head's label is missing" for that row. A head is single-label (at most one 1
in its block: a softmax head) unless some row gives it several classes: then it is multi-label
(one sigmoid per class; a labelled row has at least one class, so a head that needs "none of
these" names a class for it). So splitting, batching, caching features and every modality's
pipeline work unchanged; only the model's head, the loss, the metrics and the evaluation know the
blocks:

- the model ends in one Dense layer per head ("predictions_<head>": softmax, or sigmoid for a
  multi-label head), joined by a `HeadConcat` layer named "predictions" (what the feature cache,
  resume and export find; it records each head's kind, `kinds_of(model)`);
- `MaskedHeadLoss`: the weighted sum over heads of each head's cross-entropy (binary
  cross-entropy averaged over the classes of a multi-label head), zero for rows whose label of
  that head is missing (they send that head no gradient);
- `HeadAccuracy`: per head, or pooled over every labelled (row, head) pair ("accuracy", what
  `monitor="val_accuracy"` watches); label-wise for a multi-label head;
- the test metrics per head: `keras_tl.core.evaluation.evaluate.multitask_metrics`.

The labels' side (reading, checking and selecting heads, class weights) is
`keras_tl.core.data.multitask_labels`. A binary head is a two-class softmax, so every runtime reads
one score per class of each head.
"""

import keras
import numpy as np

from keras_tl.core.data.multitask_labels import heads_of

OUTPUT_PREFIX = "predictions_"


def kinds_of(model, output="predictions"):
    """`{head: kind}` a multi-task model's heads were built with."""
    layer = model.get_layer(output)
    return dict(zip(layer.heads, layer.kinds))


@keras.saving.register_keras_serializable(package="keras_tl")
class HeadConcat(keras.layers.Concatenate):
    """The heads' probabilities side by side (the model's "predictions"), remembering each head's name,
    width and kind ("multiclass" or "multilabel") so the loss, metrics and exports can cut them apart
    again."""

    def __init__(self, heads, sizes, kinds=None, **kwargs):
        super().__init__(axis=-1, **{k: v for k, v in kwargs.items() if k != "axis"})
        self.heads, self.sizes = list(heads), [int(s) for s in sizes]
        self.kinds = list(kinds or ["multiclass"] * len(self.heads))

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "sizes": self.sizes, "kinds": self.kinds}


def multitask_head(x, class_names, *, kinds=None, dense_units=(), dropout=0.2, name="predictions"):
    """One output layer per head on pooled features `x` (softmax; sigmoid for a head `kinds` calls
    "multilabel"), joined by `HeadConcat` (layer `name`).

    Shared Dense+ReLU layers (`dense_units`) and dropout come first, as in the single-task head.
    """
    heads = heads_of(class_names)
    kinds = [(kinds or {}).get(h[0], "multiclass") for h in heads]
    for i, units in enumerate(dense_units):
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"head_dropout_{i}")(x)
    if dropout and not dense_units:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = [
        keras.layers.Dense(
            len(classes),
            activation="sigmoid" if kind == "multilabel" else "softmax",
            dtype="float32",
            name=f"{OUTPUT_PREFIX}{head}",
        )(x)
        for (head, classes, _, _), kind in zip(heads, kinds)
    ]
    return HeadConcat([h[0] for h in heads], [len(h[1]) for h in heads], kinds, dtype="float32", name=name)(outputs)


def blocks_of(model, output="predictions"):
    """`[(head, start, stop)]` of a multi-task model's concatenated output."""
    layer = model.get_layer(output)
    bounds = np.cumsum([0] + layer.sizes)
    return [(head, int(bounds[i]), int(bounds[i + 1])) for i, head in enumerate(layer.heads)]


@keras.saving.register_keras_serializable(package="keras_tl")
class MaskedHeadLoss(keras.losses.Loss):
    """Sum over heads of `weight * cross-entropy`, each head's term zero where its label is missing.

    `y_true` holds 0/1 blocks (all zeros: missing), `y_pred` the concatenated outputs: a softmax
    head's term is its categorical cross-entropy, a multi-label head's (`kinds`) the binary
    cross-entropy averaged over its classes (as single-task multi-label training). Per example;
    Keras then averages over the batch, so a head's gradient comes only from the rows that label it.
    Class weights weigh a softmax head's rows by their true class; multi-label heads are unweighted.
    """

    def __init__(
        self,
        blocks,
        weights=None,
        label_smoothing=0.0,
        class_weights=None,
        name="masked_head_loss",
        kinds=None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.blocks = [(str(h), int(a), int(b)) for h, a, b in blocks]
        self.weights = [float(w) for w in (weights or [1.0] * len(self.blocks))]
        self.label_smoothing = float(label_smoothing)
        self.class_weights = (
            [[float(w) for w in row] for row in class_weights]
            if class_weights
            else [[1.0] * (b - a) for _, a, b in self.blocks]
        )
        self.kinds = list(kinds or ["multiclass"] * len(self.blocks))
        # 1 while training, 0 while validating (`ClassWeightsInTrainingOnly`): like `fit(class_weight=)`,
        # class weights shape the training loss but not `val_loss`, which picks the kept epoch.
        self.weighting = keras.Variable(1.0, trainable=False, dtype="float32", name="class_weighting")

    def call(self, y_true, y_pred):
        ops = keras.ops
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0)
        total = 0.0
        for (_, start, stop), weight, per_class, kind in zip(self.blocks, self.weights, self.class_weights, self.kinds):
            target, predicted = y_true[:, start:stop], y_pred[:, start:stop]
            if kind == "multilabel":
                present = ops.cast(ops.sum(target, axis=-1) > 0, "float32")
                entropy = keras.losses.binary_crossentropy(target, predicted, label_smoothing=self.label_smoothing)
                total = total + weight * present * entropy
                continue
            # 0 where the label is missing, else the weight of the true class (1 unless balanced).
            per_class = 1.0 + self.weighting * (ops.convert_to_tensor(per_class, "float32") - 1.0)
            present = ops.sum(target * per_class, axis=-1)
            if self.label_smoothing:
                target = target * (1 - self.label_smoothing) + self.label_smoothing / (stop - start)
            total = total + weight * present * -ops.sum(target * ops.log(predicted), axis=-1)
        return total

    def get_config(self):
        return {
            "name": self.name,
            "reduction": self.reduction,
            "blocks": self.blocks,
            "weights": self.weights,
            "label_smoothing": self.label_smoothing,
            "class_weights": self.class_weights,
            "kinds": self.kinds,
        }


@keras.saving.register_keras_serializable(package="keras_tl")
class HeadAccuracy(keras.metrics.Metric):
    """Accuracy over the labelled rows of the given heads: argmax within a softmax head's block, the
    share of classes right at 0.5 for a multi-label head (`kinds`; label-wise, as single-task
    multi-label accuracy). With every head it is the mean over all labelled (example, head) pairs.
    """

    def __init__(self, blocks, name="accuracy", kinds=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.blocks = [(str(h), int(a), int(b)) for h, a, b in blocks]
        self.kinds = list(kinds or ["multiclass"] * len(self.blocks))
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        ops = keras.ops
        for (_, start, stop), kind in zip(self.blocks, self.kinds):
            target, predicted = y_true[:, start:stop], y_pred[:, start:stop]
            present = ops.cast(ops.sum(target, axis=-1) > 0, "float32")
            if kind == "multilabel":
                right = ops.mean(ops.cast((target > 0.5) == (predicted >= 0.5), "float32"), axis=-1)
            else:
                right = ops.cast(ops.argmax(target, axis=-1) == ops.argmax(predicted, axis=-1), "float32")
            self.correct.assign_add(ops.sum(right * present))
            self.count.assign_add(ops.sum(present))

    def result(self):
        return keras.ops.divide_no_nan(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "blocks": self.blocks, "kinds": self.kinds}


class ClassWeightsInTrainingOnly(keras.callbacks.Callback):
    """Turns a `MaskedHeadLoss`'s class weights off while Keras validates or evaluates, and back on."""

    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def on_test_begin(self, logs=None):
        self.loss.weighting.assign(0.0)

    def on_test_end(self, logs=None):
        self.loss.weighting.assign(1.0)


def callbacks_for(model):
    """The callbacks a compiled multi-task model needs in `fit` (none for any other model)."""
    loss = getattr(model, "loss", None)
    return [ClassWeightsInTrainingOnly(loss)] if isinstance(loss, MaskedHeadLoss) else []


def loss_and_metrics(model, weights=None, label_smoothing=0.0, class_weights=None):
    """`(loss, metrics)` to compile a multi-task model: `weights` `{head: loss weight}` (default 1),
    `class_weights` `{head: [weight of each class]}` (default 1)."""
    blocks = blocks_of(model)
    kinds = [kinds_of(model)[h] for h, _, _ in blocks]
    weights = weights or {}
    per_class = [list((class_weights or {}).get(h, [1.0] * (b - a))) for h, a, b in blocks]
    loss = MaskedHeadLoss(
        blocks, [float(weights.get(h, 1.0)) for h, _, _ in blocks], label_smoothing, per_class, kinds=kinds
    )
    metrics = [HeadAccuracy(blocks, name="accuracy", kinds=kinds)]
    metrics += [HeadAccuracy([block], name=f"{block[0]}_accuracy", kinds=[k]) for block, k in zip(blocks, kinds)]
    return loss, metrics
