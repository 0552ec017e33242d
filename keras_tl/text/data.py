"""Text data: sources (CSV, JSONL, folders of .txt files, TFDS, Python lists) and tf.data pipelines.

A text source is a `keras_tl.core.data.Source` whose items are the texts (labels: int class indices,
or multi-hot rows for multi-label data). It splits with the same seeded stratified
`keras_tl.core.data.split_source` as every modality's. Rows that cannot be used (empty
text, bytes that are not UTF-8, a missing label) are skipped and reported with their location,
never silently dropped. Tokenization runs in tf.data through the encoder preset's preprocessor.
"""

import csv
import io
import json
import os

import numpy as np
import tensorflow as tf

from keras_tl.core import data
from keras_tl.core.contract.errors import DataError
from keras_tl.core.data import multitask_labels

TEXT_EXTENSIONS = (".txt",)


def from_texts(texts, labels, class_names=None):
    """Wraps Python lists as a source; labels are class names (str) or indices (int).

    Example:
    >>> source = keras_tl.text.data.from_texts(["good", "bad", "fine"], ["pos", "neg", "pos"])
    """
    texts = list(texts)
    labels = list(labels)
    if len(texts) != len(labels):
        raise DataError(f"`texts` and `labels` must have the same length. Received: {len(texts)} and {len(labels)}")
    rows = [
        (t, [l] if not isinstance(l, (list, tuple)) else list(l), f"item {i}")
        for i, (t, l) in enumerate(zip(texts, labels))
    ]
    return _build(rows, class_names=class_names)


