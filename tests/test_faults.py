"""Faults lose nothing: a NaN stops the run with its last good weights, run directories never mix."""

import json
import os

import keras
import numpy as np
import pytest
import yaml
from conftest import local_pretrained_weights, tiny_arrays, tiny_config, write_image_folder
from PIL import Image

import keras_tl
from keras_tl.cli import main
from keras_tl.core.train import training
from keras_tl.image.data import from_arrays


def _loss_turning_nan_after(batches):
    """Cross-entropy that becomes NaN from batch `batches + 1` on (a stand-in for a diverging rate)."""
    seen = keras.Variable(0.0, trainable=False, name="batches_seen")

    def loss(y_true, y_pred):
        seen.assign_add(1.0)
        poison = keras.ops.where(seen > batches, float("nan"), 0.0)
        return keras.losses.categorical_crossentropy(y_true, y_pred) + poison

    return loss


@pytest.fixture
def nan_after_three_batches(monkeypatch):
    """Phase 1 compiles with a loss that turns NaN at its 4th call: epoch 1 is 2 training batches and 1
    validation batch, so the first NaN is epoch 2, batch 1."""
    real = training.compile_model

    def compile_model(model, **kwargs):
        real(model, **kwargs)
        model.compile(optimizer=model.optimizer, loss=_loss_turning_nan_after(3), metrics=["accuracy"])
        return model

    monkeypatch.setattr(training, "compile_model", compile_model)


