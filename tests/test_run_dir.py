"""The run directory under faults: one writer at a time, DONE written last, a start that never trained
blocks nothing, divergence of every kind stops the run, and nothing is written before the checks."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import local_pretrained_weights, tiny_arrays, tiny_config, write_image_folder

import keras_tl
from keras_tl.cli import main
from keras_tl.core.export import publish
from keras_tl.image.data import from_arrays
from keras_tl.workflow import rundir as run
from keras_tl.workflow import training_run

TESTS = os.path.dirname(os.path.abspath(__file__))


def _config(tmp_path, **overrides):
    return tiny_config(tmp_path, weights=local_pretrained_weights(tmp_path), strategy="feature_extraction", **overrides)


def test_a_second_writer_is_refused_while_the_first_lives_and_a_dead_ones_lock_is_stale(tmp_path):
    out = str(tmp_path / "run")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom keras_tl.workflow import rundir as run\nwith run.hold(sys.argv[1]):\n"
            "    print('held', flush=True)\n    time.sleep(120)\n",
            out,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(TESTS),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        source = from_arrays(*tiny_arrays(3, 10))
        with pytest.raises(
            keras_tl.RunExistsError, match=rf"being written by another keras-tl process \(pid {holder.pid}\)"
        ):
            keras_tl.train(_config(tmp_path), source)
        assert os.listdir(out) == [".lock"]  # Refused before anything was written.
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert os.listdir(out) == [".lock"]  # The killed holder's lock file is still there: stale.
    result = keras_tl.train(_config(tmp_path), source)
    assert run.is_finished(result.run_dir)


def test_a_run_killed_during_its_scratch_twin_is_not_finished_and_completes_on_rerun(tmp_path, monkeypatch):
    """metrics.json used to mark a run finished and was written before the from-scratch twin: a kill there
    left a run reported done forever, without its comparison."""
    source = from_arrays(*tiny_arrays(3, 10))
    config = _config(tmp_path, compare_scratch=True)
    real = training_run.fit_and_evaluate

    def killed_in_scratch(config, *args, **kwargs):
        if config.out.endswith("scratch"):
            raise KeyboardInterrupt  # What a kill leaves: the process stops here.
        return real(config, *args, **kwargs)

    monkeypatch.setattr(training_run, "fit_and_evaluate", killed_in_scratch)
    with pytest.raises(KeyboardInterrupt):
        keras_tl.train(config, source)
    assert os.path.isfile(tmp_path / "run" / "metrics.json") and not run.is_finished(str(tmp_path / "run"))
    with pytest.raises(keras_tl.ConfigError, match="not a finished keras-tl run directory"):
        keras_tl.load_run(str(tmp_path / "run"))
    monkeypatch.setattr(training_run, "fit_and_evaluate", real)
    result = keras_tl.train(config, source)  # The same command: resumes and finishes.
    assert run.is_finished(result.run_dir) and "scratch" in result.metrics
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["scratch"] == result.metrics["scratch"]


def test_a_run_that_never_finished_an_epoch_blocks_no_retry(tmp_path, monkeypatch):
    """A start that failed before its first epoch (here: a crash in the first batch) leaves a run directory;
    the next command, even with another config, replaces it instead of refusing."""
    source = from_arrays(*tiny_arrays(3, 10))

    def crash(*args, **kwargs):
        raise RuntimeError("the first batch failed")

    monkeypatch.setattr(training_run, "fit_and_evaluate", crash)
    with pytest.raises(RuntimeError):
        keras_tl.train(_config(tmp_path), source)
    assert os.path.isfile(tmp_path / "run" / "config.yaml")
    monkeypatch.undo()
    result = keras_tl.train(_config(tmp_path, head_lr=0.01), source)  # Another config: not refused.
    assert run.is_finished(result.run_dir) and result.config.head_lr == 0.01


def test_an_exploding_loss_stops_the_run_like_a_nan_and_exits_1(tmp_path, capsys):
    """--head-lr 1e9 used to publish a model with a loss of 9.4e9 and exit 0: only NaN/inf was caught."""
    root = write_image_folder(tmp_path / "data", num_classes=3, per_class=10, size=32)
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            root,
            "--weights",
            local_pretrained_weights(tmp_path),
            "--image-size",
            "32",
            "--batch-size",
            "8",
            "--head-epochs",
            "3",
            "--fine-tune-epochs",
            "1",
            "--head-lr",
            "1e9",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Training diverged: the loss exploded to" in err and "--head-lr 1e+08" in err
    failure = json.loads((out / "failure.json").read_text())
    assert float(failure["loss"]) > 100 * failure["exploded_from"]
    assert not (out / "model.keras").exists() and not (out / "DONE").exists()


@pytest.mark.parametrize("flag, value", [("--head-lr", "nan"), ("--head-lr", "inf"), ("--fine-tune-lr", "-1e-5")])
def test_learning_rates_must_be_finite_and_positive(tmp_path, capsys, flag, value):
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=4, size=32)
    assert main(["train", "--data", root, "--weights", "none", f"{flag}={value}", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"`{flag}` must be a finite positive number" in err and "head_lr=nan" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(seed=2**32), "`seed` must be an integer >= 0 and <= 4294967295"),
        (dict(weights="corrupt.weights.h5"), "not a readable HDF5 weights file"),
        (dict(weights="notes.txt"), "must be a Keras weights file ending in"),
        (dict(backbone="a_folder"), "is a folder, but no image or text or audio backbone reads it"),
    ],
)
def test_bad_weights_backbone_folders_and_seeds_fail_before_the_run_directory(tmp_path, overrides, message):
    (tmp_path / "corrupt.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(64))  # Truncated HDF5.
    (tmp_path / "notes.txt").write_text("not weights")
    (tmp_path / "a_folder").mkdir()
    overrides = {k: str(tmp_path / v) if k in ("weights", "backbone") else v for k, v in overrides.items()}
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=4, size=32)
    with pytest.raises(keras_tl.KerasTLError, match=message):
        keras_tl.train(tiny_config(tmp_path, data=root, **overrides))
    assert not (tmp_path / "run").exists()


def test_json_files_of_a_run_are_written_atomically(tmp_path, monkeypatch):
    """A write that fails half-way (a full disk) leaves the previous file whole and no temporary file."""
    run.write_json(str(tmp_path), "metrics.json", {"test_accuracy": 0.5})

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dumps", lambda value, **kwargs: "{" + '"half": ' * 3)
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run.write_json(str(tmp_path), "metrics.json", {"test_accuracy": 0.9})
    monkeypatch.undo()
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"test_accuracy": 0.5}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_resume_state_on_a_full_disk_keeps_the_last_state_and_no_temporary(tmp_path, monkeypatch):
    """The resume state (`.state/*.npz`) written when the disk fills half-way: a 2 MB `.tmp` was left."""
    from keras_tl.core.train import resume

    path = str(tmp_path / "weights.npz")
    resume._save_npz(path, [np.ones(3)])

    def full_disk(f, *arrays):
        f.write(b"\0" * (2 << 20))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(resume.np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        resume._save_npz(path, [np.zeros(3)])
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["weights.npz"]
    np.testing.assert_array_equal(resume._load_npz(path)[0], np.ones(3))


def test_yaml_numbers_are_read_as_yaml_1_2_reads_them(tmp_path):
    """`head_lr: 1e-3` was the string '1e-3' (YAML 1.1 wants `1.0e-3`) and refused as not a number."""
    (tmp_path / "c.yaml").write_text("head_lr: 1e-3\nfine_tune_lr: 3E-5\nhead_epochs: 7\nweights: none\n")
    config = keras_tl.TrainConfig.from_yaml(str(tmp_path / "c.yaml")).validate()
    assert (config.head_lr, config.fine_tune_lr, config.head_epochs) == (1e-3, 3e-5, 7)
    assert isinstance(config.head_lr, float) and isinstance(config.head_epochs, int)


@pytest.mark.parametrize(
    "error, code",
    [
        (keras_tl.ConfigError("bad value"), 2),
        (keras_tl.DataError("bad data"), 2),
        (keras_tl.WeightsError("bad weights"), 2),
        (keras_tl.TrainingDivergedError("diverged"), 1),
        (keras_tl.ExportCheckError("disagrees"), 1),
        (keras_tl.ServingError("bad answer"), 1),
    ],
)
def test_each_error_kind_is_one_line_with_its_exit_code(tmp_path, capsys, monkeypatch, error, code):
    """The CLI turns keras-tl's own errors into one line: exit 2 for input to change (settings, data, weights),
    1 for a run, an export or a server that failed."""
    assert issubclass(type(error), keras_tl.KerasTLError)
    monkeypatch.setattr(training_run, "_run", lambda *args, **kwargs: (_ for _ in ()).throw(error))
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=3, size=16)
    assert main(["train", "--data", root, "--weights", "none", "--out", str(tmp_path / "run")]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(error) in err


def test_a_full_disk_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    from keras_tl.workflow import training_run as module

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "model.keras"))

    monkeypatch.setattr(module, "_run", full_disk)
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=4, size=32)
    assert (
        main(["train", "--data", root, "--weights", "none", "--image-size", "32", "--out", str(tmp_path / "run")]) == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("keras-tl train: error: No space left on device:") and len(err.splitlines()) == 1


def test_errors_that_are_not_keras_tl_errors_keep_their_traceback(tmp_path, monkeypatch):
    """The CLI turned every ValueError (Keras' and TensorFlow's too) into a usage error that hid bugs."""
    from keras_tl.workflow import training_run as module

    def bug(*args, **kwargs):
        raise ValueError("a bug inside fit")

    monkeypatch.setattr(module, "_run", bug)
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=4, size=32)
    with pytest.raises(ValueError, match="a bug inside fit"):
        main(["train", "--data", root, "--weights", "none", "--image-size", "32", "--out", str(tmp_path / "run")])


def test_killed_exports_leave_nothing_and_versions_are_readable_by_another_user(tmp_path):
    """A killed export's `.tmp-*` folders were never removed; versions were drwx------ (mkdtemp)."""

    dest = tmp_path / "exports" / "m"
    dest.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (dest / f".tmp-{dead.pid}-12345").mkdir()
    (dest / f".tmp-{dead.pid}-12345" / "variables.data").write_bytes(b"x" * 1000)
    (dest / f".tmp-{os.getpid()}-live").mkdir()  # This process's: alive, kept.
    assert publish.remove_stale(str(dest)) == [f".tmp-{dead.pid}-12345"]
    assert sorted(os.listdir(dest)) == [f".tmp-{os.getpid()}-live"]
    folder = publish.temporary(str(dest))
    (tmp_path / "f").write_text("x")
    os.rename(tmp_path / "f", os.path.join(folder, "saved_model.pb"))
    assert os.stat(folder).st_mode & 0o777 == 0o700  # What mkdtemp gives.
    publish.readable(folder)
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(folder).st_mode & 0o777 == 0o777 & ~mask
    assert os.stat(os.path.join(folder, "saved_model.pb")).st_mode & 0o777 == 0o666 & ~mask


