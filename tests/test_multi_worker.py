"""`distribute: multi_worker` shown, not assumed: two worker processes on loopback train one model in
lockstep (each step's gradient is the one a single process computes for the same global batch), only
the chief writes the run directory, and a multi-worker run killed mid-phase resumes.

Bit-equality with a single process is asserted where the batches are the same: tf.data draws a
seeded shuffle differently once `fit` distributes the dataset, so a whole keras-tl run (which
shuffles) is compared worker against worker, not against a single process."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest
from conftest import local_pretrained_weights

import keras_tl
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.train import distribute

TESTS = os.path.dirname(os.path.abspath(__file__))

RUN = """
import json, os, signal, sys
sys.path.insert(0, {tests!r})
import keras_tl
from keras_tl.core.train import resume
from keras_tl.image.data import from_arrays
from conftest import tiny_arrays

out, distribute, kill_at = sys.argv[1:4]
real = resume.SaveState.on_epoch_end

def on_epoch_end(self, epoch, logs=None):  # SIGKILL right after the state of an epoch is saved
    real(self, epoch, logs)
    if f"{{self.phase}}:{{epoch + 1}}" == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

resume.SaveState.on_epoch_end = on_epoch_end
config = keras_tl.TrainConfig(backbone="mobilenet_v2", weights={weights!r}, image_size=32, batch_size=8,
                              head_epochs=2, fine_tune_epochs=2, unfreeze="blocks:2", dropout=0.0, augment="none",
                              early_stopping_patience=None, distribute=distribute, out=out)
result = keras_tl.train(config, from_arrays(*tiny_arrays(3, 12)))
weights = [w.numpy().astype("float64").ravel() for w in result.model.weights]
print("RESULT " + json.dumps({{"run_dir": result.run_dir, "weights": [float(w.sum()) for w in weights],
                               "abs": [float(abs(w).sum()) for w in weights]}}))
"""

STEP = """
import json, os, sys
import numpy as np
import keras_tl
from keras_tl.core.data.pipelines import feature_dataset
from keras_tl.core.train import distribute
import keras
import tensorflow as tf

name = sys.argv[1]
distribute.start(name)
with distribute.scope(name):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(0))])
    model.compile(keras.optimizers.Adam(0.1), "categorical_crossentropy", metrics=["accuracy"])
rng = np.random.default_rng(0)
x, y = rng.random((24, 4), dtype=np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, 24)]
history = model.fit(feature_dataset(x, y, y.argmax(1), batch_size=8), epochs=3, verbose=0,
                    class_weight={{0: 1.0, 1: 2.0, 2: 0.5}})
print("RESULT " + json.dumps({{"weights": [w.numpy().tolist() for w in model.weights], "loss": history.history["loss"]}}))
"""


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _workers(script, out, kill_at="never", timeout=420, args=None):
    """Runs the two workers of a loopback cluster; returns `(returncode, stdout, stderr)` of each.

    Their output goes to files, not pipes: a worker blocked on a full pipe would stall the cluster."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    logs = tempfile.mkdtemp(prefix="multi_worker_logs_")
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        out_file = open(os.path.join(logs, f"{index}.out"), "w+")
        err_file = open(os.path.join(logs, f"{index}.err"), "w+")
        processes.append(
            (
                subprocess.Popen(
                    [sys.executable, str(script), *(args or [str(out), "multi_worker", kill_at])],
                    env=env,
                    stdout=out_file,
                    stderr=err_file,
                    text=True,
                ),
                out_file,
                err_file,
            )
        )
    results = []
    try:
        for process, out_file, err_file in processes:
            process.wait(timeout=timeout)
            out_file.seek(0)
            err_file.seek(0)
            results.append((process.returncode, out_file.read(), err_file.read()))
    finally:
        for process, out_file, err_file in processes:
            if process.poll() is None:
                process.kill()
            out_file.close()
            err_file.close()
        shutil.rmtree(logs, ignore_errors=True)
    return results


def _result(stdout):
    return json.loads(stdout.split("RESULT ")[-1])


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi_worker")
    path = tmp / "run.py"
    path.write_text(RUN.format(tests=TESTS, weights=local_pretrained_weights(tmp)))
    return path


