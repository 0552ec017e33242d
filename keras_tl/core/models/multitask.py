"""Multi-task heads on Keras' own multi-output API: several named classification heads on one backbone.

A multi-task source looks like multi-label data with a block structure: its class names are
"head:class" (`grade:1/3`, `cell_type:mono`), grouped by head, and its labels are 0/1 rows; a block
of zeros means "this head's label is missing" for that row. A head is single-label (at most one 1
in its block: a softmax head) unless some row gives it several classes: then it is multi-label
(one sigmoid per class; a labelled row has at least one class, so a head that needs "none of
these" names a class for it). So splitting, batching, caching features and every modality's
pipeline work unchanged on those rows; at `fit` they become what Keras takes for a model with
several outputs:

- the model's output is a dict `{head: probabilities}`, one Dense layer per head named
  "predictions_<head>" (softmax, or sigmoid for a multi-label head), in the heads' order;
- `compile(loss={head: ...}, loss_weights={head: ...}, weighted_metrics={head: [accuracy]})`: categorical
  cross-entropy for a softmax head, binary cross-entropy for a multi-label one (`loss_and_metrics`);
- `targets_by_head` turns each batch's rows into `(x, {head: block}, {head: sample weight})`: the
  weight is 0 where the row lacks that head's label (the head gets no gradient from it, and its
  metrics skip it) and, while training with `balance: class_weights`, the weight of the row's class;
- `PooledAccuracy` logs "accuracy" / "val_accuracy", the mean of the heads' accuracies, which
  `monitor="val_accuracy"` watches as for one head.

The labels' side (reading, checking and selecting heads, class weights) is
`keras_tl.core.data.multitask_labels`; the test metrics per head are
`keras_tl.core.evaluation.evaluate.multitask_metrics`. A binary head is a two-class softmax, so every
runtime reads one score per class of each head; exports give one output per head, in order.
"""

import keras
import numpy as np

from keras_tl.core.data.multitask_labels import heads_of

OUTPUT_PREFIX = "predictions_"


def is_multitask(model):
    """True for a model whose output is a dict of heads (False for a model not yet called: no output)."""
    try:
        return isinstance(model.output, dict)
    except AttributeError:
        return False


def kinds_of(model):
    """`{head: "multiclass" or "multilabel"}` of a multi-task model, in the heads' order (read off each
    head's activation)."""
    return {
        head: "multilabel"
        if getattr(model.get_layer(f"{OUTPUT_PREFIX}{head}").activation, "__name__", "") == "sigmoid"
        else "multiclass"
        for head in model.output
    }


def blocks_of(model):
    """`[(head, start, stop)]`: where each head's classes sit in the heads' probabilities side by side
    (`joined`), as in the "head:class" class names."""
    sizes = [int(tensor.shape[-1]) for tensor in model.output.values()]
    bounds = np.cumsum([0] + sizes)
    return [(head, int(bounds[i]), int(bounds[i + 1])) for i, head in enumerate(model.output)]


def joined(outputs):
    """A model's outputs as one array: a multi-task model's `{head: (N, C_head)}` side by side in the
    heads' order (the class names' order); any other output as it is."""
    if isinstance(outputs, dict):
        return np.concatenate([np.asarray(v) for v in outputs.values()], axis=-1)
    return outputs


def multitask_head(x, class_names, *, kinds=None, dense_units=(), dropout=0.2):
    """`{head: output}` on pooled features `x`: one Dense layer per head ("predictions_<head>", softmax;
    sigmoid for a head `kinds` calls "multilabel"), in the order of `class_names`' heads.

    Shared Dense+ReLU layers (`dense_units`) and dropout come first, as in the single-task head.
    """
    for i, units in enumerate(dense_units):
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"head_dropout_{i}")(x)
    if dropout and not dense_units:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return {
        head: keras.layers.Dense(
            len(classes),
            activation="sigmoid" if (kinds or {}).get(head) == "multilabel" else "softmax",
            dtype="float32",
            name=f"{OUTPUT_PREFIX}{head}",
        )(x)
        for head, classes, _, _ in heads_of(class_names)
    }


def loss_and_metrics(model, weights=None, label_smoothing=0.0):
    """`(loss, loss_weights, weighted_metrics)` dicts by head to compile a multi-task model: `weights`
    `{head: loss weight}` (default 1). The accuracies go in as Keras' `weighted_metrics`, which read the
    sample weights of `targets_by_head`: a row without a head's label counts not for that head."""
    kinds = kinds_of(model)
    loss, metrics = {}, {}
    for head, kind in kinds.items():
        if kind == "multilabel":
            loss[head] = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
            metrics[head] = [keras.metrics.BinaryAccuracy(name="accuracy")]
        else:
            loss[head] = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
            metrics[head] = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    loss_weights = {head: float((weights or {}).get(head, 1.0)) for head in kinds}
    return loss, loss_weights, metrics


def targets_by_head(dataset, model, class_weights=None):
    """`(x, rows)` batches -> `(x, {head: rows' block}, {head: sample weight})` for `fit`.

    A row without a head's label (its block all zeros) weighs 0 for that head; `class_weights`
    `{head: [weight of each class]}` (training only, as `fit(class_weight=)`) weigh a softmax head's
    rows by their class. A softmax head's row weighs the sum of its block (times the class weights):
    1 for a labelled row, and for a MixUp/CutMix row whose other half lacks the head's label, the
    labelled half's share. Any other model's batches pass unchanged: one `fit` path for one head and many.
    """
    import tensorflow as tf

    if not is_multitask(model):
        return dataset
    blocks, kinds = blocks_of(model), kinds_of(model)
    per_class = {
        head: tf.constant(class_weights[head], tf.float32)
        for head, _, _ in blocks
        if class_weights and head in class_weights and kinds[head] != "multilabel"
    }

    def split(x, rows):
        rows = tf.cast(rows, tf.float32)
        targets, weights = {}, {}
        for head, start, stop in blocks:
            block = rows[:, start:stop]
            if kinds[head] == "multilabel":  # Labelled or not.
                weight = tf.cast(tf.reduce_sum(block, axis=-1) > 0, tf.float32)
            else:
                weight = tf.reduce_sum(block * per_class[head] if head in per_class else block, axis=-1)
            targets[head], weights[head] = block, weight
        return x, targets, weights

    return dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE)


class PooledAccuracy(keras.callbacks.Callback):
    """Logs "accuracy" and "val_accuracy" of a multi-task model: the mean of its heads' accuracies
    ("<head>_accuracy"), which `monitor="val_accuracy"`, early stopping and the kept epoch read as
    for one head. Goes before the callbacks that read them."""

    def __init__(self, heads):
        super().__init__()
        self.heads = list(heads)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for prefix in ("", "val_"):
            values = [logs.get(f"{prefix}{head}_accuracy") for head in self.heads]
            if all(v is not None for v in values):
                logs[f"{prefix}accuracy"] = float(np.mean([float(v) for v in values]))


def callbacks_for(model):
    """The callbacks a compiled multi-task model needs in `fit` (none for any other model)."""
    return [PooledAccuracy(model.output)] if is_multitask(model) else []
