"""What every modality's tf.data pipeline shares: targets from labels (and back), seeded shuffles
reshuffled every epoch or class-balanced draws, batches of cached features."""

import math

import numpy as np
import tensorflow as tf

from keras_tl.core.contract.errors import DataError


def encode_labels(labels, num_classes, problem):
    """Labels -> float targets: one-hot (multiclass), `(N, 1)` (binary), multi-hot as is (multilabel,
    and multitask: one-hot blocks per head, zeros where a head's label is missing)."""
    labels = np.asarray(labels)
    if problem in ("multilabel", "multitask"):
        return labels.astype(np.float32)
    if problem == "binary":
        return labels.astype(np.float32)[:, None]
    return np.eye(num_classes, dtype=np.float32)[labels]


def shuffled_batches(ds, labels, *, batch_size, training, oversample, seed):
    if training and oversample:
        ds = _oversampled(ds, labels, seed)
    elif training:
        ds = ds.shuffle(max(len(labels), 1), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def labelled_batches(
    items, labels, *, batch_size, num_classes, problem="multiclass", training=False, oversample=False, seed=0
):
    """`(items, float targets)` batches of in-memory `items` (an array or tensor, one row per label):
    targets by `encode_labels`, then `shuffled_batches`. What a modality's pipeline starts from when
    its items need no per-item decoding before the shuffle."""
    ds = tf.data.Dataset.from_tensor_slices((items, encode_labels(labels, num_classes, problem)))
    return shuffled_batches(ds, labels, batch_size=batch_size, training=training, oversample=oversample, seed=seed)


def targets_as_inputs(ds):
    """`(images, targets)` batches -> `((images, targets),)`: both go into `predict`, paired."""
    return ds.map(lambda x, y: ((x, y),))


def feature_dataset(features, targets, labels, *, batch_size, training=False, oversample=False, seed=0, repeat=False):
    """Batches of cached backbone features, shuffled (or oversampled) as `make_dataset` does images.

    With the same seed and labels the batches hold the same examples in the same order as
    `make_dataset`'s, so training the head on features is the frozen phase, only faster.

    Args:
        features: float array `(N, D)`. From `keras_tl.core.train.features.extract`.
        targets: float array `(N, ...)`. The targets that went with each image.
        labels: int array `(N,)` or multi-hot `(N, C)`. For oversampling.
        batch_size: int.
        training: bool. Shuffle. Defaults to False.
        oversample: bool. Training only: draw every class equally often.
        seed: int.
        repeat: bool. Repeat forever (several cached augmented views; pass `steps_per_epoch`).
    """
    ds = tf.data.Dataset.from_tensor_slices((features, targets))  # already in memory: no cache
    ds = shuffled_batches(ds, labels, batch_size=batch_size, training=training, oversample=oversample, seed=seed)
    if repeat:
        ds = ds.repeat()
    return ds.prefetch(tf.data.AUTOTUNE)


def _oversampled(ds, labels, seed):
    """Every class drawn with equal probability; one epoch = as many images as the split has."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError("Oversampling needs single-label data; use class weights for multi-label.")
    classes = np.unique(labels)
    label_tensor = tf.constant(labels)
    indexed = ds.enumerate()
    per_class = [
        indexed.filter(lambda i, xy, c=int(c): tf.equal(tf.gather(label_tensor, i), c))
        .map(lambda i, xy: xy)
        .shuffle(int(np.sum(labels == c)), seed=seed)
        .repeat()
        for c in classes
    ]
    mixed = tf.data.Dataset.sample_from_datasets(per_class, weights=[1 / len(classes)] * len(classes), seed=seed)
    return mixed.take(len(labels))


def labels_of_targets(targets, problem):
    """Encoded targets -> the labels they encode (int indices, or multi-hot rows for multi-label)."""
    targets = np.asarray(targets)
    if problem in ("multilabel", "multitask"):
        return (targets > 0.5).astype(np.int64)
    if problem == "binary":
        return (targets.reshape(len(targets), -1)[:, 0] > 0.5).astype(np.int64)
    return targets.argmax(axis=-1).astype(np.int64)


def steps_per_epoch(split, batch_size):
    return max(1, math.ceil(len(split) / batch_size))
