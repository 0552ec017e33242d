import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import local_pretrained_weights, write_image_folder

from keras_tl.cli import main


def test_train_writes_the_run_directory_then_evaluate_and_predict(tmp_path, capsys):
    root = write_image_folder(tmp_path / "data", num_classes=3, per_class=10, size=40)
    weights = local_pretrained_weights(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"backbone": "mobilenet_v2", "batch_size": 8, "schedule": "constant"}))
    out = tmp_path / "run"
    with open(os.path.join(root, "class_0", "notes.jpg"), "w") as f:  # Odd files: skipped, each one named.
        f.write("not an image")
    open(os.path.join(root, "class_1", "empty.png"), "w").close()
    code = main(
        [
            "train",
            "--config",
            str(config),
            "--data",
            root,
            "--weights",
            weights,
            "--image-size",
            "32",
            "--head-epochs",
            "1",
            "--fine-tune-epochs",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    said = capsys.readouterr()
    for odd in ("class_0/notes.jpg", "class_1/empty.png"):
        assert sum(odd in line and "skipped" in line for line in (said.out + said.err).splitlines()) == 1, odd
    files = set(os.listdir(out))
    assert {
        "config.yaml",
        "classes.json",
        "splits.json",
        "data_report.json",
        "history.json",
        "history_phase1.csv",
        "history_phase2.csv",
        "best.weights.h5",
        "model.keras",
        "metrics.json",
    } <= files
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["image_size"] == 32 and resolved["batch_size"] == 8 and resolved["problem"] == "multiclass"
    history = json.loads((out / "history.json").read_text())
    assert set(history) == {"phase1", "phase2"}
    metrics = json.loads((out / "metrics.json").read_text())
    per_class = metrics["per_class"].values()
    correct = sum(round(r["recall"] * r["support"]) for r in per_class)
    assert metrics["test_accuracy"] == pytest.approx(correct / metrics["num_examples"])
    assert metrics["macro_f1"] == pytest.approx(np.mean([r["f1"] for r in per_class]))
    assert sum(r["support"] for r in metrics["per_class"].values()) == metrics["num_examples"]
    report = json.loads((out / "data_report.json").read_text())
    assert report["imbalance"]["method"] == "class_weights" and set(metrics["class_weights"]) == {
        "class_0",
        "class_1",
        "class_2",
    }
    splits = json.loads((out / "splits.json").read_text())
    assert not set(splits["train"]["items"]) & set(splits["test"]["items"])

    assert main(["evaluate", str(out)]) == 0
    again = json.loads((out / "metrics_evaluate.json").read_text())
    assert again["test_accuracy"] == pytest.approx(metrics["test_accuracy"])

    capsys.readouterr()
    image = splits["test"]["items"][0]
    assert main(["predict", str(out), image, "--top-k", "2"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["image"] == image and len(line["top_k"]) == 2
    assert {t["label"] for t in line["top_k"]} <= {"class_0", "class_1", "class_2"}
    assert line["top_k"][0]["probability"] >= line["top_k"][1]["probability"]


def test_bad_config_fails_fast_with_exit_code_2(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path), "--backbone", "resnet9000", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "Unknown backbone 'resnet9000'" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--fine-tune-epochs", "-2"]) == 2
    assert "`--fine-tune-epochs` must be an integer >= 0. Received: --fine-tune-epochs -2" in capsys.readouterr().err


def test_backbones_listing_via_console_script():
    result = subprocess.run(
        [sys.executable, "-m", "keras_tl", "backbones", "efficientnet_b*"], capture_output=True, text=True, check=True
    )
    rows = [l.split() for l in result.stdout.strip().splitlines()[1:] if l.split()[1:2] == ["image"]]
    assert [r[0] for r in rows] == [f"efficientnet_b{i}" for i in range(8)]


def test_show_batch_writes_a_grid(tmp_path):
    from PIL import Image

    root = write_image_folder(tmp_path / "data", num_classes=3, per_class=10, size=40)
    grids = {}
    for augment in ("none", "strong"):
        png = tmp_path / f"batch_{augment}.png"
        assert main(["show-batch", "--data", root, "--augment", augment, "--image-size", "32", "--png", str(png)]) == 0
        with Image.open(png) as image:
            grids[augment] = np.asarray(image.convert("L"), np.float32)
    assert grids["none"].shape == grids["strong"].shape and grids["none"].std() > 10  # Not a blank page.
    assert np.mean(np.abs(grids["none"] - grids["strong"]) > 10) > 0.02  # The augmentation shows.


def test_multilabel_manifest_trains_end_to_end(tmp_path):
    write_image_folder(tmp_path / "imgs", num_classes=3, per_class=8)
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "imgs").rglob("*.png"))
    rows = ["path,label"] + [f"{f},{['a', 'a;b', 'b', 'b;c', 'c', 'a;c'][i % 6]}" for i, f in enumerate(files)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    weights = local_pretrained_weights(tmp_path)
    out = tmp_path / "ml"
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "m.csv"),
                "--weights",
                weights,
                "--image-size",
                "32",
                "--head-epochs",
                "1",
                "--fine-tune-epochs",
                "1",
                "--batch-size",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert yaml.safe_load((out / "config.yaml").read_text())["problem"] == "multilabel"
    assert {"subset_accuracy", "hamming_accuracy", "micro_f1", "thresholds"} <= set(metrics)
    assert metrics["test_accuracy"] == metrics["subset_accuracy"]
    assert set(metrics["per_class"]) == {"a", "b", "c"}


def test_impossible_requests_are_usage_errors_before_any_work(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("backbone: [mobilenet_v2\nepochs: 3\n")
    assert main(["train", "--config", str(bad_yaml), "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert f"{str(bad_yaml)!r} is not valid YAML" in capsys.readouterr().err
    # --int8-io without int8 used to write a float file named _uint8io.
    assert main(["export", str(tmp_path / "no_run"), "--format", "tflite", "--quantize", "dynamic", "--int8-io"]) == 2
    assert "`--int8-io` (uint8 input/output) needs --quantize 'int8'. Received: --quantize 'dynamic'" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "r").exists() and not os.path.exists("exported_models/no_run")


def test_show_batch_refuses_a_text_encoder(tmp_path, capsys):
    from conftest import tiny_bert_preset, tiny_texts

    texts, labels = tiny_texts(6)
    preset = tiny_bert_preset(tmp_path / "preset", texts)
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in zip(texts, labels)))
    assert main(["show-batch", "--data", str(csv_path), "--backbone", preset, "--png", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert "a text run has none to show" in err and "mobilenet" not in err
    assert not (tmp_path / "g.png").exists()


def test_help_lists_every_choice_the_validation_accepts():
    from keras_tl.core.contract import choices

    help_text = " ".join(
        subprocess.run(
            [sys.executable, "-m", "keras_tl", "train", "--help"], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    for values in (
        choices.STRATEGIES,
        choices.PROBLEMS,
        choices.SCHEDULES,
        choices.OPTIMIZERS,
        choices.BALANCES,
        choices.CACHES,
        choices.DISTRIBUTIONS,
        choices.AUGMENT_LEVELS,
        choices.POOLINGS,
    ):
        assert " | ".join(values) in help_text, values


def test_tensorflow_start_up_lines_stay_out_of_the_terminal():
    """The native lines (cudart_stub, cpu_feature_guard, absl) that TF_CPP_MIN_LOG_LEVEL alone misses."""
    script = (
        "from keras_tl.core.utils import quiet; quiet.start_tensorflow(); import tensorflow as tf; print(tf.add(1, 2))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and "3" in quiet.stdout
    assert quiet.stderr == ""
    loud = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf; print(tf.add(1, 2))"], capture_output=True, text=True, env=env
    )
    assert loud.stderr.strip(), "plain TensorFlow prints start-up lines here; the check above must mean something"


def test_bad_yaml_names_line_and_column(tmp_path, capsys):
    bad = tmp_path / "run.yaml"
    bad.write_text("backbone: mobilenet_v2\nepochs: [3\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{str(bad)!r} is not valid YAML: line 3, column 1" in err and "Expected a mapping" in err


def test_library_messages_name_boolean_options_as_switches():
    from keras_tl.cli import cli_words

    assert cli_words("pass overwrite=True (--overwrite) to replace it") == "pass --overwrite to replace it"
    assert cli_words("Received: feature_cache=False") == "Received: --no-feature-cache"
    assert cli_words("Received: head_norm=True, head_lr=0.5") == "Received: --head-norm, --head-lr 0.5"
    # Only switches: any other option keeps its value, even a boolean one (a wrong type to report).
    assert cli_words("Received: batch_size=True") == "Received: --batch-size True"
    assert cli_words("Received: jit_compile=False") == "Received: --jit-compile False"