def test_nan_loss_stops_the_run_keeps_the_last_good_weights_and_exits_1(tmp_path, nan_after_three_batches, capsys):
    root = write_image_folder(tmp_path / "data", num_classes=3, per_class=10, size=32)
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            root,
            "--backbone",
            "mobilenet_v2",
            "--weights",
            local_pretrained_weights(tmp_path),
            "--image-size",
            "32",
            "--batch-size",
            "16",
            "--head-epochs",
            "5",
            "--fine-tune-epochs",
            "1",
            "--head-lr",
            "0.01",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "Training diverged: the loss became nan in phase1, epoch 2, batch 1, at learning rate 0.01" in err
    assert "Try a lower rate, e.g. --head-lr 0.001" in err
    failure = json.loads((out / "failure.json").read_text())
    assert (failure["phase"], failure["epoch"], failure["batch"], failure["rate_setting"]) == (
        "phase1",
        2,
        1,
        "head_lr",
    )
    assert not (out / "model.keras").exists() and not (out / "metrics.json").exists()  # nothing NaN published
    # The kept weights are those of the end of epoch 1: the saved file gives epoch 1's val_loss again.
    rows = [r.split(",") for r in (out / "history_phase1.csv").read_text().splitlines()]
    epoch1, epoch2 = dict(zip(rows[0], rows[1])), dict(zip(rows[0], rows[2]))
    assert len(rows) == 3 and epoch1["loss"] != "nan" and epoch2["loss"] == "nan"
    model = keras_tl.build_classifier(
        "mobilenet_v2", num_classes=3, weights=local_pretrained_weights(tmp_path), image_size=32
    ).model
    model.load_weights(str(out / "last_good.weights.h5"))
    assert all(np.isfinite(w).all() for w in model.get_weights())
    val = keras_tl.workflow.rundir.load_split(str(out), "val")
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in val.items])
    targets = keras.utils.to_categorical(val.labels, 3)
    loss = keras.losses.categorical_crossentropy(targets, model.predict(images, verbose=0))
    assert float(np.mean(loss)) == pytest.approx(float(epoch1["val_loss"]), rel=1e-3)

    # Re-running the same command says what the directory holds instead of mixing a second run in.
    assert (
        main(
            [
                "train",
                "--data",
                root,
                "--backbone",
                "mobilenet_v2",
                "--weights",
                local_pretrained_weights(tmp_path),
                "--image-size",
                "32",
                "--batch-size",
                "16",
                "--head-epochs",
                "5",
                "--fine-tune-epochs",
                "1",
                "--head-lr",
                "0.01",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "holds an unfinished run of this same config (it stopped: loss nan in phase1 epoch 2;" in (
        capsys.readouterr().err
    )


def _config(tmp_path, **overrides):
    return tiny_config(tmp_path, weights=local_pretrained_weights(tmp_path), strategy="feature_extraction", **overrides)


def test_existing_run_directory_is_never_overwritten_or_mixed(tmp_path, capsys):
    source = from_arrays(*tiny_arrays(3, 10))
    first = keras_tl.train(_config(tmp_path), source)
    model_file = os.path.join(first.run_dir, "model.keras")
    stamp = os.stat(model_file).st_mtime_ns

    with pytest.raises(
        keras_tl.RunExistsError,
        match=r"already holds a run with another config \(head_lr: "
        r"0\.001 -> 0\.01\)",
    ) as other:
        keras_tl.train(_config(tmp_path, head_lr=0.01), source)
    assert not other.value.finished
    with pytest.raises(keras_tl.RunExistsError, match="holds a finished run of this same config") as same:
        keras_tl.train(_config(tmp_path), source)
    assert same.value.finished
    assert os.stat(model_file).st_mtime_ns == stamp  # untouched by both refusals

    # --overwrite removes the old run's files first: nothing of the first run is left beside the new one.
    (tmp_path / "run" / "left_from_first_run.txt").write_text("x")
    again = keras_tl.train(_config(tmp_path, head_lr=0.01), source, overwrite=True)
    assert not (tmp_path / "run" / "left_from_first_run.txt").exists()
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["head_lr"] == 0.01
    assert "overwrite: removed the previous run" in capsys.readouterr().out
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["test_accuracy"] == again.metrics["test_accuracy"]  # the directory holds the new run

    # The CLI reports a finished run as a success with nothing to do.
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=6, size=32)
    args = [
        "train",
        "--data",
        root,
        "--backbone",
        "mobilenet_v2",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--strategy",
        "feature_extraction",
        "--head-epochs",
        "1",
        "--out",
        str(tmp_path / "cli_run"),
    ]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "holds a finished run of this same config" in capsys.readouterr().out


def test_a_folder_that_is_not_a_run_is_never_written_into(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "thesis.tex").write_text("keep me")
    with pytest.raises(keras_tl.RunExistsError, match=r"is not a keras-tl run directory.*thesis.tex"):
        keras_tl.train(_config(tmp_path), from_arrays(*tiny_arrays(3, 10)), overwrite=True)
    assert os.listdir(tmp_path / "run") == ["thesis.tex"]


_KILLABLE_RUN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras_tl
from keras_tl.core.train import resume
from keras_tl.core.contract.config import TrainConfig
from keras_tl.image.data import from_arrays
from conftest import tiny_arrays

kill_at = sys.argv[1]  # "phase1:2": SIGKILL right after the state of phase 1's 2nd epoch is saved
real = resume.SaveState.on_epoch_end

def on_epoch_end(self, epoch, logs=None):
    real(self, epoch, logs)
    if f"{{self.phase}}:{{epoch + 1}}" == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

resume.SaveState.on_epoch_end = on_epoch_end
config = TrainConfig(backbone="mobilenet_v2", weights={weights!r}, image_size=32, batch_size=8, head_epochs=3,
                     fine_tune_epochs=3, unfreeze="blocks:2", early_stopping_patience=2, out=sys.argv[2], {extra})
other_images, other_labels = tiny_arrays(3, 12, seed=1)  # Inverted scans: the target domain (labels unused).
target = from_arrays(255 - other_images, other_labels) if config.domain_adaptation != "auto" else None
keras_tl.train(config, from_arrays(*tiny_arrays(3, 12)), target=target)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra", ["feature_cache=True", "feature_cache=False, monitor='val_accuracy', domain_adaptation='dann'"]
)
def test_a_run_killed_in_each_phase_resumes_to_the_same_weights(tmp_path, extra):
    """kill -9 after phase 1's 2nd epoch, again after phase 2's 1st (epoch 5), then the same command:
    the finished run equals an uninterrupted one (weights, histories); the second case without the
    feature cache, keeping the best val_accuracy, and with phase 2 training beside target-domain
    batches (DANN: its domain classifier, reversal ramp and target stream)."""
    import subprocess
    import sys

    script = tmp_path / "run.py"
    tests = os.path.dirname(os.path.abspath(__file__))
    script.write_text(_KILLABLE_RUN.format(tests=tests, weights=local_pretrained_weights(tmp_path), extra=extra))

    def run(kill_at, out):
        return subprocess.run([sys.executable, str(script), kill_at, str(out)], capture_output=True, text=True)

    reference = run("never", tmp_path / "uninterrupted")
    assert reference.returncode == 0, reference.stderr[-3000:]
    first = run("phase1:2", tmp_path / "killed")
    assert first.returncode == -9, first.stderr[-3000:]
    second = run("phase2:5", tmp_path / "killed")
    assert second.returncode == -9, second.stderr[-3000:]
    assert "resuming the unfinished run" in second.stdout and "resumed after epoch 2" in second.stdout
    last = run("never", tmp_path / "killed")
    assert last.returncode == 0, last.stderr[-3000:]
    assert "resumed after epoch 5" in last.stdout and "phase1: finished before the interruption" in last.stdout

    expected = keras.saving.load_model(str(tmp_path / "uninterrupted" / "model.keras"))
    resumed = keras.saving.load_model(str(tmp_path / "killed" / "model.keras"))
    for a, b in zip(expected.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5, err_msg=a.path)
    history = [json.loads((tmp_path / d / "history.json").read_text()) for d in ("uninterrupted", "killed")]
    for phase in ("phase1", "phase2"):
        assert len(history[1][phase]["loss"]) == len(history[0][phase]["loss"])
        np.testing.assert_allclose(history[1][phase]["loss"], history[0][phase]["loss"], rtol=1e-5)
    metrics = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("uninterrupted", "killed")]
    assert metrics[1]["test_accuracy"] == metrics[0]["test_accuracy"]


_DETERMINISTIC_RUN = """
import os, sys
sys.path.insert(0, {tests!r})
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras_tl
from keras_tl.core.contract.config import TrainConfig
from keras_tl.image.data import from_arrays
from conftest import tiny_arrays

config = TrainConfig(backbone="mobilenet_v2", weights="none", image_size=32, batch_size=8, head_epochs=2, fine_tune_epochs=0,
                     strategy="full", early_stopping_patience=None, deterministic=True, out=sys.argv[1])
keras_tl.train(config, from_arrays(*tiny_arrays(3, 12)))
"""


@pytest.mark.slow
def test_deterministic_runs_are_bit_identical(tmp_path):
    """Two processes, one seed, `deterministic: true`: the same weights to the bit (from scratch, where
    every BatchNorm and conv reduction moves)."""
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(_DETERMINISTIC_RUN.format(tests=os.path.dirname(os.path.abspath(__file__))))
    for name in ("a", "b"):
        done = subprocess.run([sys.executable, str(script), str(tmp_path / name)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    assert yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())["deterministic"] is True
    a, b = (keras.saving.load_model(str(tmp_path / n / "model.keras")) for n in ("a", "b"))
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)
