"""Plots, report.md, --compare-scratch and backbone comparison."""

import json
import os

import numpy as np
import pytest
from conftest import local_pretrained_weights, tiny_arrays, tiny_config
from PIL import Image

from keras_tl import workflow
from keras_tl.core.evaluation import plots
from keras_tl.core.models.heads import get_backbone
from keras_tl.image import data
from keras_tl.image.model import build_model
from keras_tl.workflow import training_run as train_module

NAMES = ["cat", "dog", "rocket"]


def _png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_confusion_matrix_plot_is_a_png_with_class_names(tmp_path):
    path = tmp_path / "cm.png"
    fig = plots.confusion_matrix([[5, 1, 0], [0, 3, 3], [0, 0, 0]], NAMES, str(path))
    assert _png_size(path) == (400, 400)  # 4x4 inches (the minimum) at 100 dpi.
    texts = plots.figure_texts(fig)
    assert all(name in texts for name in NAMES)
    assert "0.83" in texts and "0.50" in texts  # Row-normalized; an empty row stays 0.


def test_learning_curves_mark_the_phase_boundary(tmp_path):
    histories = {
        "phase1": {"loss": [1.0, 0.8], "val_loss": [1.1, 0.9], "accuracy": [0.5, 0.6], "val_accuracy": [0.4, 0.5]},
        "phase2": {"loss": [0.5], "val_loss": [0.7], "accuracy": [0.8], "val_accuracy": [0.7]},
    }
    fig = plots.learning_curves(histories, str(tmp_path / "lc.png"))
    assert _png_size(tmp_path / "lc.png") == (1000, 400)
    assert "phase2 starts" in plots.figure_texts(fig)
    boundary = [line for ax in fig.axes for line in ax.lines if line.get_linestyle() == ":"]
    assert len(boundary) == 2 and boundary[0].get_xdata()[0] == 2.5


def test_per_class_f1_and_confident_errors(tmp_path):
    fig = plots.per_class_f1({n: {"f1": f} for n, f in zip(NAMES, [0.9, 0.5, 0.0])}, str(tmp_path / "f1.png"))
    assert all(n in plots.figure_texts(fig) for n in NAMES)
    images = np.zeros((3, 8, 8, 3), np.uint8)
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.4, 0.0]])
    fig = plots.confident_errors(images, np.array([1, 1, 2]), probabilities, NAMES, str(tmp_path / "err.png"))
    titles = [t for t in plots.figure_texts(fig) if t.startswith("true")]
    assert titles == ["true dog\npred cat (0.90)", "true rocket\npred cat (0.60)"]  # Most confident first.
    assert _png_size(tmp_path / "err.png")[0] == 1000


def test_long_class_names_wrap_inside_their_cell(tmp_path):
    """confident_errors.png cut titles of long class names: each title now stays inside its own column."""
    names = ["functional cell without visible cracks", "defective cell with a finger interruption", "c"]
    images = np.zeros((6, 32, 32, 3), np.uint8)
    probabilities = np.tile([[0.05, 0.9, 0.05]], (6, 1))
    fig = plots.confident_errors(images, np.zeros(6, int), probabilities, names, str(tmp_path / "err.png"))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    width = fig.bbox.width
    for ax in fig.axes:
        if not ax.get_title():
            continue
        box = ax.title.get_window_extent(renderer)
        cell = ax.get_position().x0 * width, ax.get_position().x1 * width
        column = width / 4
        assert box.x0 >= cell[0] - 0.1 * column and box.x1 <= cell[1] + 0.1 * column, ax.get_title()
        assert box.y1 <= fig.bbox.height
    assert any("finger" in t for t in plots.figure_texts(fig))