def from_csv(path, *, text_column="text", label_column="label", separator=";"):
    """Reads a CSV file with a header; labels joined by `separator` make a multi-label row.

    An optional `split` column (train/val/test) keeps predefined splits. `label:<head>` columns
    instead of `label` (`<label_column>:<head>`) make a multi-task source (`keras_tl.core.models.multitask`:
    "head:class" names; an empty cell means that head's label is missing for the row).
    """
    rows, skipped, splits = [], [], []
    with open(path, "rb") as f:
        raw_lines = f.read().split(b"\n")
    # Decode line by line, so one bad line is skipped and reported, not the whole file.
    decoded = []
    for number, raw in enumerate(raw_lines, 1):
        try:
            decoded.append(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as error:
            skipped.append((f"{path}:{number}", f"not UTF-8 ({error.reason} at byte {error.start})"))
            decoded.append("")  # A blank line keeps the reader's line numbers those of the file.
    reader = data.csv_reader(io.StringIO("\n".join(decoded)))
    try:
        header = reader.fieldnames or []
        heads = multitask_labels.head_columns(
            header,
            required=(text_column,),
            label_column=label_column,
            what=repr(path),
            hint=". Set `text_column` / `label_column`.",
        )
        for row in reader:
            where = f"{path}:{reader.line_num}"
            rows.append((row.get(text_column), _row_labels(row, heads, label_column, separator), where))
            splits.append((row.get("split") or "").strip().lower())
    except csv.Error as error:
        raise DataError(f"{path!r} is not a readable CSV file (line {reader.line_num}: {error}).") from None
    return _build(rows, skipped, splits=splits if "split" in header else None)


def _row_labels(row, heads, label_column, separator):
    """A row's labels: a list of class names, or for a multi-task file `{head: class(es) or None}`."""
    if heads:
        return multitask_labels.row_heads(row, heads, label_column=label_column, separator=separator)
    value = row.get(label_column)
    return value if isinstance(value, list) else _labels(value, separator)


def from_jsonl(path, *, text_column="text", label_column="label"):
    """Reads JSON Lines: one object per line with a text and a label (a string, or a list of them).

    `"label:<head>"` keys instead of `"label"` make a multi-task source, as in `from_csv`.
    """
    rows, skipped, splits = [], [], []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            where = f"{path}:{number}"
            if not raw.strip():
                continue
            try:
                item = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                skipped.append((where, f"not UTF-8 ({error.reason} at byte {error.start})"))
                continue
            except json.JSONDecodeError as error:
                skipped.append((where, f"not JSON ({error.msg})"))
                continue
            if not isinstance(item, dict):
                skipped.append((where, f"expected a JSON object, got {type(item).__name__}"))
                continue
            heads = [k for k in item if str(k).startswith(f"{label_column}:")]
            rows.append((item.get(text_column), _row_labels(item, heads, label_column, ";"), where))
            splits.append(str(item.get("split") or "").strip().lower())
    return _build(rows, skipped, splits=splits if any(splits) else None)


def from_folder(path):
    """Reads class folders of `.txt` files (one example per file); train/val/test subfolders
    holding class folders keep predefined splits."""
    if not os.path.isdir(path):
        raise DataError(f"Text folder not found: {path!r}. Expected a folder of class folders of .txt files.")
    entries = sorted(e for e in os.listdir(path) if os.path.isdir(os.path.join(path, e)) and not e.startswith("."))
    predefined = {e.lower() for e in entries} >= {"train"} and all(
        e.lower() in ("train", "val", "validation", "test") for e in entries
    )
    parts = [(e, {"validation": "val"}.get(e.lower(), e.lower())) for e in entries] if predefined else [("", "")]
    rows, skipped, splits = [], [], []
    for sub, split in parts:
        root = os.path.join(path, sub)
        for label in sorted(
            d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith(".")
        ):
            folder = os.path.join(root, label)
            for name in sorted(os.listdir(folder)):
                file = os.path.join(folder, name)
                if name.startswith(".") or not name.lower().endswith(TEXT_EXTENSIONS):
                    skipped.append((file, "hidden file" if name.startswith(".") else "not a .txt file"))
                    continue
                with open(file, "rb") as f:
                    raw = f.read()
                try:
                    text = raw.decode("utf-8-sig")
                except UnicodeDecodeError as error:
                    skipped.append((file, f"not UTF-8 ({error.reason} at byte {error.start})"))
                    continue
                rows.append((text, [label], file))
                splits.append(split)
    return _build(rows, skipped, splits=splits if predefined else None)


def from_tfds(name, *, split=None, data_dir=None, text_key="text", label_key="label"):
    """Loads a tensorflow-datasets text classification dataset (e.g. "imdb_reviews", "ag_news_subset").

    Offline and not prepared, it fails at once with how to prepare it elsewhere.
    """
    import tensorflow_datasets as tfds

    builder = data.tfds_builder(name, data_dir)
    feature = builder.info.features[label_key]
    class_names = [str(c) for c in (getattr(feature, "names", None) or range(feature.num_classes))]
    rows, skipped, splits = [], [], []
    for part in [split] if split else list(builder.info.splits):
        for i, example in enumerate(tfds.as_numpy(tfds.load(name, split=part, data_dir=data_dir))):
            where = f"tfds {name}[{part}] #{i}"
            try:
                text = example[text_key].decode("utf-8")
            except UnicodeDecodeError as error:
                skipped.append((where, f"not UTF-8 ({error.reason} at byte {error.start})"))
                continue
            rows.append((text, [int(example[label_key])], where))
            splits.append({"validation": "val"}.get(part, part))
    return _build(
        rows, skipped, class_names=class_names, splits=splits if split is None and "train" in splits else None
    )


def load_text_source(spec, *, text_column="text", label_column="label"):
    """A source from a config's `data`: `.csv`, `.jsonl`, a folder of class folders, or "tfds:NAME[:SPLIT]"."""
    if spec.startswith("tfds:"):
        _, name, *rest = spec.split(":", 2)
        return from_tfds(name, split=rest[0] if rest else None, text_key=text_column, label_key=label_column)
    lower = spec.lower()
    if lower.endswith(".csv"):
        return from_csv(spec, text_column=text_column, label_column=label_column)
    if lower.endswith((".jsonl", ".ndjson")):
        return from_jsonl(spec, text_column=text_column, label_column=label_column)
    return from_folder(spec)


def make_text_dataset(
    split,
    preprocessor,
    *,
    training=False,
    cache=True,
    trim=False,
    **batching,
):
    """The tf.data pipeline of one split: `(token dict, float targets)` batches.

    Strings are batched, then tokenized by the preset's preprocessor in parallel (its tf.text ops
    run in the tf.data graph); evaluation splits are cached after tokenization. Training batches
    are reshuffled every epoch (seeded) or drawn class-balanced (`oversample`). With `trim`, each
    batch's token tensors are cut after its longest row (rounded up to a multiple of
    `TRIM_MULTIPLE`, so few shapes are traced): only padding goes, and an encoder with an attention
    mask gives the same outputs on fewer positions (`TextModality.feature_pass`). `**batching`:
    `batch_size`, `num_classes`, `problem`, `oversample`, `seed`
    (`keras_tl.core.data.pipelines.labelled_batches`).
    """
    ds = data.labelled_batches(tf.constant(list(split.items), tf.string), split.labels, training=training, **batching)
    ds = ds.map(lambda x, y: (preprocessor(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    if trim:
        ds = ds.map(lambda x, y: (_trimmed(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    if cache and not training:
        ds = ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE)


TRIM_MULTIPLE = 8


def _trimmed(tokens):
    """A batch's token dict without the columns after its last real token (left padding: none go)."""
    used = tf.reduce_any(tf.cast(tokens["padding_mask"], tf.bool), axis=0)
    last = tf.cast(tf.reduce_max(tf.where(used)), tf.int32) + 1
    width = tf.shape(tokens["padding_mask"])[1]
    keep = tf.minimum(width, (last + TRIM_MULTIPLE - 1) // TRIM_MULTIPLE * TRIM_MULTIPLE)
    return {k: v[:, :keep] for k, v in tokens.items()}


def _labels(value, separator=";"):
    if value is None:
        return []
    return [part.strip() for part in str(value).split(separator) if part.strip()]


def _build(rows, skipped=None, *, class_names=None, splits=None):
    """Rows of `(text, [labels], location)` -> a text source; unusable rows go to `skipped`."""
    skipped = list(skipped or [])
    kept, kept_splits = [], []
    for i, (text, labels, where) in enumerate(rows):
        if not isinstance(text, str) or not text.strip():
            skipped.append(
                (where, "empty text" if not text or isinstance(text, str) else f"text is {type(text).__name__}")
            )
            continue
        problem = multitask_labels.unlabelled(labels) if isinstance(labels, dict) else None if labels else "no label"
        if problem:
            skipped.append((where, problem))
            continue
        kept.append(
            (
                text.strip(),
                labels
                if isinstance(labels, dict)
                else [str(l) if not isinstance(l, (int, np.integer)) else l for l in labels],
            )
        )
        if splits is not None:
            kept_splits.append(splits[i])
    if not kept:
        raise DataError(f"No usable examples: all {len(rows)} rows were skipped ({skipped[:3]}...).")
    kinds = {isinstance(labels, dict) for _, labels in kept}
    if kinds == {True, False}:
        raise DataError(
            "Some rows have a 'label' and others 'label:<head>' labels; a source is either single-task or multi-task."
        )
    if kinds == {True}:  # label:<head> columns: a multi-task source
        heads = list(dict.fromkeys(head for _, labels in kept for head in labels))
        class_names, labels = multitask_labels.labels_from_columns(
            {head: [row.get(head) for _, row in kept] for head in heads}
        )
        return _with_splits(
            data.Source(class_names, [t for t, _ in kept], labels, "text", skipped=skipped), kept_splits
        )
    multilabel = any(len(labels) > 1 for _, labels in kept)
    if class_names is None:
        values = {l for _, labels in kept for l in labels}
        if all(isinstance(v, (int, np.integer)) for v in values):
            class_names = [str(i) for i in range(int(max(values)) + 1)]
        else:
            class_names = sorted(str(v) for v in values)
    index = {name: i for i, name in enumerate(class_names)}

    def position(label):
        if isinstance(label, (int, np.integer)):
            if not 0 <= label < len(class_names):
                raise DataError(f"Label {label} is out of range [0, {len(class_names)}).")
            return int(label)
        return index[label]

    if multilabel:
        labels = np.zeros((len(kept), len(class_names)), np.int64)
        for row, (_, names) in enumerate(kept):
            labels[row, [position(n) for n in names]] = 1
    else:
        labels = np.asarray([position(names[0]) for _, names in kept], np.int64)
    return _with_splits(
        data.Source(list(class_names), [t for t, _ in kept], labels, "text", skipped=skipped), kept_splits
    )


def _with_splits(source, kept_splits):
    """Keeps the rows' own train/val/test column as predefined splits (when there is a train split)."""
    if kept_splits and {"train"} <= set(kept_splits):
        unknown = sorted(set(kept_splits) - set(data.SPLITS))
        if unknown:
            raise DataError(f"Unknown split names {unknown}. Allowed: {list(data.SPLITS)}")
        source.predefined = {s: np.flatnonzero(np.asarray(kept_splits) == s) for s in data.SPLITS if s in kept_splits}
    return source
