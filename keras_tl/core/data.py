"""What every modality's data shares: splits, stratified splitting, class weights, targets, batching.

A modality's data module (`keras_tl.image.data`, `keras_tl.text.data`) reads its sources and
decodes its items. A source has `class_names`, `labels` (int class indices, or multi-hot rows for
multi-label data), `predefined` splits, `skipped` items with their reasons, a `licence`, and
`as_split()`. Splits are stratified and seeded; training batches are reshuffled every epoch (seeded)
or drawn class-balanced.
"""

import csv
import math
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_tl.core.network import reachable
from keras_tl.core.errors import DataError

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

    @property
    def images(self):
        """The items (the name image code has always used)."""
        return self.items

    @property
    def texts(self):
        return self.items

    def __len__(self):
        return len(self.labels)

    def subset(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        items = self.items[indices] if isinstance(self.items, np.ndarray) else [self.items[i] for i in indices]
        return Split(items, self.labels[indices])


def predefined_indices(split_of):
    """Split name per image -> dict split name -> indices (only splits that occur)."""
    split_of = np.asarray(split_of, dtype=object)
    return {s: np.flatnonzero(split_of == s) for s in SPLITS if np.any(split_of == s)}


def tfds_builder(name, data_dir=None):
    """The tensorflow-datasets builder of `name`; offline and not prepared, a `DatasetUnavailableError`
    at once, saying how to prepare it on a machine with internet."""
    import tensorflow_datasets as tfds

    from keras_tl.core.errors import DatasetUnavailableError

    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared() and not reachable("storage.googleapis.com"):
        raise DatasetUnavailableError(
            f"tensorflow-datasets has no prepared copy of {name!r} in {builder.data_dir!r} and cannot "
            f"download it (no network). On a machine with internet run `tfds build {name} "
            "--data_dir DIR` (or `tfds.load(NAME, data_dir=DIR)`), copy DIR here and set "
            "TFDS_DATA_DIR=DIR (or pass data_dir=DIR).")
    return builder


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
            f"Classification needs at least 2 classes. Received: {len(source.class_names)} "
            f"({source.class_names})."
        )
    if source.predefined:
        indices = dict(source.predefined)
        for name, fraction in (("val", val_split), ("test", test_split)):
            if name not in indices:  # Carve the missing split from train, stratified.
                indices["train"], indices[name] = _carve(
                    source.labels, indices["train"], fraction, seed
                )
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


def targets_as_inputs(ds):
    """`(images, targets)` batches -> `((images, targets),)`: both go into `predict`, paired."""
    return ds.map(lambda x, y: ((x, y),))


def feature_dataset(features, targets, labels, *, batch_size, training=False, oversample=False, seed=0,
                    repeat=False):
    """Batches of cached backbone features, shuffled (or oversampled) as `make_dataset` does images.

    With the same seed and labels the batches hold the same examples in the same order as
    `make_dataset`'s, so training the head on features is the frozen phase, only faster.

    Args:
        features: float array `(N, D)`. From `keras_tl.core.features.extract`.
        targets: float array `(N, ...)`. The targets that went with each image.
        labels: int array `(N,)` or multi-hot `(N, C)`. For oversampling.
        batch_size: int.
        training: bool. Shuffle. Defaults to False.
        oversample: bool. Training only: draw every class equally often.
        seed: int.
        repeat: bool. Repeat forever (several cached augmented views; pass `steps_per_epoch`).
    """
    ds = tf.data.Dataset.from_tensor_slices((features, targets))  # already in memory: no cache
    ds = shuffled_batches(ds, labels, batch_size=batch_size, training=training,
                           oversample=oversample, seed=seed)
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


def scan_class_folders(path, check_file, unit="images"):
    """Scans a directory of class folders (or `train/`, `val/`, `test/` each holding them).

    Files `check_file(path)` gives a reason for (hidden, empty, corrupt, not of the modality) are
    skipped and listed in `skipped` with the reason.

    Args:
        path: str. `path/<class>/<file>` or `path/<split>/<class>/<file>`.
        check_file: callable. path -> None if usable, else the reason it is not.
        unit: str. What the files are, for messages ("images", "audio files").

    Returns:
        `(class_names, paths, labels, predefined, skipped)`.
    """
    if not os.path.isdir(path):
        raise DataError(f"Data directory not found: {path!r}. Expected a folder of class folders.")
    subdirs = sorted(d for d in _listdir(path) if os.path.isdir(os.path.join(path, d)))
    split_layout = "train" in subdirs and ("val" in subdirs or "test" in subdirs)
    roots = {s: os.path.join(path, s) for s in SPLITS if s in subdirs} if split_layout else {None: path}
    class_names = sorted(
        {
            c
            for root in roots.values()
            for c in _listdir(root)
            if os.path.isdir(os.path.join(root, c)) and not c.startswith(".")
        }
    )
    paths, labels, split_of, skipped = [], [], [], []
    for split, root in roots.items():
        for label, name in enumerate(class_names):
            folder = os.path.join(root, name)
            if not os.path.isdir(folder):
                continue
            for file in sorted(_listdir(folder)):
                full = os.path.join(folder, file)
                if os.path.isdir(full):
                    continue
                reason = _reason(check_file, full)
                if reason:
                    skipped.append((full, reason))
                    continue
                paths.append(full)
                labels.append(label)
                split_of.append(split)
    labels = np.asarray(labels, dtype=np.int64)
    present = set(labels.tolist())
    empty = [n for i, n in enumerate(class_names) if i not in present]
    for name in empty:
        skipped.append((os.path.join(path, name), f"class folder holds no readable {unit[:-1]}"))
    if empty:
        keep = [i for i, n in enumerate(class_names) if n not in empty]
        remap = {old: new for new, old in enumerate(keep)}
        labels = np.asarray([remap[int(l)] for l in labels], dtype=np.int64)
        class_names = [class_names[i] for i in keep]
    if len(paths) == 0:
        raise DataError(f"No readable {unit} found under {path!r} (skipped {len(skipped)} files).")
    predefined = None
    if split_layout:
        predefined = predefined_indices(split_of)
    return class_names, paths, labels, predefined, skipped


