"""The operating point of a binary model: the decision threshold on one class's probability, chosen on
the validation split for a recall or a precision the user names, and measured on the test split.

As MediaPipe Model Maker's `desired_recalls` / `desired_precisions`, but the chosen threshold travels
with the model: the run keeps it (`operating_point.json`), `predict` and the SavedModel's `labels`
output apply it, and every export's model card says how a runtime applies it. For ELPV, "miss at most
5% of defective cells" is `target_recall=0.95, positive_class="defective"`.

Keras-free (numpy only).
"""

import math

import numpy as np

from keras_tl.core.contract.errors import ConfigError

FILE = "operating_point.json"


def requested(config):
    """True when `config` names a target recall or precision."""
    return config.target_recall is not None or config.target_precision is not None


def check(config, class_names, problem):
    """Raises `ConfigError` when `config`'s target cannot apply to the data; before anything is written
    (after `check_config`, which `keras_tl.workflow.checks.check_config` runs before the data loads)."""
    if not requested(config):
        return
    if problem != "binary":
        hint = " (two classes: use problem 'binary' or 'auto')" if len(class_names) == 2 else ""
        raise ConfigError(
            "`target_recall` / `target_precision` choose the decision threshold of a binary model (two "
            f"classes). Received: a {problem} problem with {len(class_names)} classes{hint}."
        )
    if config.positive_class is not None and config.positive_class not in class_names:
        raise ConfigError(
            f"`positive_class` must be one of the data's classes {list(class_names)}. "
            f"Received: positive_class={config.positive_class!r}"
        )


def check_config(config):
    """The checks that need only the config (before the data loads)."""
    if config.target_recall is not None and config.target_precision is not None:
        raise ConfigError(
            "Name one target: `target_recall` or `target_precision`. Received: "
            f"target_recall={config.target_recall}, target_precision={config.target_precision}"
        )
    if not requested(config) and config.positive_class is not None:
        raise ConfigError(
            "`positive_class` names the class a `target_recall` or `target_precision` is about; "
            f"neither is set. Received: positive_class={config.positive_class!r}"
        )


def check_validation(config, class_names, val_labels):
    """The validation split must hold examples of the positive class to choose a threshold on."""
    if not requested(config):
        return
    positive = list(class_names).index(config.positive_class) if config.positive_class is not None else 1
    if not np.any(np.asarray(val_labels) == positive):
        raise ConfigError(
            f"The validation split has no {class_names[positive]!r} example to choose the threshold on. "
            f"Received: {len(val_labels)} validation examples, none of them {class_names[positive]!r}; "
            "raise `val_split` or give the data a val split with both classes."
        )


def rates(labels, scores, positive, threshold):
    """`(precision, recall, n_positive)` of "positive when score >= threshold"."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    called = scores >= threshold
    is_positive = labels == positive
    true = int(np.sum(called & is_positive))
    precision = true / int(np.sum(called)) if np.any(called) else 1.0
    recall = true / int(np.sum(is_positive)) if np.any(is_positive) else None  # No positive: no recall.
    return precision, recall, int(np.sum(is_positive))


def choose(labels, probabilities, class_names, *, target_recall=None, target_precision=None, positive_class=None):
    """The threshold on `positive_class`'s probability (default: the second class, the one a binary
    model's sigmoid scores) that meets the target on `labels` (the validation split).

    For a recall r: the highest threshold whose recall is >= r (the fewest false alarms). For a
    precision p: the lowest threshold whose precision is >= p (the most positives found); when no
    threshold reaches p, the one of highest precision, with `reached: false`. The threshold sits
    halfway between the score that decides and the next lower validation score, not on it: another
    runtime's last-bit differences then cannot move that example across it.

    Args:
        labels: int class indices `(N,)`.
        probabilities: `(N, 2)` class probabilities in `class_names` order.
    """
    positive = list(class_names).index(positive_class) if positive_class is not None else 1
    scores = np.asarray(probabilities, dtype=np.float64)[:, positive]
    labels = np.asarray(labels)
    positives = np.sort(scores[labels == positive])[::-1]
    if target_recall is not None:
        target = {"recall": float(target_recall)}
        if len(positives) == 0:
            raise ConfigError(
                f"The validation split has no {class_names[positive]!r} example to choose a threshold for "
                f"recall on. Received: {len(labels)} validation examples."
            )
        needed = max(1, math.ceil(target_recall * len(positives) - 1e-9))
        deciding = float(positives[needed - 1])
        reached = True
    else:
        target = {"precision": float(target_precision)}
        candidates = np.unique(scores)  # Ascending: the first that reaches the target finds the most.
        precisions = np.array([rates(labels, scores, positive, t)[0] for t in candidates])
        meeting = np.flatnonzero(precisions >= target_precision)
        reached = bool(len(meeting))
        deciding = float(candidates[meeting[0]] if reached else candidates[int(np.argmax(precisions))])
    below = scores[scores < deciding]
    threshold = float((deciding + below.max()) / 2 if len(below) else deciding / 2)
    precision, recall, count = rates(labels, scores, positive, threshold)
    return {
        "positive_class": class_names[positive],
        "negative_class": class_names[1 - positive],
        "threshold": threshold,
        "target": target,
        "reached": reached,
        "validation": _figures(precision, recall, count, len(labels)),
        "rule": (
            f"{class_names[positive]!r} when its probability (column {positive} of the output, labels.txt "
            f"line {positive + 1}) is >= {threshold!r}, else {class_names[1 - positive]!r}"
        ),
    }


def measure(point, labels, probabilities, class_names):
    """The point's precision and recall on another split (the test split), with the binomial
    standard error of the recall (its sampling error)."""
    positive = list(class_names).index(point["positive_class"])
    scores = np.asarray(probabilities, dtype=np.float64)[:, positive]
    precision, recall, count = rates(labels, scores, positive, point["threshold"])
    return _figures(precision, recall, count, len(labels))


def _figures(precision, recall, positives, n):
    """Rounded figures; `recall` and its standard error are None (JSON null) without positives."""
    stderr = math.sqrt(recall * (1 - recall) / positives) if positives else None
    return {
        "precision": round(precision, 4),
        "recall": None if recall is None else round(recall, 4),
        "recall_stderr": None if stderr is None else round(stderr, 4),
        "positives": positives,
        "n": n,
    }


def describe(figures):
    """`figures` (from `choose` or `measure`) in words: "precision 0.495, recall 0.902 ± 0.027"."""
    if figures["recall"] is None:
        return f"precision {figures['precision']:.3f}, recall undefined (no positive among {figures['n']})"
    return f"precision {figures['precision']:.3f}, recall {figures['recall']:.3f} ± {figures['recall_stderr']:.3f}"
