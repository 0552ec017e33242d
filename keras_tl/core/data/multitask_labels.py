"""Multi-task labels: "head:class" class names and 0/1 rows, the data side of several heads.

A multi-task source looks like multi-label data with a block structure: its class names are
"head:class" (`grade:1/3`, `cell_type:mono`), grouped by head, and its labels are 0/1 rows; a block
of zeros means "this head's label is missing" for that row. A head is single-label (at most one 1
in its block) unless some row gives it several classes: then it is multi-label. Splitting,
batching and caching features need nothing more; the model side (heads, loss, metrics) is
`keras_tl.core.models.multitask`.

Where the labels come from: `labels_from_columns({head: per-example classes})` in Python, a CSV
manifest with `label:<head>` columns (`keras_tl.core.data.read_manifest`; "a;b" in a cell gives the
row two classes of that head), or a loader (`keras_tl.datasets.load_elpv(labels="multitask")`).
"""

import re

import numpy as np

from keras_tl.core.contract.errors import ConfigError

SEPARATOR = ":"
HEAD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_head_name(name):
    if not isinstance(name, str) or not HEAD_NAME.match(name) or name == "val" or name.startswith("val_"):
        raise ConfigError(
            f"A head name must be an identifier (letters, digits, '_'; not starting with a digit) and not "
            f"'val' or 'val_...' (Keras' validation logs), since it names a layer, a log and an export "
            f"output. Received: {name!r}"
        )
    return name


def head_columns(columns, *, required=(), label_column="label", what="A table", hint=""):
    """The `<label_column>:<head>` columns of a table's header (none: a single-task table).

    One check for every reader (CSV manifests, text CSV): raises, naming the columns received, when a
    `required` column is missing, when there is neither `label_column` nor any `label:<head>`
    column, or when there are both kinds.
    """
    columns = list(columns)
    heads = [c for c in columns if str(c).startswith(f"{label_column}{SEPARATOR}")]
    if any(c not in columns for c in required) or (label_column not in columns and not heads):
        need = " and ".join(repr(c) for c in (*required, label_column))
        raise ConfigError(
            f"{what} needs {need} columns (or '{label_column}:<head>' columns, one per head of a "
            f"multi-task run). Received columns: {columns}{hint}"
        )
    if heads and label_column in columns:
        raise ConfigError(
            f"{what} has either a {label_column!r} column or '{label_column}:<head>' columns, not "
            f"both. Received columns: {columns}"
        )
    return heads


def row_heads(row, heads, *, label_column="label", separator=";"):
    """One row's `{head: class, [classes] or None}` from its `label:<head>` cells: empty, that label
    is missing; `separator`-joined classes (`"crack;finger"`) or a JSON list, a multi-label head's classes."""
    labels = {}
    for column in heads:
        value = row.get(column)
        parts = value if isinstance(value, (list, tuple)) else ("" if value is None else str(value)).split(separator)
        parts = [str(p).strip() for p in parts if str(p).strip()]
        labels[column[len(label_column) + 1 :]] = (parts[0] if len(parts) == 1 else parts) or None
    return labels


def unlabelled(labels):
    """The skip reason of a row whose `{head: class or None}` has no label at all, else None."""
    return None if any(labels.values()) else f"no label in any of {list(labels)}"


