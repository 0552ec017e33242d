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
from keras_tl.workflow import auto_run, checks

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
    result = keras_tl.auto(config, budget="120s", backbones=BACKBONES, max_trials=6)
    assert result.seconds <= 1.1 * 120, result.seconds
    state = json.load(open(os.path.join(config.out, auto_run.STATE_FILE)))
    assert list(state["stages"]) == ["rank", "search", "rate", "train", "export"]
    assert state["budget_overrun"] <= 1.1
    out = capsys.readouterr().out
    assert "auto plan (120 s budget)" in out.splitlines()[0]  # The plan comes first.
    for stage in ("[1/6] rank", "[3/6] search", "[4/6] rate", "[5/6] train", "[6/6] export"):
        assert stage in out
    # Each kept candidate's search starts from the config as given; the chosen head is the best on validation.
    first = {t["backbone"]: t for t in result.trials if t["trial"] == 0}
    assert set(first) == {r["backbone"] for r in state["stages"]["rank"]["kept"]}
    for row in first.values():
        assert (row["head_lr"], row["dropout"], row["dense_units"], row["balance"]) == (1e-3, 0.2, 0, "class_weights")
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
            trial = json.load(open(os.path.join(root, "trial.json")))
            if trial["status"] == "COMPLETED":
                found.append((root, trial))
    return found


@pytest.mark.slow
def test_a_killed_auto_resumes_after_its_last_finished_trial(tmp_path, capsys):
    config = _config(tmp_path)
    argv = [
        "auto", "--data", config.data, "--image-size", "32", "--batch-size", "16", "--fine-tune-epochs", "1",
        "--out", config.out, "--budget", "150s", "--backbones", BACKBONES[1], "--max-trials", "40",
    ]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_tl", *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    search = os.path.join(config.out, "search")
    deadline = time.time() + 300
    while len(_trials(search)) < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr[-2000:]
    assert "oneDNN" not in stderr and "cuda" not in stderr  # A quiet terminal, KerasTuner imported or not.
    before = {os.path.basename(root): trial for root, trial in _trials(search)}
    assert len(before) >= 2
    state = json.load(open(os.path.join(config.out, auto_run.STATE_FILE)))
    assert list(state["stages"]) == ["rank"] and state["spent"] > 0
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "rank finished before" in out
    after = {os.path.basename(root): trial for root, trial in _trials(search)}
    for name, trial in before.items():  # The trials finished before the kill are kept as they were.
        assert after[name]["hyperparameters"]["values"] == trial["hyperparameters"]["values"]
        assert after[name]["score"] == trial["score"]
    assert len(after) > len(before)
    state = json.load(open(os.path.join(config.out, auto_run.STATE_FILE)))
    assert list(state["stages"]) == ["rank", "search", "rate", "train", "export"]
    assert state["spent"] <= 1.1 * 150  # The killed call's seconds count against the budget too.


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
    assert open_({"budget_seconds": 60.0, "top": 3}, overwrite=True)["stages"] == {}
    assert sorted(os.listdir(out)) == [".lock"]  # Emptied, the lock kept.
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