def test_the_command_line_starts_a_multi_worker_run(tmp_path):
    """`keras-tl train --distribute multi_worker`, as the guide shows it (a one-worker cluster here):
    the strategy is made before the CLI starts TensorFlow, which allows it only then."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(8):
            Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).save(tmp_path / "data" / name / f"{i}.png")
    (port,) = _free_ports(1)
    env = {
        **os.environ,
        "TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}}),
    }
    done = subprocess.run(
        [sys.executable, "-m", "keras_tl", "train", "--data", str(tmp_path / "data"), "--backbone", "mobilenet_v2"]
        + ["--weights", "none", "--image-size", "32", "--head-epochs", "1", "--fine-tune-epochs", "0"]
        + ["--distribute", "multi_worker", "--out", str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "MultiWorkerMirroredStrategy: 1 replicas" in done.stdout + done.stderr
    assert (tmp_path / "run" / "DONE").is_file()


def test_a_multi_worker_step_is_the_single_process_step(tmp_path):
    """Keras 3's `fit` fails on a cluster of two workers unless keras-tl mends the strategy's `reduce`
    (`distribute._keras_multi_worker_strategy`); with it, two workers' gradients, class weights and
    logs are the single process's."""
    script = tmp_path / "step.py"
    script.write_text(STEP.format())
    single = subprocess.run([sys.executable, str(script), "none"], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-3000:]
    results = _workers(script, None, args=["multi_worker"])
    for code, stdout, stderr in results:
        assert code == 0, stderr[-3000:]
        for a, b in zip(_result(stdout)["weights"], _result(single.stdout)["weights"], strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
        np.testing.assert_allclose(_result(stdout)["loss"], _result(single.stdout)["loss"], rtol=1e-5)


def _assert_lockstep(chief_out, worker_out):
    """Both workers end with the same weights, which training moved from their start."""
    chief, worker = _result(chief_out), _result(worker_out)
    np.testing.assert_allclose(chief["weights"], worker["weights"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(chief["abs"], worker["abs"], rtol=1e-6, atol=1e-6)


def test_two_workers_train_one_model_and_only_the_chief_writes(script, tmp_path):
    out = tmp_path / "shared" / "run"
    before = set(os.listdir(tempfile.gettempdir()))
    (chief, chief_out, chief_err), (worker, worker_out, worker_err) = _workers(script, out)
    assert chief == 0, chief_err[-3000:]
    assert worker == 0, worker_err[-3000:]
    assert "MultiWorkerMirroredStrategy: 2 replicas" in chief_out + chief_err
    assert f"worker done; the chief wrote the run directory {out}" in worker_out + worker_err
    assert _result(worker_out)["run_dir"] == str(out)
    assert os.path.isfile(out / "DONE") and os.listdir(tmp_path / "shared") == ["run"]
    assert not [d for d in set(os.listdir(tempfile.gettempdir())) - before if d.startswith("keras_tl_worker_")]
    _assert_lockstep(chief_out, worker_out)
    saved = [w.numpy().astype("float64").sum() for w in keras.saving.load_model(out / "model.keras").weights]
    np.testing.assert_allclose(saved, _result(chief_out)["weights"], rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_a_killed_multi_worker_run_resumes(script, tmp_path):
    """kill -9 both workers after phase 1's 2nd epoch, then start both again: the cluster resumes from
    the chief's state, in lockstep, and finishes."""
    out = tmp_path / "run"
    killed = _workers(script, out, kill_at="phase1:2")
    assert [code for code, _, _ in killed] == [-9, -9], [err[-2000:] for _, _, err in killed]
    assert not os.path.isfile(out / "DONE")
    (chief, chief_out, chief_err), (worker, worker_out, worker_err) = _workers(script, out)
    assert chief == 0 and worker == 0, (chief_err[-2000:], worker_err[-2000:])
    assert "resumed after epoch 2" in chief_out + chief_err and "resumed after epoch 2" in worker_out + worker_err
    assert os.path.isfile(out / "DONE")
    _assert_lockstep(chief_out, worker_out)


@pytest.mark.parametrize(
    "tf_config, role",
    [
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
        ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True),
    ],
)
def test_the_chief_is_the_chief_task_or_worker_zero(monkeypatch, tf_config, role):
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert distribute.writes_run_directory("multi_worker") is role
    assert distribute.writes_run_directory("none") is True


@pytest.mark.parametrize(
    "text", ["not json", '{"cluster": {}}', '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}']
)
def test_a_malformed_tf_config_is_refused_before_any_work(monkeypatch, tmp_path, text):
    monkeypatch.setenv("TF_CONFIG", text)
    config = keras_tl.TrainConfig(
        backbone="mobilenet_v2", weights="none", distribute="multi_worker", out=str(tmp_path / "run")
    )
    with pytest.raises(ConfigError, match="TF_CONFIG must be JSON naming the cluster"):
        keras_tl.train(config, keras_tl.datasets.load_digits([0, 1]))
    assert not (tmp_path / "run").exists()