def test_lr_find_plot_shows_the_whole_descent():
    """lr_find.png cut its y-axis at 4x the lowest loss: a descent from 10 to 0.1 was off the chart."""
    rates = np.geomspace(1e-6, 1, 60)
    smoothed = np.concatenate([np.geomspace(10, 0.1, 45), np.geomspace(0.1, 1e4, 15)])
    fig = plots.lr_find({"rates": rates, "losses": smoothed, "smoothed": smoothed, "suggestion": 1e-3})
    low, high = fig.axes[0].get_ylim()
    assert low < 0.1 and 10 < high < 20  # The start and the bottom are in; the divergence leaves the top.


def test_library_plots_never_switch_the_global_matplotlib_backend():
    import subprocess
    import sys

    script = (
        "import matplotlib; matplotlib.use('svg'); from keras_tl.core.evaluation import plots; from keras_tl.core.train import lr_finder; "
        "plots.per_class_f1({'a': {'f1': 1.0}}); print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "svg"


@pytest.mark.slow
def test_compare_scratch_trains_from_random_weights_and_reports_both(tmp_path, monkeypatch):
    weights_file = local_pretrained_weights(tmp_path)
    starts = []
    real_fine_tune = train_module.fine_tune

    def spy(task, *args, **kwargs):
        starts.append([w.numpy().copy() for w in get_backbone(task.model).weights])
        return real_fine_tune(task, *args, **kwargs)

    monkeypatch.setattr(train_module, "fine_tune", spy)
    config = tiny_config(tmp_path, weights=weights_file, compare_scratch=True)
    result = workflow.train(config, data.from_arrays(*tiny_arrays(3, 20)))

    pretrained = get_backbone(build_model("mobilenet_v2", num_classes=3, weights=weights_file, image_size=32))
    reference = [w.numpy() for w in pretrained.weights]
    assert len(starts) == 2
    assert all(np.array_equal(a, b) for a, b in zip(starts[0], reference))
    kernels = [i for i, w in enumerate(pretrained.weights) if "kernel" in w.path]
    assert all(not np.array_equal(starts[1][i], reference[i]) for i in kernels)

    metrics = json.loads(open(os.path.join(result.run_dir, "metrics.json")).read())
    assert metrics["transfer_minus_scratch"] == pytest.approx(
        metrics["test_accuracy"] - metrics["scratch"]["test_accuracy"]
    )
    # The scratch twin writes only its own model files; config and splits are the parent's.
    assert not os.path.exists(os.path.join(result.run_dir, "scratch", "config.yaml"))
    history = json.loads(open(os.path.join(result.run_dir, "scratch", "history.json")).read())
    assert list(history) == ["full"] and len(history["full"]["loss"]) == config.head_epochs + config.fine_tune_epochs
    report = open(os.path.join(result.run_dir, "report.md")).read()
    assert "## Transfer vs training from scratch" in report
    for png in ("learning_curves.png", "confusion_matrix.png", "per_class_f1.png", "confident_errors.png"):
        assert f"]({png})" in report and os.path.isfile(os.path.join(result.run_dir, png))


@pytest.mark.slow
def test_compare_ranks_two_backbones_and_writes_table_and_plot(tmp_path):
    config = tiny_config(tmp_path, out=str(tmp_path / "cmp"), head_epochs=1, fine_tune_epochs=0, strategy="full")
    rows = workflow.compare_backbones(
        config, ["mobilenet_v2", "mobilenet_v3_small"], data.from_arrays(*tiny_arrays(3, 20))
    )
    assert {r["backbone"] for r in rows} == {"mobilenet_v2", "mobilenet_v3_small"}
    assert rows[0]["test_accuracy"] >= rows[1]["test_accuracy"]
    for r in rows:
        assert r["params"] > 0 and r["model_mb"] > 0 and r["keras_latency_ms"] > 0 and r["tflite_latency_ms"] > 0
    table = open(tmp_path / "cmp" / "compare.md").read()
    assert table.index(rows[0]["backbone"]) < table.index(rows[1]["backbone"], table.index("| 2 |"))
    assert _png_size(tmp_path / "cmp" / "pareto.png") == (600, 450)
