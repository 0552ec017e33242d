"""A binary model's operating point: a threshold chosen on validation for a target recall or precision,
measured on test, and applied by `predict`, the SavedModel's `labels` output and the exports' cards."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config
from PIL import Image

from keras_tl import datasets, workflow
from keras_tl.cli import main
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.evaluation import operating_point
from keras_tl.core.models.heads import serving_outputs

CLASSES = ["functional", "defective"]


def _scores(rng, positives, negatives):
    """Binary probabilities `(N, 2)` and labels: defective cells score Beta(4, 2), functional Beta(2, 4)."""
    p = np.concatenate([rng.beta(4, 2, positives), rng.beta(2, 4, negatives)])
    labels = np.concatenate([np.ones(positives, int), np.zeros(negatives, int)])
    return np.stack([1 - p, p], axis=1), labels


def test_a_threshold_for_recall_095_on_validation_gives_that_recall_on_held_out_data():
    rng = np.random.default_rng(0)
    val, val_labels = _scores(rng, 300, 300)
    test, test_labels = _scores(rng, 5000, 5000)
    point = operating_point.choose(val_labels, val, CLASSES, target_recall=0.95, positive_class="defective")
    assert point["positive_class"] == "defective" and point["reached"]
    assert point["validation"]["recall"] >= 0.95
    # The highest such threshold: the next higher validation score misses the target. The threshold
    # sits halfway to the next lower score, so last-bit differences of another runtime cannot flip one.
    scores = np.sort(val[:, 1])
    above = scores[scores >= point["threshold"]][0]
    below = scores[scores < point["threshold"]][-1]
    assert point["threshold"] == pytest.approx((above + below) / 2)
    assert operating_point.rates(val_labels, val[:, 1], 1, np.nextafter(above, 1))[1] < 0.95
    measured = operating_point.measure(point, test_labels, test, CLASSES)
    # Within sampling error: validation's 300 positives fix the threshold, test's 5000 measure it.
    error = np.sqrt(0.95 * 0.05 / 300 + 0.95 * 0.05 / 5000)
    assert abs(measured["recall"] - 0.95) < 3 * error, measured
    assert measured["recall_stderr"] == pytest.approx(
        np.sqrt(measured["recall"] * (1 - measured["recall"]) / 5000), abs=1e-4
    )
    # Not the 0.5 of argmax: a recall of 0.95 on these scores needs a lower threshold.
    assert point["threshold"] < 0.4


def test_a_threshold_for_precision_is_the_lowest_that_reaches_it_or_says_it_was_not_reached():
    rng = np.random.default_rng(1)
    val, labels = _scores(rng, 300, 300)
    point = operating_point.choose(labels, val, CLASSES, target_precision=0.9)
    assert point["positive_class"] == "defective"  # The second class by default: the sigmoid's.
    assert point["reached"] and point["validation"]["precision"] >= 0.9
    lower = val[:, 1][val[:, 1] < point["threshold"]].max()
    assert operating_point.rates(labels, val[:, 1], 1, lower)[0] < 0.9
    mixed = np.full((4, 2), 0.5)  # Every score equal: no threshold separates anything.
    unreachable = operating_point.choose(np.array([0, 1, 0, 1]), mixed, CLASSES, target_precision=0.99)
    assert not unreachable["reached"] and unreachable["validation"]["precision"] == 0.5


def test_the_serving_labels_follow_the_threshold_not_the_top_class():
    probabilities = tf.constant([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    plain = serving_outputs(probabilities, CLASSES, "binary")
    assert [x.decode() for x in plain["labels"].numpy()] == ["functional", "defective", "functional"]
    for threshold, expected in (
        (0.05, ["defective"] * 3),
        (0.95, ["functional"] * 3),
        (0.35, ["functional", "defective", "defective"]),
    ):
        point = {"positive_class": "defective", "threshold": threshold}
        labels = serving_outputs(probabilities, CLASSES, "binary", operating_point=point)["labels"].numpy()
        assert [x.decode() for x in labels] == expected, threshold
    point = {"positive_class": "functional", "threshold": 0.65}
    labels = serving_outputs(probabilities, CLASSES, "binary", operating_point=point)["labels"].numpy()
    assert [x.decode() for x in labels] == ["functional", "defective", "defective"]


@pytest.mark.parametrize(
    "classes, overrides, message",
    [
        ([0, 1, 2], {"target_recall": 0.95}, "binary model"),
        ([0, 1], {"target_recall": 0.9, "target_precision": 0.9}, "Name one target"),
        ([0, 1], {"target_recall": 0.9, "positive_class": "7"}, r"one of the data's classes \['0', '1'\]"),
        ([0, 1], {"positive_class": "1"}, "neither is set"),
        ([0, 1], {"target_recall": 0.9, "problem": "multiclass"}, "use problem 'binary' or 'auto'"),
    ],
)
def test_targets_that_cannot_apply_are_refused_before_anything_is_written(tmp_path, classes, overrides, message):
    config = tiny_config(tmp_path, **overrides)
    with pytest.raises(ConfigError, match=message):
        workflow.train(config, datasets.load_digits(classes))
    assert not os.path.exists(config.out)


def test_a_validation_split_without_the_positive_class_is_refused_before_training(tmp_path):
    """It trained first and failed after, leaving a half-written run; a precision target wrote NaN."""
    source = datasets.load_digits([0, 1])
    split = np.where(np.arange(len(source.labels)) < 300, "train", "test").astype(object)
    split[np.flatnonzero(source.labels == 0)[-5:]] = "val"  # Validation: five 0s and no 1.
    from keras_tl.core.data import predefined_indices

    source.predefined = predefined_indices(split)
    for target in ({"target_recall": 0.9}, {"target_precision": 0.9}):
        config = tiny_config(tmp_path, positive_class="1", **target)
        with pytest.raises(ConfigError, match="The validation split has no '1' example"):
            workflow.train(config, source)
        assert not os.path.exists(config.out)
    figures = operating_point.measure(
        {"positive_class": "1", "threshold": 0.5}, [0, 0], np.full((2, 2), 0.5), ["0", "1"]
    )
    assert figures["recall"] is None and "recall undefined" in operating_point.describe(figures)
    json.dumps(figures, allow_nan=False)  # Strict JSON: no NaN.


def test_out_of_range_targets_are_usage_errors(capsys):
    assert main(["train", "--data", ".", "--target-recall", "1.5"]) == 2
    assert (
        "`--target-recall` must be a number in (0, 1] or null. Received: --target-recall 1.5" in capsys.readouterr().err
    )


def test_a_binary_run_keeps_its_threshold_and_predict_and_the_saved_model_apply_it(tmp_path, capsys):
    config = tiny_config(
        tmp_path, target_recall=0.95, positive_class="0", strategy="full", head_epochs=3, fine_tune_epochs=0
    )
    result = workflow.train(config, datasets.load_digits([0, 1]))
    point = json.loads((tmp_path / "run" / operating_point.FILE).read_text())
    assert point == result.metrics["operating_point"] and point["positive_class"] == "0"
    assert point["validation"]["recall"] >= 0.95 and 0 <= point["test"]["recall"] <= 1
    assert "Operating point: recall 0.95 of `0`" in (tmp_path / "run" / "report.md").read_text()

    test = workflow.load_split(result.run_dir, "test")
    classifier = workflow.load_run(result.run_dir)
    probabilities = classifier.predict(test.items)
    decided = [["1", "0"][int(p[0] >= point["threshold"])] for p in probabilities]
    assert classifier.predict_labels(test.items) == decided
    files = []
    for i, image in enumerate(test.items[:4]):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.asarray(image, np.uint8)).save(files[-1])
    labelled = workflow.labelled_predictions(result.run_dir, files)
    assert [label for _, label in labelled] == decided[:4]
    assert main(["predict", result.run_dir, files[0]]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["label"] == decided[0]

    exported = workflow.export_run(result.run_dir, "saved_model", out=str(tmp_path / "exported"), name="digits01")
    card = json.loads(open(os.path.join(exported.path, "model_card.json")).read())
    assert card["operating_point"]["threshold"] == point["threshold"]
    served = tf.saved_model.load(exported.path).signatures["serving_images"](
        images=tf.constant(classifier.inputs(test.items), tf.float32)
    )
    served_p = served["probabilities"].numpy()
    assert [x.decode() for x in served["labels"].numpy()] == [
        ["1", "0"][int(p[0] >= point["threshold"])] for p in served_p
    ]
    evaluated = workflow.evaluate_run(result.run_dir)
    assert evaluated["operating_point"]["test"] == point["test"]  # `evaluate` measures the run's rule again.
    records = json.loads((tmp_path / "run" / "exports.json").read_text())
    assert records[-1]["operating_point"]["threshold"] == point["threshold"]
    # The run's file is what the export applies: a threshold no probability reaches labels all "1".
    (tmp_path / "run" / operating_point.FILE).write_text(json.dumps({**point, "threshold": 1.01}))
    again = workflow.export_run(result.run_dir, "saved_model", out=str(tmp_path / "exported"), name="digits01")
    served = tf.saved_model.load(again.path).signatures["serving_images"](
        images=tf.constant(classifier.inputs(test.items), tf.float32)
    )
    assert {x.decode() for x in served["labels"].numpy()} == {"1"}
    assert served["probabilities"].numpy()[:, 0].max() > 0.5  # Which the top class would have labelled "0".