def labels_from_columns(columns):
    """Per-head label columns -> `(class_names, labels)` of a multi-task source.

    Args:
        columns: dict `{head name: sequence of class names}`, one entry per example in every
            column; None or "" marks a missing label of that head, a list of classes several
            labels of one example (which makes that head multi-label).

    Returns:
        `class_names`: "head:class" strings, heads in `columns`' order, classes sorted;
        `labels`: int array `(N, C)` of 0/1; a block of zeros where a head's label is missing.

    Example:
    >>> names, labels = labels_from_columns({"grade": ["0", "1", None], "cell_type": ["mono", "poly", "poly"]})
    >>> names
    ['grade:0', 'grade:1', 'cell_type:mono', 'cell_type:poly']
    """
    if not isinstance(columns, dict) or len(columns) < 2:
        raise ConfigError(
            f"A multi-task source needs at least 2 heads ({{head: labels}}). Received: "
            f"{list(columns) if isinstance(columns, dict) else type(columns).__name__}"
        )
    lengths = {head: len(values) for head, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ConfigError(f"Every head needs one label (or None) per example. Received lengths: {lengths}")
    class_names, blocks = [], []
    for head, values in columns.items():
        check_head_name(head)
        values = [
            {str(c).strip() for c in v} - {""}
            if isinstance(v, (list, tuple, set))
            else {str(v).strip()} - {""}
            if v is not None
            else set()
            for v in values
        ]
        classes = sorted(set().union(*values))
        if len(classes) < 2:
            raise ConfigError(f"Head {head!r} needs at least 2 classes. Received: {classes}")
        class_names += [f"{head}{SEPARATOR}{c}" for c in classes]
        index = {c: i for i, c in enumerate(classes)}
        block = np.zeros((len(values), len(classes)), np.int64)
        for row, value in enumerate(values):
            block[row, [index[c] for c in value]] = 1
        blocks.append(block)
    labels = np.concatenate(blocks, axis=1)
    unlabelled = np.flatnonzero(labels.sum(axis=1) == 0)
    if len(unlabelled):
        raise ConfigError(
            f"{len(unlabelled)} example(s) have no label for any head (first: row {unlabelled[0]}); "
            "drop them or label at least one head."
        )
    return class_names, labels


def heads_of(class_names):
    """ "head:class" names -> `[(head, [classes], start, stop)]` in order; raises unless every name is
    head-qualified, heads are contiguous, and there are at least 2 heads of at least 2 classes."""
    heads = []
    for i, name in enumerate(class_names):
        head, sep, cls = str(name).partition(SEPARATOR)
        if not sep or not cls:
            raise ConfigError(f"Multi-task class names are 'head:class'. Received: {name!r}")
        check_head_name(head)
        if heads and heads[-1][0] == head:
            if cls in heads[-1][1]:
                raise ConfigError(f"Head {head!r} names class {cls!r} twice in class_names.")
            heads[-1][1].append(cls)
            heads[-1][3] = i + 1
        elif any(h[0] == head for h in heads):
            raise ConfigError(f"The classes of head {head!r} must be contiguous in class_names.")
        else:
            heads.append([head, [cls], i, i + 1])
    if len(heads) < 2 or any(len(h[1]) < 2 for h in heads):
        raise ConfigError(
            f"A multi-task source needs at least 2 heads of at least 2 classes. Received: "
            f"{[(h[0], h[1]) for h in heads]}"
        )
    return [tuple(h) for h in heads]


def check_every_head_labelled(class_names, labels, split="validation"):
    """Raises unless every head has at least one labelled row in `split`'s labels: a head without one has
    no accuracy to measure there (Keras reports 0) and would pull down the mean that `monitor` reads."""
    labels = np.asarray(labels)
    missing = [head for head, _, start, stop in heads_of(class_names) if not labels[:, start:stop].any()]
    if missing:
        raise ConfigError(
            f"Head(s) {missing} have no labelled row in the {split} split: their accuracy cannot be measured "
            f"there. Label some {split} rows of each head, or keep only the labelled heads with --head-weights."
        )


def are_head_names(class_names):
    """True for "head:class" names of 2+ heads (`heads_of` accepts them)."""
    if not all(SEPARATOR in str(n) for n in class_names):
        return False
    try:
        heads_of(class_names)
    except ValueError:
        return False
    return True


def looks_multitask(class_names, labels):
    """True for multi-task data: 2-D 0/1 labels and "head:class" names of 2+ heads."""
    labels = np.asarray(labels)
    return labels.ndim == 2 and are_head_names(class_names) and bool(np.isin(labels, (0, 1)).all())


def kinds_for(problem, class_names, labels):
    """A multi-task source's `head_kinds` (from all of `labels`, so every model built on it has the
    same heads); None for any other problem."""
    return head_kinds(class_names, labels) if problem == "multitask" else None


def head_kinds(class_names, labels):
    """`{head: "multilabel" or "multiclass"}`: multi-label where some row has several classes of the head."""
    labels = np.asarray(labels)
    return {
        head: "multilabel" if len(labels) and labels[:, start:stop].sum(axis=1).max() > 1 else "multiclass"
        for head, _, start, stop in heads_of(class_names)
    }


def select(class_names, labels, tasks):
    """Keeps the heads `tasks` (the config's `head_weights`) names (dict or list; all when None); raises naming the available heads."""
    heads = heads_of(class_names)
    if not tasks:
        return list(class_names), np.asarray(labels)
    available = [h[0] for h in heads]
    unknown = [t for t in tasks if t not in available]
    if unknown:
        raise ConfigError(
            f"`head_weights` names heads the data does not have: {unknown}. The data's heads: {available}"
        )
    keep = [h for h in heads if h[0] in tasks]
    if len(keep) < 2:
        raise ConfigError(
            f"`head_weights` must keep at least 2 heads for multi-task training (train one head as a "
            f"single-label run instead). Received: {list(tasks)}"
        )
    columns = np.concatenate([np.arange(start, stop) for _, _, start, stop in keep])
    labels = np.asarray(labels)[:, columns]
    rows = labels.sum(axis=1) > 0
    if not rows.all():
        raise ConfigError(f"{int((~rows).sum())} example(s) have no label for the heads {list(tasks)}.")
    return [class_names[i] for i in columns], labels


def head_labels(labels, class_names):
    """0/1 rows -> `{head: int labels (N,)}` (a multi-label head: its first class), -1 where a head's
    label is missing."""
    labels = np.asarray(labels)
    result = {}
    for head, _, start, stop in heads_of(class_names):
        block = labels[:, start:stop]
        result[head] = np.where(block.sum(axis=1) > 0, block.argmax(axis=1), -1)
    return result


def head_probabilities(probabilities, class_names):
    """Concatenated probabilities `(N, C)` -> `{head: (N, classes of head)}`."""
    probabilities = np.asarray(probabilities)
    return {head: probabilities[:, start:stop] for head, _, start, stop in heads_of(class_names)}


def class_weights(labels, class_names, kinds=None):
    """ "Balanced" weights per softmax head, `n / (k * count)` over the rows that label the head:
    `{head: [weight of each class]}` (a class absent from the rows gets 0); a multi-label head
    (`kinds`) is left unweighted, as single-task multi-label runs are."""
    result = {}
    for head, classes, start, stop in heads_of(class_names):
        if (kinds or {}).get(head) == "multilabel":
            continue
        counts = np.asarray(labels)[:, start:stop].sum(axis=0).astype(np.float64)
        present = counts > 0
        weights = np.zeros(len(classes))
        weights[present] = counts.sum() / (present.sum() * counts[present])
        result[head] = weights.tolist()
    return result
