"""Classification metrics from predicted probabilities: accuracy, top-k, per-class and macro
precision / recall / F1, and the confusion matrix."""

import numpy as np

from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.data import multitask_labels


def confusion_matrix(y_true, y_pred, num_classes):
    """Counts `[true, predicted]` pairs into a `(num_classes, num_classes)` int array."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def _safe_divide(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def classification_metrics(y_true, probabilities, class_names, *, threshold=0.5, top_k=5):
    """Computes the test metrics of a single-label classifier.

    Args:
        y_true: int array `(N,)`.
        probabilities: float array `(N, C)` (softmax) or `(N, 1)` (binary sigmoid, positive class
            = index 1).
        class_names: list of str.
        threshold: float. Decision threshold for a binary model. Defaults to 0.5.
        top_k: int. For top-k accuracy (only reported when there are more than k classes).

    Returns:
        A JSON-ready dict: "accuracy", "macro_f1", "macro_precision", "macro_recall",
        "weighted_f1", "per_class" (precision/recall/f1/support by class name), "confusion_matrix",
        and "top_k_accuracy"/"threshold" where they apply. A class never predicted has
        precision 0 (not NaN).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    num_classes = len(class_names)
    result = {}
    if probabilities.shape[-1] == 1:
        y_pred = (probabilities[:, 0] >= threshold).astype(np.int64)
        result["threshold"] = threshold
    else:
        y_pred = probabilities.argmax(axis=-1)
        if num_classes > top_k:
            top = np.argsort(-probabilities, axis=-1)[:, :top_k]
            result["top_k"] = top_k
            result["top_k_accuracy"] = float(np.mean(np.any(top == y_true[:, None], axis=-1)))
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(matrix)
    support = matrix.sum(axis=1)
    scores, f1 = _per_class(tp, matrix.sum(axis=0), support, class_names)
    result.update(
        accuracy=float(tp.sum() / max(1, len(y_true))),
        **scores,
        weighted_f1=float(np.sum(f1 * support) / max(1, support.sum())),
        confusion_matrix=matrix.tolist(),
        num_examples=int(len(y_true)),
    )
    return result


def multilabel_metrics(y_true, probabilities, class_names, *, threshold=0.5):
    """Metrics of a multi-label classifier (independent sigmoid per class).

    Args:
        y_true: 0/1 array `(N, C)`.
        probabilities: float array `(N, C)`.
        class_names: list of str.
        threshold: float or a per-class sequence of C floats. Defaults to 0.5.

    Returns:
        A JSON-ready dict: "thresholds" (per class), "subset_accuracy" (every label right),
        "hamming_accuracy" (label-wise), "micro_f1", "macro_f1", "macro_precision",
        "macro_recall" and "per_class" precision/recall/f1/support.
    """
    y_true = np.asarray(y_true).astype(bool)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if y_true.shape != probabilities.shape or y_true.shape[1] != len(class_names):
        raise ConfigError(
            f"`y_true` and `probabilities` must both be (N, {len(class_names)}). "
            f"Received: {y_true.shape} and {probabilities.shape}"
        )
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (len(class_names),))
    y_pred = probabilities >= thresholds
    tp = np.sum(y_true & y_pred, axis=0)
    predicted = y_pred.sum(axis=0)
    support = y_true.sum(axis=0)
    micro_p = _safe_divide(tp.sum(), predicted.sum())
    micro_r = _safe_divide(tp.sum(), support.sum())
    return {
        "thresholds": thresholds.tolist(),
        "subset_accuracy": float(np.mean(np.all(y_true == y_pred, axis=1))),
        "hamming_accuracy": float(np.mean(y_true == y_pred)),
        "micro_f1": float(_safe_divide(2 * micro_p * micro_r, micro_p + micro_r)),
        **_per_class(tp, predicted, support, class_names)[0],
        "num_examples": int(len(y_true)),
    }


def _per_class(tp, predicted, support, class_names):
    """`(macro precision/recall/F1 and the per-class table, per-class F1 array)` from per-class counts
    (true positives, predicted, actual); a class never predicted has precision 0."""
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
    }, f1


def multitask_metrics(labels, probabilities, class_names, head_kinds=None):
    """Per-head metrics of a multi-task model on the rows that label each head
    (`keras_tl.core.models.multitask`): single-label ones, or for a head `head_kinds` calls "multilabel"
    `multilabel_metrics` with "accuracy" its subset accuracy.

    Returns:
        A JSON-ready dict: "heads" `{head: classification_metrics}`; "accuracy", "macro_f1",
        "macro_precision", "macro_recall" (each the mean over heads); "per_class" keyed "head:class" (for the per-class plot);
        "num_examples".
    """
    truths, scores = (
        multitask_labels.head_labels(labels, class_names),
        multitask_labels.head_probabilities(probabilities, class_names),
    )
    labels = np.asarray(labels)
    per_head = {}
    for head, classes, start, stop in multitask_labels.heads_of(class_names):
        rows = truths[head] >= 0
        if not rows.any():
            raise ConfigError(f"No test example labels head {head!r}; the test split must label every head.")
        if (head_kinds or {}).get(head) == "multilabel":
            row = multilabel_metrics(labels[rows, start:stop], scores[head][rows], classes)
            per_head[head] = {"accuracy": row["subset_accuracy"], **row}
        else:
            per_head[head] = classification_metrics(truths[head][rows], scores[head][rows], classes)
    mean = {
        key: float(np.mean([m[key] for m in per_head.values()]))
        for key in ("accuracy", "macro_f1", "macro_precision", "macro_recall")
    }
    return {
        **mean,
        "heads": per_head,
        "per_class": {
            f"{head}{multitask_labels.SEPARATOR}{name}": row
            for head, m in per_head.items()
            for name, row in m["per_class"].items()
        },
        "num_examples": int(len(np.asarray(labels))),
    }


def format_metrics(metrics):
    """A short human summary of `classification_metrics` output."""
    lines = [
        f"accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}  "
        f"(n={metrics['num_examples']}{'; the mean over heads' if 'heads' in metrics else ''})"
    ]
    for head, row in metrics.get("heads", {}).items():
        lines.append(
            f"  head {head}: accuracy {row['accuracy']:.4f}  macro F1 {row['macro_f1']:.4f}  (n={row['num_examples']})"
        )
    width = max(len(n) for n in metrics["per_class"])
    for name, row in metrics["per_class"].items():
        lines.append(
            f"  {name:<{width}}  P {row['precision']:.3f}  R {row['recall']:.3f}  "
            f"F1 {row['f1']:.3f}  n={row['support']}"
        )
    return "\n".join(lines)


def evaluate_predictions(labels, probabilities, class_names, problem, head_kinds=None):
    """Single-label metrics, multi-label ones with "accuracy" = subset accuracy, or multi-task ones
    (each head's metrics under "heads", `head_kinds` saying which heads are multi-label; "accuracy"
    and "macro_f1" the mean over heads); "test_accuracy" and "macro_f1" first (what reports and
    tables lead with)."""
    if problem == "multitask":
        metrics = multitask_metrics(labels, probabilities, class_names, head_kinds)
    elif problem == "multilabel":
        metrics = multilabel_metrics(labels, probabilities, class_names)
        metrics = {"accuracy": metrics["subset_accuracy"], **metrics}
    else:
        metrics = classification_metrics(labels, probabilities, class_names)
    return {"test_accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], **metrics}
