"""Labelled items before splitting, for every modality: `Source`, and the readers every modality's
loaders share (class folders, CSV manifests, tensorflow-datasets), each skipping and naming what it
cannot use.

A modality's data module (`keras_tl.image.data`, ...) decodes its items and builds its sources with
these; nothing here knows what an item is. Keras-free.
"""

import csv
import os
from dataclasses import dataclass, field

import numpy as np

from keras_tl.core.contract.errors import DataError
from keras_tl.core.contract.files import CSV_FIELD_LIMIT, allow_long_csv_fields  # noqa: F401
from keras_tl.core.data.splits import SPLITS, Split
from keras_tl.core.utils.network import reachable


@dataclass
class Source:
    """The labelled items of one data set, before splitting, whatever the modality.

    Attributes:
        class_names: list of str, index = label ("head:class" names for multi-task data).
        items: what the modality reads: an array (images `(N, H, W, 3)` uint8, waveforms) or a list
            (file paths, texts).
        labels: int array `(N,)`, or multi-hot `(N, C)` for multi-label and multi-task data.
        modality: str. The modality whose items these are ("image", ...): a run on this source is a
            run of that modality.
        predefined: dict split name -> indices, when the data came with its own splits.
        skipped: list of `(item, reason)` for what the reader left out.
        licence: str. The data's licence, where the loader knows it; recorded in every run's report.
    """

    class_names: list
    items: object
    labels: np.ndarray
    modality: str
    predefined: dict | None = None
    skipped: list = field(default_factory=list)
    licence: str = ""

    def as_split(self):
        return Split(self.items, self.labels)

    def __len__(self):
        return len(self.labels)


def predefined_indices(split_of):
    """Split name per image -> dict split name -> indices (only splits that occur)."""
    split_of = np.asarray(split_of, dtype=object)
    return {s: np.flatnonzero(split_of == s) for s in SPLITS if np.any(split_of == s)}


def tfds_builder(name, data_dir=None):
    """The tensorflow-datasets builder of `name`; offline and not prepared, a `DatasetUnavailableError`
    at once, saying how to prepare it on a machine with internet."""
    import tensorflow_datasets as tfds

    from keras_tl.core.contract.errors import DatasetUnavailableError

    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared() and not reachable("storage.googleapis.com"):
        raise DatasetUnavailableError(
            f"tensorflow-datasets has no prepared copy of {name!r} in {builder.data_dir!r} and cannot "
            f"download it (no network). On a machine with internet run `tfds build {name} "
            "--data_dir DIR` (or `tfds.load(NAME, data_dir=DIR)`), copy DIR here and set "
            "TFDS_DATA_DIR=DIR (or pass data_dir=DIR)."
        )
    return builder


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


def csv_reader(text_file):
    """`csv.DictReader` over an open text file, with cells up to `CSV_FIELD_LIMIT` characters."""
    allow_long_csv_fields()
    return csv.DictReader(text_file)


def read_manifest(path, check_file, *, unit="images", separator=";"):
    """Reads a CSV manifest: a header with `path` and `label` columns, and optionally `split`.

    Paths are relative to the CSV's folder unless absolute. A label cell holding several labels
    joined by `separator` (e.g. "sky;tree") makes the source multi-label: its labels become a
    multi-hot `(N, C)` array. `label:<head>` columns instead of `label` make it multi-task
    (`keras_tl.core.models.multitask`: "head:class" names, an empty cell = that head's label is missing).
    Unreadable files are skipped and reported, like `scan_class_folders`.

    Returns:
        `(class_names, paths, labels, predefined, skipped)`.
    """
    if not os.path.isfile(path):
        raise DataError(f"Manifest not found: {path!r}. Expected a CSV file with path,label columns.")
    from keras_tl.core.data import multitask_labels

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # A byte-order mark is not part of the header.
            reader = csv_reader(f)
            heads = multitask_labels.head_columns(reader.fieldnames or [], required=("path",), what="A manifest")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(
            f"{path!r} is not a readable CSV manifest ({error}). Expected UTF-8 text with a header "
            "holding path and label columns."
        ) from None
    if heads:
        for row in rows:
            row["_heads"] = multitask_labels.row_heads(row, heads, separator=separator)
        paths, kept, predefined, skipped = _manifest_rows(
            path, rows, check_file, unit, lambda row: multitask_labels.unlabelled(row["_heads"])
        )
        heads = list(kept[0]["_heads"])
        class_names, labels = multitask_labels.labels_from_columns({h: [r["_heads"][h] for r in kept] for h in heads})
        return class_names, paths, labels, predefined, skipped

    def label_set(row):
        return [l.strip() for l in (row["label"] or "").split(separator) if l.strip()]

    paths, kept, predefined, skipped = _manifest_rows(
        path, rows, check_file, unit, lambda row: None if label_set(row) else "empty label"
    )
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