def test_keep_versions_below_one_is_refused_before_anything_is_loaded(tmp_path, capsys):
    assert main(["export", str(tmp_path / "no_run"), "--keep-versions", "-1"]) == 2
    assert "`--keep-versions` must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(keras_tl.ConfigError, match="keep_versions"):
        keras_tl.export_run(str(tmp_path / "no_run"), keep_versions=0)


def test_export_out_must_be_a_folder_and_top_k_positive(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=4, size=32)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                root,
                "--weights",
                "none",
                "--image-size",
                "32",
                "--strategy",
                "feature_extraction",
                "--head-epochs",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["export", str(out), "--out", str(tmp_path / "a_file")]) == 2
    assert "`--out` must be a folder" in capsys.readouterr().err
    image = os.path.join(root, "class_0", os.listdir(os.path.join(root, "class_0"))[0])
    assert main(["predict", str(out), image, "--top-k", "-2"]) == 2
    assert "`--top-k` must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(keras_tl.ConfigError, match=r"`top_k` must be an integer >= 1. Received: top_k=-2"):
        keras_tl.predict(str(out), [image], top_k=-2)  # The Python API returned all but the last 2 classes.
    assert main(["predict", "--server", "http://127.0.0.1:1", "--model", "m", str(tmp_path / "missing.png")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_keras_objects_register_whichever_of_keras_and_keras_tl_comes_first(tmp_path):
    """`keras.saving.load_model` of a run's model.keras failed after `import keras, keras_tl`, and after
    keras-tl started TensorFlow (`keras-tl evaluate` / `export` of any run in a new process)
    ("Could not locate class 'ImagePreprocessing'")."""
    model = keras_tl.build_classifier("mobilenet_v2", num_classes=2, weights="none", image_size=32).model
    path = str(tmp_path / "m.keras")
    model.save(path)
    x = np.full((1, 32, 32, 3), 100, np.float32)
    expected = model.predict(x, verbose=0)
    np.save(tmp_path / "x.npy", x)
    for imports in (
        "import keras, keras_tl",
        "import keras_tl, keras",
        "import keras_tl.core.models.layers, keras",
        # TensorFlow first (as the CLI starts it): it tries `import keras` while half-imported and swallows
        # the failure; keras-tl must still register its classes when keras does import (it did not).
        "import keras_tl, tensorflow, keras",
        "import keras_tl\nfrom keras_tl.core.utils import quiet\nquiet.start_tensorflow()\nimport keras",
    ):
        script = (
            f"{imports}\nimport numpy as np, sys\nm = keras.saving.load_model(sys.argv[1])\n"
            "np.save(sys.argv[2], m.predict(np.load(sys.argv[3]), verbose=0))\n"
            "assert keras_tl.audio.presets.FRONT_END.sample_rate == 44100\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, path, str(tmp_path / "y.npy"), str(tmp_path / "x.npy")],
            capture_output=True,
            text=True,
            cwd=os.path.dirname(TESTS),
        )
        assert done.returncode == 0, (imports, done.stderr[-2000:])
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5)
        if imports.startswith("import keras_tl"):  # keras-tl imports TensorFlow: its start-up lines stay out.
            assert "oneDNN" not in done.stderr and "cudart" not in done.stderr, (imports, done.stderr[-500:])


def test_done_is_written_after_every_other_file(tmp_path):
    started = time.time()
    result = keras_tl.train(_config(tmp_path), from_arrays(*tiny_arrays(3, 10)))
    done = os.path.getmtime(os.path.join(result.run_dir, run.DONE_FILE))
    assert (
        all(
            os.path.getmtime(os.path.join(result.run_dir, f)) <= done
            for f in ("metrics.json", "model.keras", "report.md")
        )
        and done >= started
    )


@pytest.mark.slow
def test_a_bench_runs_twice_in_a_row(tmp_path):
    """`python bench/recipe_vs_keras_tl.py` failed on its second run: its random weights go to a new
    temporary file each time, so the second run met 'another config' in its run directory."""
    bench = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "recipe_vs_keras_tl.py")
    command = [
        sys.executable,
        bench,
        "--size",
        "32",
        "--head-epochs",
        "1",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "r"),
    ]
    for attempt in (1, 2):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, f"run {attempt}: {done.stderr[-2000:]}"
        assert done.stdout.strip().splitlines()[-1].startswith("phase1_speedup=")


