"""Image sources, stratified splits and the tf.data pipeline.

A source is either a directory of class folders (files are scanned first: hidden, empty, corrupt
and non-image files are skipped and reported, never a crash mid-epoch) or numpy arrays. Splits are
stratified and seeded. The pipeline decodes, resizes, caches, shuffles, batches, augments (training
split only) and prefetches; images travel as uint8 and the model does its own preprocessing.
"""

import math
import os
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from keras_tl import augment as augment_lib
from keras_tl.config import resolve_augment

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """Images of one split: a uint8 array `(N, H, W, 3)` or a list of file paths, plus labels."""

    images: object
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)

    def subset(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        images = (
            self.images[indices]
            if isinstance(self.images, np.ndarray)
            else [self.images[i] for i in indices]
        )
        return Split(images, self.labels[indices])


@dataclass
class ImageSource:
    """Where the images come from, before splitting.

    Attributes:
        class_names: list of str, index = label.
        images: a uint8 array `(N, H, W, 3)` or a list of file paths.
        labels: int array `(N,)`.
        predefined: dict split name -> indices, when the directory already had train/val/test.
        skipped: list of `(path, reason)` for files left out by the scan.
        licence: str. The data's licence, where a loader knows it; recorded in every run's report.
    """

    class_names: list
    images: object
    labels: np.ndarray
    predefined: dict | None = None
    skipped: list = field(default_factory=list)
    licence: str = ""

    def as_split(self):
        return Split(self.images, self.labels)


def from_arrays(images, labels, class_names=None):
    """Wraps numpy arrays as a source.

    Args:
        images: array `(N, H, W)`, `(N, H, W, 1)` or `(N, H, W, 3)`; uint8 in [0, 255] or float
            in [0, 255].
        labels: int array `(N,)` of class indices.
        class_names: list of str. Defaults to "0", "1", ...

    Example:
    >>> source = keras_tl.data.from_arrays(np.zeros((4, 32, 32, 3), "uint8"), [0, 1, 0, 1])
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            "`images` must have shape (N, H, W), (N, H, W, 1) or (N, H, W, 3). "
            f"Received: shape={images.shape}"
        )
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if images.dtype != np.uint8:
        images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"`labels` must be {len(images)} integer class indices. "
            f"Received: shape={labels.shape}, dtype={labels.dtype}"
        )
    if class_names is None:
        class_names = [str(i) for i in range(int(labels.max()) + 1)]
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise ValueError(
            f"`labels` must lie in [0, {len(class_names)}). "
            f"Received: min={labels.min()}, max={labels.max()}"
        )
    return ImageSource(list(class_names), images, labels.astype(np.int64))


def check_image_file(path):
    """Returns None if `path` is a readable image, else the reason it is not."""
    if os.path.basename(path).startswith("."):
        return "hidden file"
    if not path.lower().endswith(IMAGE_EXTENSIONS):
        return f"not an image extension (expected one of {', '.join(IMAGE_EXTENSIONS)})"
    if os.path.getsize(path) == 0:
        return "zero-byte file"
    try:
        with Image.open(path) as image:
            image.load()  # Decodes the pixels: catches truncated files that verify() lets through.
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return f"unreadable image: {error}"
    return None


def _predefined(split_of):
    """Split name per image -> dict split name -> indices (only splits that occur)."""
    split_of = np.asarray(split_of, dtype=object)
    return {s: np.flatnonzero(split_of == s) for s in SPLITS if np.any(split_of == s)}


def from_directory(path):
    """Scans a directory of class folders (or `train/`, `val/`, `test/` each holding them).

    Hidden, zero-byte, truncated, corrupt and non-image files are skipped and listed in
    `source.skipped` with the reason.

    Args:
        path: str. `path/<class>/<image>` or `path/<split>/<class>/<image>`.

    Returns:
        An `ImageSource`.
    """
    if not os.path.isdir(path):
        raise ValueError(f"Data directory not found: {path!r}. Expected a folder of class folders.")
    subdirs = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    split_layout = "train" in subdirs and ("val" in subdirs or "test" in subdirs)
    roots = {s: os.path.join(path, s) for s in SPLITS if s in subdirs} if split_layout else {None: path}
    class_names = sorted(
        {
            c
            for root in roots.values()
            for c in os.listdir(root)
            if os.path.isdir(os.path.join(root, c)) and not c.startswith(".")
        }
    )
    paths, labels, split_of, skipped = [], [], [], []
    for split, root in roots.items():
        for label, name in enumerate(class_names):
            folder = os.path.join(root, name)
            if not os.path.isdir(folder):
                continue
            for file in sorted(os.listdir(folder)):
                full = os.path.join(folder, file)
                if os.path.isdir(full):
                    continue
                reason = check_image_file(full)
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
        skipped.append((os.path.join(path, name), "class folder holds no readable image"))
    if empty:
        keep = [i for i, n in enumerate(class_names) if n not in empty]
        remap = {old: new for new, old in enumerate(keep)}
        labels = np.asarray([remap[int(l)] for l in labels], dtype=np.int64)
        class_names = [class_names[i] for i in keep]
    if len(paths) == 0:
        raise ValueError(f"No readable images found under {path!r} (skipped {len(skipped)} files).")
    predefined = None
    if split_layout:
        predefined = _predefined(split_of)
    return ImageSource(class_names, paths, labels, predefined, skipped)


def from_manifest(path, *, separator=";"):
    """Reads a CSV manifest: a header with `path` and `label` columns, and optionally `split`.

    Paths are relative to the CSV's folder unless absolute. A label cell holding several labels
    joined by `separator` (e.g. "sky;tree") makes the source multi-label: its labels become a
    multi-hot `(N, C)` array. Unreadable files are skipped and reported, like `from_directory`.

    Example:
    >>> source = keras_tl.data.from_manifest("photos/labels.csv")
    """
    import csv

    if not os.path.isfile(path):
        raise ValueError(f"Manifest not found: {path!r}. Expected a CSV file with path,label columns.")
    root = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if "path" not in columns or "label" not in columns:
            raise ValueError(f"A manifest needs 'path' and 'label' columns. Received columns: {columns}")
        rows = list(reader)
    paths, label_sets, split_of, skipped = [], [], [], []
    for number, row in enumerate(rows, start=2):
        full = row["path"] if os.path.isabs(row["path"]) else os.path.join(root, row["path"])
        labels = [l.strip() for l in (row["label"] or "").split(separator) if l.strip()]
        split = (row.get("split") or "").strip() or None
        reason = None
        if not labels:
            reason = f"row {number}: empty label"
        elif split is not None and split not in SPLITS:
            reason = f"row {number}: split must be one of {list(SPLITS)}, got {split!r}"
        elif not os.path.isfile(full):
            reason = "file not found"
        else:
            reason = check_image_file(full)
        if reason:
            skipped.append((full, reason))
            continue
        paths.append(full)
        label_sets.append(labels)
        split_of.append(split)
    if not paths:
        raise ValueError(f"No readable images listed in {path!r} (skipped {len(skipped)} rows).")
    class_names = sorted({l for labels in label_sets for l in labels})
    index = {name: i for i, name in enumerate(class_names)}
    if any(len(labels) > 1 for labels in label_sets):
        labels = np.zeros((len(paths), len(class_names)), dtype=np.int64)
        for row, names in enumerate(label_sets):
            labels[row, [index[n] for n in names]] = 1
    else:
        labels = np.asarray([index[names[0]] for names in label_sets], dtype=np.int64)
    predefined = None
    if any(s is not None for s in split_of):
        if any(s is None for s in split_of):
            raise ValueError(f"{path!r}: give a split for every row or for none.")
        predefined = _predefined(split_of)
    return ImageSource(class_names, paths, labels, predefined, skipped)


def from_tfds(name, *, split=None, data_dir=None, image_key="image", label_key="label"):
    """Loads a tensorflow-datasets image classification dataset into memory as a source.

    Uses `tfds.load` (downloads on first use and caches in `data_dir`, as TFDS always does).
    Images are decoded to uint8 RGB arrays, so this suits datasets that fit in memory.

    Args:
        name: str. A TFDS name, e.g. "tf_flowers" or "cifar10".
        split: str. A TFDS split ("train", "train[:10%]"); None takes every split and keeps
            TFDS' own "train"/"validation"/"test" as predefined splits.
        data_dir: str. TFDS data directory. Defaults to TFDS' default.

    Example:
    >>> source = keras_tl.data.from_tfds("tf_flowers")
    """
    import tensorflow_datasets as tfds
    from tqdm import tqdm

    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared() and not _reachable("storage.googleapis.com"):
        raise DatasetUnavailableError(
            f"tensorflow-datasets has no prepared copy of {name!r} in {builder.data_dir!r} and cannot "
            f"download it (no network). On a machine with internet run `tfds build {name} "
            "--data_dir DIR` (or `tfds.load(NAME, data_dir=DIR)`), copy DIR here and set "
            "TFDS_DATA_DIR=DIR (or pass data_dir=DIR)."
        )
    label_feature = builder.info.features[label_key]
    class_names = list(getattr(label_feature, "names", None) or range(label_feature.num_classes))
    splits = [split] if split else (list(builder.info.splits) or ["train"])
    images, labels, split_of = [], [], []
    for part in splits:
        ds = tfds.load(name, split=part, data_dir=data_dir)
        for example in tqdm(tfds.as_numpy(ds), desc=f"tfds {name}[{part}]", unit="img"):
            image = example[image_key]
            if image.ndim == 2 or image.shape[-1] == 1:
                image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=-1)
            images.append(image[..., :3])
            labels.append(int(example[label_key]))
            split_of.append({"validation": "val"}.get(part, part))
    shapes = {i.shape for i in images}
    if len(shapes) != 1:
        side = max(max(s[0], s[1]) for s in shapes)  # Same size for one array; the pipeline resizes again.
        images = [tf.image.resize(i, (side, side)).numpy().round().clip(0, 255).astype(np.uint8) for i in images]
    source = from_arrays(np.stack(images), np.asarray(labels, dtype=np.int64), [str(c) for c in class_names])
    if split is None and {"train"} <= set(split_of) and len(set(split_of)) > 1:
        source.predefined = _predefined(split_of)
    return source


class DatasetUnavailableError(RuntimeError):
    """A dataset is neither on disk nor downloadable here; the message says how to supply it."""


def _reachable(host, port=443, timeout=3.0):
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_source(spec):
    """A source from a config's `data` string: a class-folder directory, a `.csv` manifest, or
    "tfds:NAME[:SPLIT]"."""
    if spec.startswith("tfds:"):
        _, name, *rest = spec.split(":", 2)
        return from_tfds(name, split=rest[0] if rest else None)
    if spec.lower().endswith(".csv"):
        return from_manifest(spec)
    return from_directory(spec)


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
            raise ValueError(
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
        raise ValueError("`labels_per_class` applies to single-label data only.")
    if len(source.class_names) < 2:
        raise ValueError(
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


def _decode_file(path, image_size):
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return _resize(image, image_size)


def _resize(image, image_size):
    if image.shape[0] == image_size and image.shape[1] == image_size:
        return image
    resized = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def encode_labels(labels, num_classes, task):
    """Labels -> float targets: one-hot (multiclass), `(N, 1)` (binary), multi-hot as is (multilabel)."""
    labels = np.asarray(labels)
    if task == "multilabel":
        return labels.astype(np.float32)
    if task == "binary":
        return labels.astype(np.float32)[:, None]
    return np.eye(num_classes, dtype=np.float32)[labels]


def make_dataset(
    split,
    *,
    image_size,
    batch_size,
    num_classes,
    task="multiclass",
    training=False,
    augment="none",
    augment_params=None,
    oversample=False,
    cache="memory",
    seed=0,
    augment_on="data",
):
    """Builds the tf.data pipeline of one split: `(uint8 images (B, S, S, 3), float targets)`.

    Decoding and resizing run in parallel (AUTOTUNE); the decoded uint8 images are cached (in
    memory, or in a file when `cache` is a path) before shuffling and augmentation, which happen
    only when `training=True`; batches are prefetched.

    Args:
        split: Split. Arrays or file paths, and labels.
        image_size: int. Side the images are resized to.
        batch_size: int.
        num_classes: int.
        task: str. "multiclass", "binary" or "multilabel" (labels `(N, C)` multi-hot).
        training: bool. Shuffle and augment. Defaults to False.
        augment: str. An `augment` preset ("none", "light", "standard", "strong").
        augment_params: dict. Overrides of the preset's parameters.
        oversample: bool. Training only: draw every class equally often (single-label tasks).
        cache: str or bool. "memory" (or True), "none" (or False), or a file path prefix.
        seed: int.
        augment_on: str. "data" applies every augmentation here; "model" leaves the per-image
            layers to the model (`keras_tl.model.build_model(augmentation=...)`) and applies only
            MixUp/CutMix, which need the targets. Defaults to "data".

    Images stay uint8 up to the model, which casts them on the device: a quarter of the bytes
    of float32 to move per batch.
    """
    targets = encode_labels(split.labels, num_classes, task)
    autotune = tf.data.AUTOTUNE
    if isinstance(split.images, np.ndarray):
        ds = tf.data.Dataset.from_tensor_slices((split.images, targets))
        ds = ds.map(lambda x, y: (_resize(x, image_size), y), num_parallel_calls=autotune)
    else:
        ds = tf.data.Dataset.from_tensor_slices((list(split.images), targets))
        ds = ds.map(lambda p, y: (_decode_file(p, image_size), y), num_parallel_calls=autotune)
    if cache is True or cache == "memory":
        ds = ds.cache()
    elif cache not in (False, None, "none"):
        ds = ds.cache(str(cache))
    ds = _shuffled_batches(ds, split.labels, batch_size=batch_size, training=training,
                           oversample=oversample, seed=seed)
    params = resolve_augment(augment, augment_params)
    if augment_on == "model":
        params = augment_lib.mixing_only(params)
    if training and not augment_lib.is_identity(params):
        ds = ds.map(augment_lib.batch_function(params, image_size, seed), num_parallel_calls=autotune)
    return ds.prefetch(autotune)


def _shuffled_batches(ds, labels, *, batch_size, training, oversample, seed):
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
        features: float array `(N, D)`. From `keras_tl.features.extract`.
        targets: float array `(N, ...)`. The targets that went with each image.
        labels: int array `(N,)` or multi-hot `(N, C)`. For oversampling.
        batch_size: int.
        training: bool. Shuffle. Defaults to False.
        oversample: bool. Training only: draw every class equally often.
        seed: int.
        repeat: bool. Repeat forever (several cached augmented views; pass `steps_per_epoch`).
    """
    ds = tf.data.Dataset.from_tensor_slices((features, targets))  # already in memory: no cache
    ds = _shuffled_batches(ds, labels, batch_size=batch_size, training=training,
                           oversample=oversample, seed=seed)
    if repeat:
        ds = ds.repeat()
    return ds.prefetch(tf.data.AUTOTUNE)


def _oversampled(ds, labels, seed):
    """Every class drawn with equal probability; one epoch = as many images as the split has."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError("Oversampling needs single-label data; use class weights for multi-label.")
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


def steps_per_epoch(split, batch_size):
    return max(1, math.ceil(len(split) / batch_size))
