"""Splits: seeded, stratified train / validation / test indices, few-label subsets, balanced class
weights. Keras-free (numpy)."""

from dataclasses import dataclass

import numpy as np

from keras_tl.core.contract.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """The examples of one split and their labels.

    Attributes:
        items: an array (images `(N, H, W, 3)` uint8) or a list (image file paths, texts).
        labels: int array `(N,)`, or multi-hot `(N, C)`.
    """

    items: object
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)

    def subset(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        items = self.items[indices] if isinstance(self.items, np.ndarray) else [self.items[i] for i in indices]
        return Split(items, self.labels[indices])


def strata(labels):
    """The label each row is stratified on: itself, or (multi-label) its rarest positive label."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels
    frequency = labels.sum(axis=0)
    rarity = np.where(labels > 0, frequency[None, :], np.inf)
    return np.where(np.isfinite(rarity.min(axis=1)), rarity.argmin(axis=1), -1)


def stratified_split(labels, val_split, test_split, seed):
    """Seeded, stratified indices for train/val/test.

    Every class gets at least one image in each split; a class with fewer than 3 images raises.

    Returns:
        dict "train"/"val"/"test" -> sorted int arrays of indices.
    """
    labels = strata(labels)
    rng = np.random.default_rng(seed)
    parts = {s: [] for s in SPLITS}
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        if len(idx) < 3:
            raise DataError(
                f"Class {int(label)} has {len(idx)} image(s); a train/val/test split needs at least "
                "3 per class. Add images or remove the class."
            )
        idx = rng.permutation(idx)
        n_test = max(1, int(round(len(idx) * test_split)))
        n_val = max(1, int(round(len(idx) * val_split)))
        n_test = min(n_test, len(idx) - 2)
        n_val = min(n_val, len(idx) - n_test - 1)
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {s: np.sort(np.concatenate(p)) for s, p in parts.items()}


def limit_per_class(labels, indices, per_class, seed):
    """Keeps at most `per_class` of `indices` for each label (seeded choice)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    kept = []
    for label in np.unique(labels[indices]):
        idx = indices[labels[indices] == label]
        kept.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(kept))


def _carve(labels, indices, fraction, seed):
    labels = strata(labels)
    rng = np.random.default_rng(seed)
    rest, carved = [], []
    for label in np.unique(labels[indices]):
        idx = rng.permutation(indices[labels[indices] == label])
        n = min(max(1, int(round(len(idx) * fraction))), len(idx) - 1)
        carved.append(idx[:n])
        rest.append(idx[n:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(carved))


def split_source(source, *, val_split, test_split, seed, labels_per_class=None):
    """Splits a source into `{"train", "val", "test"}` `Split`s (predefined splits are kept)."""
    if labels_per_class and source.labels.ndim == 2:
        raise DataError("`labels_per_class` applies to single-label data only.")
    if len(source.class_names) < 2:
        raise DataError(
            f"Classification needs at least 2 classes. Received: {len(source.class_names)} ({source.class_names})."
        )
    if source.predefined:
        indices = dict(source.predefined)
        for name, fraction in (("val", val_split), ("test", test_split)):
            if name not in indices:  # Carve the missing split from train, stratified.
                indices["train"], indices[name] = _carve(source.labels, indices["train"], fraction, seed)
    else:
        indices = stratified_split(source.labels, val_split, test_split, seed)
    if labels_per_class:
        indices["train"] = limit_per_class(source.labels, indices["train"], labels_per_class, seed)
    whole = source.as_split()
    return {s: whole.subset(indices[s]) for s in SPLITS}


def class_weights(labels, num_classes):
    """'Balanced' class weights, `n / (k * count)`, as a dict for `Model.fit`."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}