def _listdir(folder):
    try:
        return os.listdir(folder)
    except OSError as error:
        raise DataError(f"Cannot list {folder!r}: {error.strerror}.") from None


def _reason(check_file, path):
    """`check_file(path)`, an OS error (a symlink loop, no permission) being the reason too."""
    try:
        return check_file(path)
    except OSError as error:
        return f"unreadable: {error.strerror or error}"


CSV_FIELD_LIMIT = 64 << 20  # Characters in one CSV cell (a long text); Python's csv allows 131,072 by default.


def csv_reader(text_file):
    """`csv.DictReader` over an open text file, with cells up to `CSV_FIELD_LIMIT` characters."""
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    return csv.DictReader(text_file)


def read_manifest(path, check_file, *, unit="images", separator=";"):
    """Reads a CSV manifest: a header with `path` and `label` columns, and optionally `split`.

    Paths are relative to the CSV's folder unless absolute. A label cell holding several labels
    joined by `separator` (e.g. "sky;tree") makes the source multi-label: its labels become a
    multi-hot `(N, C)` array. `label:<head>` columns instead of `label` make it multi-task
    (`keras_tl.core.multitask`: "head:class" names, an empty cell = that head's label is missing).
    Unreadable files are skipped and reported, like `scan_class_folders`.

    Returns:
        `(class_names, paths, labels, predefined, skipped)`.
    """
    if not os.path.isfile(path):
        raise DataError(f"Manifest not found: {path!r}. Expected a CSV file with path,label columns.")
    from keras_tl.core import multitask

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # A byte-order mark is not part of the header.
            reader = csv_reader(f)
            heads = multitask.head_columns(reader.fieldnames or [], required=("path",), what="A manifest")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path!r} is not a readable CSV manifest ({error}). Expected UTF-8 text with a header "
                        "holding path and label columns.") from None
    if heads:
        for row in rows:
            row["_heads"] = multitask.row_heads(row, heads, separator=separator)
        paths, kept, predefined, skipped = _manifest_rows(path, rows, check_file, unit,
                                                          lambda row: multitask.unlabelled(row["_heads"]))
        heads = list(kept[0]["_heads"])
        class_names, labels = multitask.labels_from_columns({h: [r["_heads"][h] for r in kept] for h in heads})
        return class_names, paths, labels, predefined, skipped

    def label_set(row):
        return [l.strip() for l in (row["label"] or "").split(separator) if l.strip()]

    paths, kept, predefined, skipped = _manifest_rows(path, rows, check_file, unit,
                                                      lambda row: None if label_set(row) else "empty label")
    label_sets = [label_set(row) for row in kept]
    class_names = sorted({l for labels in label_sets for l in labels})
    index = {name: i for i, name in enumerate(class_names)}
    if any(len(labels) > 1 for labels in label_sets):
        labels = np.zeros((len(paths), len(class_names)), dtype=np.int64)
        for row, names in enumerate(label_sets):
            labels[row, [index[n] for n in names]] = 1
    else:
        labels = np.asarray([index[names[0]] for names in label_sets], dtype=np.int64)
    return class_names, paths, labels, predefined, skipped


def _manifest_rows(path, rows, check_file, unit, label_problem):
    """The usable rows of a manifest: `(paths, rows, predefined, skipped)`; a row is skipped (with its
    reason) for `label_problem(row)`, a bad split, a missing file or what `check_file` finds."""
    root = os.path.dirname(os.path.abspath(path))
    paths, kept, split_of, skipped = [], [], [], []
    for number, row in enumerate(rows, start=2):
        cell = row.get("path")
        cell = cell.strip() if isinstance(cell, str) else ""
        full = "" if not cell else cell if os.path.isabs(cell) else os.path.join(root, cell)
        split = (row.get("split") or "").strip() or None
        problem = "no path" if not cell else label_problem(row)
        if problem:
            reason = f"row {number}: {problem}"
        elif split is not None and split not in SPLITS:
            reason = f"row {number}: split must be one of {list(SPLITS)}, got {split!r}"
        elif not os.path.isfile(full):
            reason = "file not found"
        else:
            reason = _reason(check_file, full)
        if reason:
            skipped.append((full or f"{path}:{number}", reason))
            continue
        paths.append(full)
        kept.append(row)
        split_of.append(split)
    if not paths:
        raise DataError(f"No readable {unit} listed in {path!r} (skipped {len(skipped)} rows).")
    predefined = None
    if any(s is not None for s in split_of):
        if any(s is None for s in split_of):
            raise DataError(f"{path!r}: give a split for every row or for none.")
        predefined = predefined_indices(split_of)
    return paths, kept, predefined, skipped
