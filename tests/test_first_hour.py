"""What a first-time user meets: answers before TensorFlow loads, offline defaults that say what works,
re-runs that report instead of redoing, a quiet terminal."""

import json
import os
import subprocess
import sys

import pytest
from conftest import write_image_folder

from keras_tl.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(script, *args):
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["backbones"],
        ["backbones", "--offline"],
        ["train", "--data", "/no/such/folder"],
        ["train", "--data", ".", "--backbone", "resnet9000"],
        ["train", "--data", ".", "--fine-tune-epochs", "-1"],
        ["export", "no_run", "--keep-versions", "0"],
        ["predict", "no_run", "x.png"],
        ["train", "--head-lr=nan"],
        ["compare", "--data", ".", "--backbones", "efficientnet_lite0,mobilenet_v2_torchvision", "--top", "3"],
        ["auto", "--data", "/no/such/folder"],
        ["auto", "--data", ".", "--modality", "image", "--budget", "5s"],
        ["auto", "--data", ".", "--backbones", "efficientnet_lite0,minilm_l6"],
        ["auto", "--data", ".", "--modality", "image", "--out", "docs"],  # A folder keras-tl did not make.
    ],
)
def test_usage_errors_and_listings_answer_without_importing_tensorflow(argv):
    """A usage error took 7-15 s: TensorFlow was imported before the arguments were checked."""
    done = _python(
        "import sys\nfrom keras_tl.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules, code)",
        *argv,
    )
    assert done.stdout.strip().splitlines()[-1] in ("False False 0", "False False 2"), (argv, done.stdout, done.stderr)


def test_offline_defaults_name_the_backbones_that_work_here(tmp_path, capsys):
    """The default backbone's weights need a download: offline, the error says which backbones have
    weights here, before anything is written."""
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=4)
    assert main(["train", "--data", root, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "The ImageNet weights of 'mobilenet_v2' are not on this machine" in err
    assert "Backbones with weights here: efficientnet_lite0, mobilenet_v2_torchvision" in err
    assert "--weights 'none'" in err and not (tmp_path / "run").exists()
    assert main(["backbones", "--offline", "--modality", "image"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if "image" in line.split()[1:2]]
    assert listed == ["efficientnet_lite0", "mobilenet_v2_torchvision"]
    assert main(["backbones", "--modality", "image"]) == 0  # The weights column: where each one's weights are.
    weights = {
        line.split()[0]: line.split()[2] for line in capsys.readouterr().out.splitlines()[1:] if len(line.split()) > 2
    }
    assert weights["efficientnet_lite0"] == "here" and weights["efficientnet_b0"] in ("download", "here")
    assert weights["mobilenet_v2_torchvision"] == "here"
    # lr-find's default backbone offline: the same answer, before any work; `compare --top` counts both
    # offline backbones (it said "`top` must be between 1 and 1").
    assert main(["lr-find", "--data", root]) == 2
    assert "Backbones with weights here: efficientnet_lite0, mobilenet_v2_torchvision" in capsys.readouterr().err
    pair = "efficientnet_lite0,mobilenet_v2_torchvision"
    assert main(["compare", "--data", root, "--backbones", pair, "--top", "3"]) == 2
    assert "`--top` must be between 1 and 2" in capsys.readouterr().err


@pytest.mark.slow
def test_every_keras_application_names_the_file_keras_caches(monkeypatch):
    """`keras-tl backbones` says `here` when Keras' cache holds a backbone's weights: the file name each
    spec expects is the one Keras downloads (checked by asking Keras, without a download)."""
    import fnmatch

    import keras
    from keras.src.utils import file_utils

    from keras_tl.core.contract import registry
    from keras_tl.image import applications

    asked = []

    def get_file(fname=None, origin=None, **kwargs):
        asked.append(fname or os.path.basename(origin))
        raise RuntimeError("no download in this test")

    monkeypatch.setattr(file_utils, "get_file", get_file)
    for name in registry.names(modality="image"):
        spec = registry.get(name)
        if spec.weights_from != "keras" or spec.default_size > 300:
            continue  # The imported networks, and the largest nets (slow to build; their rule is the same).
        asked.clear()
        with pytest.raises(RuntimeError, match="no download"):
            applications.construct(spec, weights="imagenet", include_top=False, input_shape=(96, 96, 3))  # Keras' word
        assert asked and fnmatch.fnmatch(asked[-1], spec.weights_file), (name, asked, spec.weights_file)
        keras.backend.clear_session()


@pytest.mark.slow
def test_quickstart_reports_finished_runs_instead_of_retraining(tmp_path, monkeypatch):
    """Re-running `keras-tl quickstart` deleted both runs and retrained them (641 s)."""
    from keras_tl import quickstart

    settings = dict(labels_per_class=4, image_size=32, head_epochs=1, fine_tune_epochs=1)
    first = quickstart.run(str(tmp_path / "qs"), **settings)
    stamps = {p: os.stat(os.path.join(tmp_path, "qs", p, "model.keras")).st_mtime_ns for p in ("transfer", "scratch")}
    export_stamp = os.stat(first["export"]["path"]).st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("a finished quickstart trained again")

    monkeypatch.setattr(quickstart, "export_run", no_training)
    again = quickstart.run(str(tmp_path / "qs"), **settings)
    assert again["transfer"]["test_accuracy"] == first["transfer"]["test_accuracy"]
    assert again["scratch"]["macro_f1"] == first["scratch"]["macro_f1"]
    assert {p: os.stat(os.path.join(tmp_path, "qs", p, "model.keras")).st_mtime_ns for p in stamps} == stamps
    assert os.stat(again["export"]["path"]).st_mtime_ns == export_stamp
    assert "transfer - scratch" in quickstart.summary(again)


def test_rank_writes_its_table_where_it_says(tmp_path, capsys, monkeypatch):
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=6, size=32)
    monkeypatch.chdir(tmp_path)
    assert main(["rank", "--backbones", "efficientnet_lite0", "--data", root, "--image-size", "32", "--no-random"]) == 0
    out = capsys.readouterr().out
    assert "rank table: runs/rank/rank.md" in out
    rows = json.loads((tmp_path / "runs" / "rank" / "rank.json").read_text())
    assert [r["backbone"] for r in rows] == ["efficientnet_lite0"]


def test_the_python_api_keeps_tensorflow_quiet(tmp_path):
    """`import keras_tl` then any call printed TensorFlow's start-up lines and `cuInit` twice."""
    script = (
        "import keras_tl, numpy as np\n"
        "m = keras_tl.build_classifier('efficientnet_lite0', num_classes=2, image_size=32).model\n"
        "print(m.predict(np.zeros((1, 32, 32, 3)), verbose=0).shape)\n"
    )
    done = _python(script)
    assert done.returncode == 0 and "(1, 1)" in done.stdout, done.stderr[-2000:]  # Two classes: one sigmoid.
    assert done.stderr == "", done.stderr[-2000:]


@pytest.mark.slow
def test_progress_bars_write_no_escape_codes_into_a_log(tmp_path):
    """With stdout a file, Keras' bars wrote ANSI escapes and carriage returns into it."""
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=6, size=32)
    log = tmp_path / "train.log"
    with open(log, "w") as f:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "keras_tl",
                "train",
                "--data",
                root,
                "--weights",
                "none",
                "--image-size",
                "32",
                "--head-epochs",
                "1",
                "--fine-tune-epochs",
                "1",
                "--out",
                str(tmp_path / "run"),
            ],
            stdout=f,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
    text = log.read_text()
    assert done.returncode == 0, done.stderr[-1000:]
    assert "Epoch 2/2" in text and " - val_loss: " in text  # One plain line per epoch.
    assert "\x1b[" not in text and "\r" not in text and "\b" not in text
    assert done.stderr == "", done.stderr[-1000:]


