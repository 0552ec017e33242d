"""The learning-rate range test: per-batch losses, restored state, the suggestion, the CLI."""

import os

import keras
import numpy as np
import pytest
from conftest import local_pretrained_weights, write_image_folder

from keras_tl.cli import main
from keras_tl.core.train import lr_finder


def _spied_sweeps(monkeypatch):
    """Every sweep's result, as `lr_finder.sweep` returned it to the caller."""
    results, real = [], lr_finder.sweep

    def spy(*args, **kwargs):
        results.append(real(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(lr_finder, "sweep", spy)
    return results


def _assert_suggests_a_descent(result):
    """The suggestion is the rate of the steepest fall of the recorded curve, before its minimum, on
    a curve that did fall: what the range test promises (a rate merely inside the swept range says nothing)."""
    rates, smoothed = np.asarray(result["rates"]), np.asarray(result["smoothed"])
    assert result["suggestion"] == lr_finder.suggest(result["rates"], result["losses"])
    at = int(np.flatnonzero(rates == result["suggestion"])[0])
    assert smoothed.min() < 0.9 * smoothed[0] and at <= int(np.argmin(smoothed))
    assert at == len(smoothed) - 1 or smoothed[at + 1] < smoothed[max(at - 1, 0)]  # Falling where suggested.


def test_smoothing_and_suggestion_on_a_known_curve():
    assert np.allclose(lr_finder.smooth([2.0, 2.0, 2.0]), 2.0)  # bias-corrected: no warm-up dip
    rates = np.geomspace(1e-6, 1, 121)
    losses = 1.0 / (1.0 + np.exp(4 * (np.log10(rates) + 3)))  # falls fastest at 1e-3
    losses = np.concatenate([losses[:100], losses[100] + np.linspace(0, 3, 21)])  # then diverges
    suggestion = lr_finder.suggest(rates, losses)
    assert 1e-3 <= suggestion < 1e-3 * 2.5  # the smoothing lags the raw curve (EMA, ~10 of 20 points a decade)


def test_sweep_records_each_batch_loss_and_puts_the_model_back():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = keras.utils.to_categorical((x[:, 0] + x[:, 1] > 0).astype(int), 2)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-7), "categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    expected = [
        float(np.mean(keras.losses.categorical_crossentropy(y[i : i + 16], model.predict(x[i : i + 16], verbose=0))))
        for i in range(0, 64, 16)
    ]
    result = lr_finder.sweep(model, dataset, min_lr=1e-7, max_lr=10, steps=60, verbose=0)
    # At 1e-7 the weights barely move: the first batches' losses are those of the initial model.
    np.testing.assert_allclose(result["losses"][:4], expected, rtol=1e-3)
    assert len(result["rates"]) == len(result["losses"]) <= 60
    assert min(result["smoothed"]) < result["smoothed"][0] * 0.8  # the sweep did find rates that learn
    _assert_suggests_a_descent(result)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations.numpy()) == 0
    with pytest.raises(ValueError, match="Expected 0 < min_lr < max_lr. Received: min_lr=1, max_lr=0.1"):
        lr_finder.sweep(model, dataset, min_lr=1, max_lr=0.1)


def test_lr_find_cli_plots_and_prints_a_rate(tmp_path, capsys, monkeypatch):
    sweeps = _spied_sweeps(monkeypatch)
    root = write_image_folder(tmp_path / "data", num_classes=3, per_class=10, size=32)
    png = tmp_path / "lr.png"
    assert (
        main(
            [
                "lr-find",
                "--data",
                root,
                "--backbone",
                "mobilenet_v2",
                "--weights",
                local_pretrained_weights(tmp_path),
                "--image-size",
                "32",
                "--batch-size",
                "8",
                "--steps",
                "30",
                "--png",
                str(png),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "suggested head_lr=" in out and png.is_file() and os.path.getsize(png) > 10_000
    rate = out.split("suggested head_lr=")[1].split()[0]
    assert len(sweeps) == 1 and rate == f"{sweeps[0]['suggestion']:.2g}"  # What the sweep found, printed.
    _assert_suggests_a_descent(sweeps[0])
    with pytest.raises(SystemExit) as refused:  # argparse names the choices
        main(["lr-find", "--data", root, "--phase", "unfrozen"])
    assert refused.value.code == 2


def test_head_lr_and_fine_tune_lr_find_inside_a_run(tmp_path, capsys, monkeypatch):
    import json

    from conftest import tiny_config

    import keras_tl
    from keras_tl import datasets

    config = tiny_config(
        tmp_path, weights=local_pretrained_weights(tmp_path), head_lr="find", fine_tune_lr="find", batch_size=8
    )
    source = datasets.load_digits([0, 1, 2])
    sweeps = _spied_sweeps(monkeypatch)
    result = keras_tl.train(config, source)
    found = json.loads(open(os.path.join(result.run_dir, "lr_find.json")).read())
    assert found == {"head_lr": sweeps[0]["suggestion"], "fine_tune_lr": sweeps[1]["suggestion"]}
    for sweep in sweeps:
        _assert_suggests_a_descent(sweep)
    assert result.metrics["found_rates"] == found
    out = capsys.readouterr().out
    assert f"lr={found['head_lr']:g}" in out and f"lr={found['fine_tune_lr']:g}" in out  # the phases used them
    for png in ("lr_find_head.png", "lr_find_fine_tune.png"):
        assert os.path.getsize(os.path.join(result.run_dir, png)) > 10_000
    recorded = open(os.path.join(result.run_dir, "config.yaml")).read()
    assert "head_lr: find" in recorded and "fine_tune_lr: find" in recorded
    with pytest.raises(keras_tl.RunExistsError, match="finished"):  # the same command again: nothing to redo
        keras_tl.train(config, source)
    with pytest.raises(ValueError, match="a finite positive number or 'find'"):
        keras_tl.TrainConfig(head_lr="auto").validate()
    with pytest.raises(ValueError, match="needs a number for fine_tune_lr; 'find' is resolved by `keras_tl.train`"):
        keras_tl.fine_tune(None, None, None, keras_tl.TrainConfig(fine_tune_lr="find"))
    with pytest.raises(SystemExit):
        main(["train", "--head-lr", "fast"])
    assert "learning rate (a number or 'find')" in capsys.readouterr().err
