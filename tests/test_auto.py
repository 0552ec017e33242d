"""`keras-tl auto`: rank, head search on cached features, range test, two-phase run, checked export,
under a time budget, resumable, and reproducible from its chosen.yaml."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import write_image_folder

import keras_tl
from keras_tl.cli import main as cli
from keras_tl.core.contract import modality as modalities
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import ConfigError, DataError
from keras_tl.workflow import auto_run, checks, stage_costs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKBONES = ["efficientnet_lite0", "mobilenet_v2_torchvision"]  # Real ImageNet weights, installed as assets.


def _config(tmp_path, **overrides):
    data = write_image_folder(tmp_path / "digits", num_classes=3, per_class=30, size=40)
    values = dict(data=data, image_size=32, batch_size=16, fine_tune_epochs=2, out=str(tmp_path / "auto"))
    return TrainConfig(**{**values, **overrides})


@pytest.mark.parametrize(
    "budget, seconds", [(600, 600.0), ("600", 600.0), ("90s", 90.0), ("10m", 600.0), ("1.5h", 5400.0)]
)
def test_a_budget_reads_as_seconds(budget, seconds):
    assert checks.parse_budget(budget) == seconds


@pytest.mark.parametrize("budget", ["5s", "ten minutes", "", True, -60, "nan", "10d"])
def test_a_budget_that_is_no_time_is_refused_in_one_line(budget):
    with pytest.raises(ConfigError, match=r"`budget` must be a time of at least 30 s.*Received: budget="):
        checks.parse_budget(budget)


def test_the_data_tells_its_modality(tmp_path):
    images = write_image_folder(tmp_path / "images", num_classes=2, per_class=2)
    texts = tmp_path / "texts.csv"
    texts.write_text("text,label\na small stream,water\na large body of salt water,water\n")
    sounds = tmp_path / "sounds.csv"
    sounds.write_text("path,label\nclips/a.wav,dog\nclips/b.wav,cat\n")
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "notes.txt").write_text("nothing a plug-in reads")
    assert modalities.guess(images) == "image"
    assert modalities.guess(str(texts)) == "text"
    assert modalities.guess(str(sounds)) == "audio"
    with pytest.raises(ConfigError, match="Cannot tell the modality of data=.*give `modality`"):
        modalities.guess(str(odd))
    with pytest.raises(DataError, match="Data not found"):
        modalities.guess(str(tmp_path / "missing"))


def test_a_request_is_checked_before_any_work(tmp_path):
    config = _config(tmp_path)
    ok = dict(budget="1m", target="tflite", max_latency_ms=None, top=2, backbones=None)
    seconds, candidates, modality = checks.check_auto(config, **ok)
    assert (seconds, modality) == (60.0, "image")
    assert set(BACKBONES) <= set(candidates)  # Every image backbone whose weights are here.
    bad = [
        ({"target": "keras"}, "`target` must be one of"),
        ({"max_latency_ms": 0}, "`max_latency_ms` must be a number > 0"),
        ({"top": 0}, "`top` must be an integer >= 1"),
        ({"backbones": ["efficientnet_lite0", "minilm_l6"]}, "backbones of one modality"),
        ({"backbones": ["resnet9000"]}, "Unknown backbone 'resnet9000'"),
    ]
    for change, message in bad:
        with pytest.raises(ConfigError, match=message):
            checks.check_auto(config, **{**ok, **change})
    with pytest.raises(ConfigError, match="fine-tunes pretrained backbones"):
        checks.check_auto(TrainConfig.from_dict({**config.to_dict(), "weights": "none"}), **ok)
    assert not os.path.exists(config.out)  # Nothing written.


@pytest.mark.slow
def test_auto_keeps_its_budget_and_its_chosen_yaml_reproduces_the_model(tmp_path, capsys):
    """The whole path on real ImageNet weights: every stage recorded, the budget kept (<= 1.1x), the
    search's first trial the config as given, and `keras-tl train --config chosen.yaml` the same model."""
    config = _config(tmp_path)
    started = time.perf_counter()
    result = keras_tl.auto(config, budget="120s", backbones=BACKBONES, max_trials=6)
    assert time.perf_counter() - started <= 1.1 * 120 and result.seconds <= 1.1 * 120, result.seconds
    state = json.load(open(os.path.join(config.out, auto_run.STATE_FILE)))
    assert list(state["stages"]) == ["rank", "search", "rate", "train", "export", "report"]
    assert state["stages"]["report"]["budget_overrun"] <= 1.1
    out = capsys.readouterr().out
    assert "auto plan (120 s budget)" in out.splitlines()[0]  # The plan comes first.
    for stage in ("[1/6] rank", "[3/6] search", "[4/6] rate", "[5/6] train", "[6/6] export"):
        assert stage in out
    # Each kept candidate's search starts from the config as given; the chosen head is the best on validation.
    first = {t["backbone"]: t for t in result.trials if t["trial"] == 0}
    assert set(first) == {r["backbone"] for r in state["stages"]["rank"]["kept"]}
    for row in first.values():
        assert (row["head_lr"], row["dropout"], row["dense_units"], row["balance"]) == (1e-3, 0.2, "", "class_weights")
    best = state["stages"]["search"]["best"]
    assert best["score"] == max(t["val_score"] for t in result.trials)
    assert {"rank.md", "auto.md", "trials.png", "chosen.yaml", "lr_find_fine_tune.png"} <= set(os.listdir(config.out))
    assert "| backbone | trial |" in open(os.path.join(config.out, "auto.md")).read()
    assert result.export["check"]["top1_agreement"] == 1.0 and result.export["latency_ms_batch1"] > 0
    assert os.path.isfile(result.export["path"])
    # chosen.yaml, given to `train` with another --out, trains the same model.
    again = str(tmp_path / "again")
    assert cli(["train", "--config", os.path.join(config.out, "chosen.yaml"), "--out", again]) == 0
    ours = json.load(open(os.path.join(config.out, "model", "metrics.json")))
    theirs = json.load(open(os.path.join(again, "metrics.json")))
    assert theirs["test_accuracy"] == ours["test_accuracy"] == result.metrics["test_accuracy"]
    ours_history = json.load(open(os.path.join(config.out, "model", "history.json")))
    theirs_history = json.load(open(os.path.join(again, "history.json")))
    np.testing.assert_allclose(theirs_history["phase1"]["val_loss"], ours_history["phase1"]["val_loss"], rtol=1e-4)
    # Run again: a finished run is reported, not redone.
    assert (
        cli(
            [
                "auto",
                "--data",
                config.data,
                "--image-size",
                "32",
                "--batch-size",
                "16",
                "--fine-tune-epochs",
                "2",
                "--out",
                config.out,
                "--budget",
                "120s",
                "--backbones",
                ",".join(BACKBONES),
                "--max-trials",
                "6",
            ]
        )
        == 0
    )
    assert "holds a finished run of this same request (see auto.md)" in capsys.readouterr().out


