"""Plots of a run, as PNG files: learning curves, confusion matrix, per-class F1, confident errors,
the learning-rate range test.

Every function draws one figure, saves it when given a path, and returns the figure so callers
(and tests) can read what it shows. Figures are `matplotlib.figure.Figure` objects, not pyplot's:
no backend is chosen and no global state is touched, so a notebook keeps its inline plots and a
server without a display needs nothing.
"""

import textwrap

import matplotlib.text
import numpy as np
from matplotlib.figure import Figure

DPI = 100


def subplots(rows=1, columns=1, *, squeeze=True, **figure_kwargs):
    """`(figure, axes)` as `pyplot.subplots` gives them, outside pyplot."""
    fig = Figure(**figure_kwargs)
    return fig, fig.subplots(rows, columns, squeeze=squeeze)


def _finish(fig, path):
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=DPI)
    return fig


def learning_curves(histories, path=None):
    """Loss and accuracy over epochs of all phases, with each phase boundary marked.

    Args:
        histories: dict phase -> `History.history` (as `keras_tl.train` returns them).
        path: str. PNG to write. Defaults to None.
    """
    fig, axes = subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        start = 0
        for i, (phase, history) in enumerate(histories.items()):
            n = len(history.get(metric, []))
            epochs = np.arange(start + 1, start + n + 1)
            if n:
                ax.plot(epochs, history[metric], marker="o", color=f"C{i}", label=f"{phase} train")
            if f"val_{metric}" in history:
                ax.plot(
                    epochs, history[f"val_{metric}"], marker="x", linestyle="--", color=f"C{i}", label=f"{phase} val"
                )
            if i > 0:
                ax.axvline(start + 0.5, color="grey", linestyle=":", label=f"{phase} starts")
            start += n
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    return _finish(fig, path)


def confusion_matrix(matrix, class_names, path=None):
    """The row-normalized confusion matrix (recall on the diagonal), with class names."""
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = max(4, 0.5 * len(class_names) + 2)
    fig, ax = subplots(figsize=(size, size))
    ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(class_names) <= 20:
        for i in ticks:
            for j in ticks:
                ax.text(
                    j,
                    i,
                    f"{normalized[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if normalized[i, j] > 0.5 else "black",
                )
    ax.set_title("confusion matrix (rows normalized)")
    return _finish(fig, path)


def per_class_f1(per_class, path=None):
    """A bar per class of its F1 on the test split."""
    names = list(per_class)
    values = [per_class[n]["f1"] for n in names]
    fig, ax = subplots(figsize=(max(5, 0.4 * len(names) + 2), 4))
    ax.bar(np.arange(len(names)), values, color="C0")
    ax.set_xticks(np.arange(len(names)), labels=names, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.set_title("per-class F1 (test)")
    return _finish(fig, path)


def most_confident_errors(labels, probabilities, count):
    """Indices of at most `count` wrong predictions (single-label), the most confident first."""
    wrong = np.flatnonzero(probabilities.argmax(-1) != labels)
    return wrong[np.argsort(-probabilities[wrong].max(-1))][:count]


def confident_errors(images, y_true, probabilities, class_names, path=None, count=16):
    """A grid of the test images the model got wrong with the highest confidence."""
    y_pred = probabilities.argmax(axis=-1)
    confidence = probabilities.max(axis=-1)
    order = most_confident_errors(y_true, probabilities, count)
    titles = [f"true {class_names[y_true[i]]}\npred {class_names[y_pred[i]]} ({confidence[i]:.2f})" for i in order]
    fig = image_grid([images[i] for i in order], titles)
    if not len(order):
        fig.axes[0].text(0, 0.5, "no errors on the test split", fontsize=10)
    return _finish(fig, path)


TITLE_CHARACTERS = 28  # What fits across one 2.5-inch grid cell at 8 pt.


def image_grid(images, titles, path=None, columns=4):
    """A grid of uint8 images with a title above each (augmented batches, confident errors); long titles
    (class names) wrap onto more lines, and each row of the grid is as tall as its titles need."""
    rows = max(1, int(np.ceil(len(images) / columns)))
    wrapped = [
        "\n".join(textwrap.fill(line, TITLE_CHARACTERS, break_long_words=True) for line in str(t).split("\n"))
        for t in titles
    ]
    lines = max([w.count("\n") + 1 for w in wrapped] or [1])
    fig, axes = subplots(rows, columns, figsize=(2.5 * columns, (2.4 + 0.16 * lines) * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, wrapped):
        ax.imshow(image)
        ax.set_title(title, fontsize=8)
    return _finish(fig, path)


def pareto(rows, path=None):
    """Accuracy vs latency of compared backbones; point area = model size on disk."""
    fig, ax = subplots(figsize=(6, 4.5))
    sizes = np.array([r["model_mb"] for r in rows], dtype=np.float64)
    area = 40 + 400 * sizes / max(sizes.max(), 1e-9)
    x = [r["keras_latency_ms"] for r in rows]
    y = [r["test_accuracy"] for r in rows]
    ax.scatter(x, y, s=area, alpha=0.6)
    for r, xi, yi in zip(rows, x, y):
        ax.annotate(r["backbone"], (xi, yi), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("Keras batch-1 latency (ms)")
    ax.set_ylabel("test accuracy")
    ax.set_title("backbones: accuracy vs latency (area = model size)")
    return _finish(fig, path)


def search_trials(trials, path=None):
    """A head search's trials: validation accuracy by trial, one series per backbone, the best so far
    as a line; trial 0 (the config as given) ringed."""
    fig, ax = subplots(figsize=(6, 4))
    for i, backbone in enumerate(dict.fromkeys(t["backbone"] for t in trials)):
        rows = [t for t in trials if t["backbone"] == backbone]
        x = [t["trial"] for t in rows]
        y = [100 * t["val_accuracy"] for t in rows]
        ax.scatter(x, y, color=f"C{i}", s=18, label=backbone)
        ax.step(x, np.maximum.accumulate(y), where="post", color=f"C{i}", lw=1)
        ax.scatter(x[:1], y[:1], facecolors="none", edgecolors="k", s=80)
    ax.set_xlabel("trial (0: the config as given)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("head search on cached features")
    ax.legend(fontsize=8)
    return _finish(fig, path)


def figure_texts(fig):
    """All strings drawn on a figure (titles, tick labels, annotations), for checks."""
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def lr_find(result, path=None, title=""):
    """The learning-rate range test: loss per batch and smoothed against the rate (log scale), the
    suggestion marked. The y-axis spans the whole descent (from the first smoothed loss down to the
    lowest); the divergence after it leaves the chart at the top."""
    fig, ax = subplots(figsize=(6, 4))
    ax.plot(result["rates"], result["losses"], color="0.8", lw=1, label="loss per batch")
    ax.plot(result["rates"], result["smoothed"], color="C0", lw=2, label="smoothed")
    ax.axvline(result["suggestion"], color="C3", ls="--", label=f"suggested {result['suggestion']:.2g}")
    smoothed = np.asarray(result["smoothed"], np.float64)
    finite = np.isfinite(smoothed)
    if finite.any():
        lowest = int(np.nanargmin(np.where(finite, smoothed, np.nan)))
        top = float(np.nanmax(np.where(finite[: lowest + 1], smoothed[: lowest + 1], np.nan)))
        bottom = float(smoothed[lowest])
        margin = 0.05 * max(top - bottom, abs(top) * 1e-3, 1e-12)
        ax.set_ylim(bottom - margin, top + margin)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title or "learning-rate range test")
    ax.legend()
    return _finish(fig, path)