def test_the_command_line_imports_keras_without_its_unused_optional_helpers():
    """One-image `predict` took 6.4 s, about 1 s of it Keras importing scikit-learn/SciPy and pyplot for
    helpers keras-tl never calls. In the CLI's process they are skipped while Keras imports, keras-tl's
    own Keras objects still register, and both packages import normally afterwards."""
    script = (
        "import sys\n"
        "import keras_tl\n"
        "from keras_tl.core.utils import quiet\n"
        "quiet.lean_keras_import()\n"
        "import keras\n"
        "skipped = [m for m in quiet.KERAS_OPTIONAL_EXTRAS if m in sys.modules]\n"
        "registered = keras.saving.get_registered_object('keras_tl>ImagePreprocessing') is not None\n"
        "import sklearn.metrics, matplotlib.pyplot\n"
        "print(skipped, registered)\n"
    )
    done = _python(script)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[] True", done.stdout


def test_a_one_batch_prediction_is_an_eager_call_that_matches_predict():
    """`Classifier.predict` on items that fit one batch calls the model eagerly (tracing `predict`'s
    function was 0.8 s of a one-image CLI answer); it gives what `model.predict` gives."""
    import numpy as np

    import keras_tl

    classifier = keras_tl.build_classifier("efficientnet_lite0", num_classes=3, image_size=32, weights="none")
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    traced = []
    model_predict = classifier.model.predict
    classifier.model.predict = lambda *a, **k: traced.append(1) or model_predict(*a, **k)
    eager = classifier.predict(images, batch_size=8)
    assert traced == []
    batched = classifier.predict(images, batch_size=2)
    assert traced == [1]
    np.testing.assert_allclose(eager, batched, atol=1e-5)
    assert eager.shape == (4, 3)


@pytest.mark.parametrize(
    "argv, said",
    [
        (["rank", "--data", "photos/"], "keras-tl rank: error: the following arguments are required: --backbones"),
        (["train", "--head-epochs", "x"], "keras-tl train: error: argument --head-epochs: invalid"),
        (["nosuchcommand"], "keras-tl: error: argument command: invalid choice: 'nosuchcommand'"),
    ],
)
def test_an_argparse_usage_error_is_one_line_that_says_where_the_options_are(argv, said, capsys):
    """`rank` without --backbones printed the command's 34-line usage above the one line that mattered."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    lines = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(said) and lines[0].endswith("--help` lists the options)"), lines[0]