def _trials(folder):
    found = []
    for root, _, files in os.walk(folder):
        if "trial.json" in files:
            try:
                trial = json.load(open(os.path.join(root, "trial.json")))
            except ValueError:  # Being written by the process under test.
                continue
            if trial["status"] == "COMPLETED":
                found.append((root, trial))
    return found


def _killed(argv, ready, timeout=300):
    """Runs `keras-tl ARGV` in a process and kills it (SIGKILL) once `ready()`; returns its stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_tl", *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + timeout
    while not ready() and process.poll() is None and time.time() < deadline:
        time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr[-2000:]
    return stderr


@pytest.mark.slow
def test_a_killed_auto_resumes_in_its_search_and_in_its_training(tmp_path, capsys):
    """Killed (SIGKILL) in the head search, then in the two-phase run: each rerun of the same command
    keeps what was finished (trials, epochs) and the seconds spent before each kill count."""
    config = _config(tmp_path)
    argv = [
        "auto", "--data", config.data, "--image-size", "32", "--batch-size", "16", "--fine-tune-epochs", "2",
        "--out", config.out, "--budget", "150s", "--backbones", BACKBONES[1], "--max-trials", "12",
    ]  # fmt: skip
    search = os.path.join(config.out, "search")
    stderr = _killed(argv, lambda: len(_trials(search)) >= 2)
    assert "oneDNN" not in stderr and "cuda" not in stderr  # A quiet terminal, KerasTuner imported or not.
    before = {os.path.basename(root): trial for root, trial in _trials(search)}
    assert len(before) >= 2
    state = json.load(open(os.path.join(config.out, auto_run.STATE_FILE)))
    assert list(state["stages"]) == ["rank"]
    spent_in_search = stage_costs.Clock.read(os.path.join(config.out, auto_run.CLOCK_FILE))
    assert spent_in_search > state["spent"]  # The seconds inside the killed stage were recorded too.
    resume_state = os.path.join(config.out, "model", "resume", "state.json")
    _killed(argv, lambda: os.path.isfile(resume_state))  # Now in training: search and range test finished.
    state = json.load(open(os.path.join(config.out, auto_run.STATE_FILE)))
    assert list(state["stages"]) == ["rank", "search", "rate"] and "chosen" in state
    after = {os.path.basename(root): trial for root, trial in _trials(search)}
    for name, trial in before.items():  # The trials finished before the first kill are kept as they were.
        assert after[name]["hyperparameters"]["values"] == trial["hyperparameters"]["values"]
        assert after[name]["score"] == trial["score"]
    assert len(after) > len(before)
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "rank finished before" in out and "search finished before" in out
    assert "resuming with" in out  # The run in model/ went on from its last epoch:
    assert "resumed after epoch" in out or "finished before the interruption" in out
    assert "Reloading Tuner" not in out  # KerasTuner's own print, kept off the user's terminal.
    state = json.load(open(os.path.join(config.out, auto_run.STATE_FILE)))
    assert list(state["stages"]) == ["rank", "search", "rate", "train", "export", "report"]
    assert state["stages"]["report"]["spent"] > spent_in_search  # Every call's seconds count.
    assert os.path.isfile(os.path.join(config.out, "auto.md"))


@pytest.mark.slow
def test_a_latency_limit_no_candidate_meets_names_what_was_measured(tmp_path):
    config = _config(tmp_path)
    with pytest.raises(
        ConfigError, match=r"No candidate answers within max_latency_ms=0.001 .*mobilenet_v2_torchvision \d"
    ):
        keras_tl.auto(config, budget="5m", backbones=[BACKBONES[1]], max_latency_ms=0.001, target="tflite")
    state = json.load(open(os.path.join(config.out, auto_run.STATE_FILE)))
    assert list(state["stages"]) == ["rank"]  # Stopped at the screen, nothing trained.


def test_an_auto_folder_holds_one_request_and_says_when_it_is_finished(tmp_path):
    from keras_tl.core.contract.errors import RunExistsError
    from keras_tl.workflow import rundir as run

    out, state_file = str(tmp_path / "auto"), auto_run.STATE_FILE

    def open_(request, overwrite=False):
        with run.hold(out, marker=state_file):
            return run.open_stages(out, state_file, request, overwrite=overwrite, last="export", report="auto.md")

    state = open_({"budget_seconds": 60.0, "top": 2})
    assert state == {"request": {"budget_seconds": 60.0, "top": 2}, "stages": {}, "spent": 0.0}
    state["stages"]["rank"] = {"kept": []}
    run.write_json(out, state_file, state)
    assert open_({"budget_seconds": 60.0, "top": 2})["stages"] == {"rank": {"kept": []}}  # Resumes.
    with pytest.raises(RunExistsError, match=r"another request \(it differs in top\)") as error:
        open_({"budget_seconds": 60.0, "top": 3})
    assert not error.value.finished
    state["stages"]["export"] = {"path": "x"}
    run.write_json(out, state_file, state)
    with pytest.raises(RunExistsError, match="finished run of this same request") as error:
        open_({"budget_seconds": 60.0, "top": 2})
    assert error.value.finished
    with open(os.path.join(out, state_file), "w") as f:
        f.write('{"request": {"budget_sec')  # Cut short by hand (keras-tl writes it atomically).
    with pytest.raises(RunExistsError, match=r"auto.json' is not a state keras-tl wrote .*overwrite=True"):
        open_({"budget_seconds": 60.0, "top": 2})
    assert open_({"budget_seconds": 60.0, "top": 3}, overwrite=True)["stages"] == {}
    assert sorted(os.listdir(out)) == [".lock", "auto.json"]  # Emptied (the lock kept), then the new state.
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.png").write_bytes(b"not ours")
    with pytest.raises(RunExistsError, match=r"not a keras-tl run directory \(no auto.json"):
        with run.hold(str(other), marker=state_file):
            pass
    assert os.listdir(other) == ["cat.png"]  # Nothing written into a folder keras-tl did not make.


def test_phase_two_rate_is_a_tenth_of_the_lowest_loss_rate():
    from keras_tl.core.train import lr_finder

    rates = np.geomspace(1e-7, 1e-1, 60)
    losses = 0.3 + 0.05 * np.sin(np.arange(60)) * 0.01 + 5 * np.maximum(0, np.log10(rates / 1e-4)) ** 2
    losses[:30] -= np.linspace(0, 0.1, 30)  # A slow fall to 1e-4, then divergence.
    suggested = lr_finder.minimum_over_ten(rates, losses)
    lowest = rates[np.argmin(lr_finder.smooth(losses))]
    assert suggested == pytest.approx(lowest / 10)
    assert 1e-6 < suggested < 3e-5


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["text", "audio"])
def test_text_and_audio_go_through_the_same_auto_to_a_served_signature(tmp_path, modality):
    """The plug-in contract end to end for the other modalities, to a SavedModel whose first signature is
    timed as TF Serving runs it (audio's signatures come from its own `endpoint_checks`)."""
    from conftest import tiny_texts

    if modality == "text":
        from keras_tl.text import data as text_data

        source = text_data.from_texts(*tiny_texts(per_class=12))
        config = TrainConfig(sequence_length=16, batch_size=8, fine_tune_epochs=1, out=str(tmp_path / "auto"))
        backbones = ["minilm_l6"]
    else:
        from test_audio import tiny_drums

        source = tiny_drums(per_class=6)
        config = TrainConfig(clip_seconds=0.5, batch_size=8, fine_tune_epochs=1, out=str(tmp_path / "auto"))
        backbones = ["aisfx_cnn9"]
    result = keras_tl.auto(config, source, budget="60s", backbones=backbones, target="saved_model", max_trials=3)
    assert result.chosen.modality == modality and result.chosen.backbone == backbones[0]
    assert result.export["format"] == "saved_model" and result.export["latency_ms_batch1"] > 0
    signatures = [c for c in result.export["check"].values() if isinstance(c, dict) and "top1_agreement" in c]
    assert signatures and all(c["top1_agreement"] == 1.0 for c in signatures)  # Checked against Keras.
    assert 1 <= len(result.trials) <= 3 and result.trials[0]["trial"] == 0
    state = json.load(open(os.path.join(config.out, auto_run.STATE_FILE)))
    assert state["request"]["source"]["items"] == len(source.labels)  # Resumes only on the same data.


def test_a_search_state_torn_by_a_kill_starts_the_search_over(tmp_path, capsys):
    from keras_tl.workflow import head_search

    project = tmp_path / "tuner"
    (project / "trial_00").mkdir(parents=True)
    (project / "oracle.json").write_text('{"ongoing_trials": {}}')
    (project / "trial_00" / "trial.json").write_text('{"trial_id": "00", "hyperpa')  # Cut mid-write.
    head_search._drop_torn(str(project))
    assert not project.exists()
    assert "cut short by a kill; the head search starts over" in capsys.readouterr().out
    (project / "trial_00").mkdir(parents=True)
    (project / "oracle.json").write_text('{"ongoing_trials": {}}')
    head_search._drop_torn(str(project))
    assert (project / "oracle.json").exists()  # Whole files are kept.