def test_a_library_user_silences_train_with_the_keras_tl_logger_and_keras(tmp_path, capsys):
    """`train()` speaks through the `keras_tl` logger and Keras' own printing, so both switches a
    library user has silence it: nothing reaches stdout or stderr."""
    import logging

    import keras

    source = from_arrays(*tiny_arrays(2, 8))
    keras_tl.train(tiny_config(tmp_path, out=str(tmp_path / "loud"), strategy="feature_extraction"), source)
    assert "[keras-tl]" in capsys.readouterr().out  # By default it speaks.
    logger = logging.getLogger("keras_tl")
    level = logger.level
    logger.setLevel(logging.WARNING)
    keras.config.disable_interactive_logging()
    try:
        keras_tl.train(tiny_config(tmp_path, out=str(tmp_path / "quiet"), strategy="feature_extraction"), source)
    finally:
        logger.setLevel(level)
        keras.config.enable_interactive_logging()
    assert capsys.readouterr() == ("", "")
    assert os.path.isfile(tmp_path / "quiet" / "DONE")


def test_a_run_written_before_a_field_existed_is_still_the_same_config(tmp_path):
    """A field added to TrainConfig since a run was written (its config.yaml lacks it) counts at its
    default: rerunning the same command finds the finished run instead of 'another config'."""
    import yaml

    from keras_tl.workflow import rundir

    config = keras_tl.TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"))
    run = tmp_path / "run"
    run.mkdir()
    older = {
        k: v for k, v in json.loads(json.dumps(config.to_dict())).items() if k not in ("head_norm", "head_weights")
    }
    (run / "config.yaml").write_text(yaml.safe_dump(older))
    (run / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5}))
    rundir.finish(str(run))
    with pytest.raises(keras_tl.RunExistsError, match="holds a finished run of this same config") as caught:
        rundir.check_run_dir(str(run), config)
    assert caught.value.finished
    (run / "config.yaml").write_text(yaml.safe_dump({**older, "head_norm": True}))
    with pytest.raises(keras_tl.RunExistsError, match=r"another config \(head_norm: True -> False\)"):
        rundir.check_run_dir(str(run), config)
