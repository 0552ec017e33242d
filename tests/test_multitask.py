"""Multi-task heads: labels, losses and metrics by head (Keras' multi-output API), a two-phase run and its exports."""

import json
import os

import keras
import numpy as np
import pytest
import yaml
from conftest import TINY_SIZE, tiny_config

import keras_tl
from keras_tl import cli, datasets, workflow
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.data import Source, multitask_labels
from keras_tl.core.evaluation.evaluate import classification_metrics, evaluate_predictions
from keras_tl.core.export import litert, tflite_metadata
from keras_tl.core.models import multitask


def test_labels_from_columns_blocks_and_missing_labels():
    names, labels = multitask_labels.labels_from_columns(
        {"grade": ["0", "1", None, "1"], "kind": ["mono", "poly", "poly", ""]}
    )
    assert names == ["grade:0", "grade:1", "kind:mono", "kind:poly"]
    assert labels.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 1], [0, 1, 0, 0]]
    assert multitask_labels.heads_of(names) == [("grade", ["0", "1"], 0, 2), ("kind", ["mono", "poly"], 2, 4)]
    assert multitask_labels.looks_multitask(names, labels)
    assert not multitask_labels.looks_multitask(["a", "b"], np.eye(2, dtype=int))
    assert {h: v.tolist() for h, v in multitask_labels.head_labels(labels, names).items()} == {
        "grade": [0, 1, -1, 1],
        "kind": [0, 1, 1, -1],
    }
    with pytest.raises(ValueError, match="no label for any head"):
        multitask_labels.labels_from_columns({"a": ["x", "y", None], "b": ["u", "v", None]})
    with pytest.raises(ValueError, match="identifier"):
        multitask_labels.labels_from_columns({"a b": ["x", "y"], "c": ["u", "v"]})
    with pytest.raises(ValueError, match="at least 2 heads"):
        multitask_labels.labels_from_columns({"a": ["x", "y"]})
    # A list of classes gives one row several classes of a head, which makes that head multi-label.
    names, labels = multitask_labels.labels_from_columns(
        {"grade": ["0", "1", None], "tags": [["crack", "finger"], "crack", ["dark"]]}
    )
    assert names == ["grade:0", "grade:1", "tags:crack", "tags:dark", "tags:finger"]
    assert labels.tolist() == [[1, 0, 1, 0, 1], [0, 1, 1, 0, 0], [0, 0, 0, 1, 0]]
    assert multitask_labels.head_kinds(names, labels) == {"grade": "multiclass", "tags": "multilabel"}
    assert multitask_labels.looks_multitask(names, labels)
    assert multitask_labels.row_heads(
        {"label:a": " x ; y ;", "label:b": "", "label:c": ["u"]}, ["label:a", "label:b", "label:c"]
    ) == {"a": ["x", "y"], "b": None, "c": "u"}


def _tiny_multitask_model(kinds=None, names=None):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = keras.layers.Identity(name="head_pool")(inputs)
    names = names or [f"a:{i}" for i in range(3)] + ["b:no", "b:yes"]
    return keras.Model(inputs, multitask.multitask_head(x, names, kinds=kinds, dropout=0.0)), names


def _by_head(model, x, y, class_weights=None):
    """One batch of `(x, rows)` as `fit` gets it: `(x, {head: block}, {head: sample weight})`."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))
    return next(iter(multitask.targets_by_head(dataset, model, class_weights)))


def test_masked_heads_send_no_gradient_from_rows_missing_their_label():
    """Keras' multi-output API: a dict of heads, a loss per head, and rows without a head's label
    weighing 0 for it: that head gets no gradient from them; the loss is the weighted sum of heads."""
    import tensorflow as tf

    model, names = _tiny_multitask_model()
    assert list(model.output) == ["a", "b"] and multitask.blocks_of(model) == [("a", 0, 3), ("b", 3, 5)]
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    y = np.zeros((6, 5), "float32")
    y[:3, 0] = 1  # Rows 0-2 label head a only; rows 3-5 label head b only.
    y[3:, 4] = 1
    loss, loss_weights, _ = multitask.loss_and_metrics(model, {"a": 2.0, "b": 0.5})
    model.compile(loss=loss, loss_weights=loss_weights)
    _, targets, weights = _by_head(model, x, y)
    np.testing.assert_array_equal(weights["a"], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(weights["b"], [0, 0, 0, 1, 1, 1])

    def grads(rows):
        with tf.GradientTape() as tape:
            predicted = model(x[rows])
            value = model.compute_loss(
                x[rows],
                {h: t[rows] for h, t in targets.items()},
                predicted,
                {h: w[rows] for h, w in weights.items()},
            )
        return {v.path: g for v, g in zip(model.trainable_variables, tape.gradient(value, model.trainable_variables))}

    only_b = grads(slice(3, 6))  # No row labels head a: its layer gets exactly zero gradient.
    assert np.all(only_b["predictions_a/kernel"].numpy() == 0) and np.any(only_b["predictions_b/kernel"].numpy() != 0)
    only_a = grads(slice(0, 3))
    assert np.all(only_a["predictions_b/kernel"].numpy() == 0) and np.any(only_a["predictions_a/kernel"].numpy() != 0)
    # The loss is the loss-weighted sum of the labelled heads' cross-entropies, over the batch.
    p = multitask.joined(model.predict(x, verbose=0))
    value = float(model.compute_loss(x, targets, model(x), weights))
    expected = np.where(np.arange(6) < 3, 2.0 * -np.log(p[:, 0]), 0.5 * -np.log(p[:, 4]))
    assert value == pytest.approx(expected.mean(), rel=1e-5)
    # Class weights (balanced) weigh a head's rows by their class, in training batches only.
    _, _, balanced = _by_head(model, x, y, {"a": [3.0, 1.0, 1.0], "b": [1.0, 0.25]})
    np.testing.assert_allclose(balanced["a"], [3, 3, 3, 0, 0, 0])
    np.testing.assert_allclose(balanced["b"], [0, 0, 0, 0.25, 0.25, 0.25])


def _fixed_outputs_model(sizes, kinds=None):
    """A multi-task model that outputs its inputs (one per head): metrics on chosen probabilities."""
    inputs = {head: keras.Input((size,), name=head) for head, size in sizes.items()}
    outputs = {
        head: keras.layers.Activation(
            "sigmoid" if (kinds or {}).get(head) == "multilabel" else "linear", name=f"predictions_{head}"
        )(inputs[head])
        for head in sizes
    }
    model = keras.Model(inputs, outputs)
    loss, loss_weights, metrics = multitask.loss_and_metrics(model)
    model.compile(loss=loss, loss_weights=loss_weights, weighted_metrics=metrics)
    return model


def _evaluate(model, probabilities, y):
    import tensorflow as tf

    inputs = {}
    for head, a, b in multitask.blocks_of(model):
        inputs[head] = probabilities[:, a:b].astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((inputs, y.astype("float32"))).batch(len(y))
    logs = model.evaluate(multitask.targets_by_head(dataset, model), verbose=0, return_dict=True)
    (pooled,) = multitask.callbacks_for(model)
    pooled.on_epoch_end(0, logs)
    return logs


def test_head_accuracy_and_evaluation_against_hand_counts():
    names = ["a:0", "a:1", "a:2", "b:no", "b:yes"]
    y = np.array([[1, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1]])
    p = np.array(
        [[0.8, 0.1, 0.1, 0.3, 0.7], [0.6, 0.3, 0.1, 0.5, 0.5], [0.1, 0.1, 0.8, 0.9, 0.1], [0.3, 0.3, 0.4, 0.6, 0.4]]
    )
    logs = _evaluate(_fixed_outputs_model({"a": 3, "b": 2}), p, y)
    # Head a labels rows 0-2 (right: 0, 2); head b rows 0, 2, 3 (right: 0, 2): the masked rows count not.
    assert logs["a_accuracy"] == pytest.approx(2 / 3) and logs["b_accuracy"] == pytest.approx(2 / 3)
    assert logs["accuracy"] == pytest.approx(2 / 3)  # The heads' mean, what monitor="val_accuracy" reads.
    metrics = evaluate_predictions(y, p, names, "multitask")
    assert metrics["heads"]["a"]["num_examples"] == 3 and metrics["heads"]["b"]["num_examples"] == 3
    assert metrics["heads"]["a"] == classification_metrics([0, 1, 2], p[:3, :3], ["0", "1", "2"])
    assert metrics["heads"]["b"] == classification_metrics([1, 0, 1], p[[0, 2, 3], 3:], ["no", "yes"])
    assert metrics["test_accuracy"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert set(metrics["per_class"]) == set(names)


def test_a_multilabel_head_masks_missing_rows_and_scores_label_wise():
    """A sigmoid head beside a softmax head: binary cross-entropy averaged over its classes, no
    gradient from rows that lack its labels, label-wise accuracy and multi-label test metrics."""
    import tensorflow as tf

    from keras_tl.core.evaluation.evaluate import multilabel_metrics

    model, names = _tiny_multitask_model({"tags": "multilabel"}, ["a:0", "a:1", "a:2", "tags:x", "tags:y"])
    assert multitask.kinds_of(model) == {"a": "multiclass", "tags": "multilabel"}
    assert model.get_layer("predictions_tags").activation.__name__ == "sigmoid"
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    y = np.zeros((6, 5), "float32")
    y[:3, 1] = 1  # Rows 0-2 label head a only; rows 3-5 label the tags only (row 3 both tags).
    y[3, 3:] = 1
    y[4, 3] = y[5, 4] = 1
    loss, loss_weights, _ = multitask.loss_and_metrics(model, {"a": 1.0, "tags": 2.0})
    model.compile(loss=loss, loss_weights=loss_weights)
    _, targets, weights = _by_head(model, x, y)
    with tf.GradientTape() as tape:
        value = model.compute_loss(
            x[:3], {h: t[:3] for h, t in targets.items()}, model(x[:3]), {h: w[:3] for h, w in weights.items()}
        )
    grads = dict(zip([v.path for v in model.trainable_variables], tape.gradient(value, model.trainable_variables)))
    assert np.all(grads["predictions_tags/kernel"].numpy() == 0) and np.any(grads["predictions_a/kernel"].numpy() != 0)
    p = multitask.joined(model.predict(x, verbose=0))
    bce = -np.mean(y[:, 3:] * np.log(p[:, 3:]) + (1 - y[:, 3:]) * np.log(1 - p[:, 3:]), axis=1)
    expected = np.where(np.arange(6) < 3, -np.log(p[:, 1]), 2.0 * bce)
    assert float(model.compute_loss(x, targets, model(x), weights)) == pytest.approx(expected.mean(), rel=1e-4)
    q = np.array(
        [
            [0.1, 0.8, 0.1, 0.9, 0.9],
            [0.7, 0.2, 0.1, 0.1, 0.1],
            [0.2, 0.7, 0.1, 0.1, 0.1],
            [0.3, 0.3, 0.4, 0.9, 0.2],
            [0.3, 0.3, 0.4, 0.6, 0.4],
            [0.3, 0.3, 0.4, 0.4, 0.6],
        ],
        "float32",
    )
    logit = np.log(q / (1 - q))  # The fixed model's sigmoid gives q back.
    logs = _evaluate(
        _fixed_outputs_model({"a": 3, "tags": 2}, {"tags": "multilabel"}),
        np.concatenate([q[:, :3], logit[:, 3:]], 1),
        y,
    )
    # Tags: rows 3-5 get 1/2, 1, 1 of their two classes right; head a: rows 0 and 2 of 0-2.
    assert logs["tags_accuracy"] == pytest.approx(2.5 / 3) and logs["a_accuracy"] == pytest.approx(2 / 3)
    assert logs["accuracy"] == pytest.approx((2.5 / 3 + 2 / 3) / 2)
    evaluation = evaluate_predictions(y, q, names, "multitask", {"a": "multiclass", "tags": "multilabel"})
    reference = multilabel_metrics(y[3:, 3:], q[3:, 3:], ["x", "y"])
    assert evaluation["heads"]["tags"] == {"accuracy": reference["subset_accuracy"], **reference}
    assert evaluation["heads"]["tags"]["accuracy"] == pytest.approx(2 / 3)
    assert evaluation["heads"]["a"]["accuracy"] == pytest.approx(2 / 3)


def test_the_pooled_accuracy_is_the_mean_of_the_heads_and_mixed_rows_weigh_their_share():
    """`val_accuracy` (what `monitor` reads) is the mean of the heads' accuracies, whatever each head's
    count of labelled rows; a MixUp row whose other half lacks a head's label weighs the labelled share."""
    logs = {"a_accuracy": 0.9, "b_accuracy": 0.5, "val_a_accuracy": 1.0, "val_b_accuracy": 0.2, "loss": 1.0}
    model, _ = _tiny_multitask_model()
    (pooled,) = multitask.callbacks_for(model)
    pooled.on_epoch_end(0, logs)
    assert logs["accuracy"] == pytest.approx(0.7) and logs["val_accuracy"] == pytest.approx(0.6)
    assert multitask.callbacks_for(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])) == []
    x = np.zeros((3, 4), "float32")
    y = np.array([[0.7, 0, 0, 0, 0], [0, 0, 1, 0.4, 0.6], [0, 0, 0, 0, 0]], "float32")  # Row 0: 70% a row of "a:0".
    _, targets, weights = _by_head(model, x, y, {"a": [2.0, 1.0, 1.0], "b": [1.0, 3.0]})
    np.testing.assert_allclose(weights["a"], [1.4, 1.0, 0.0])
    np.testing.assert_allclose(weights["b"], [0.0, 0.4 + 1.8, 0.0])
    np.testing.assert_array_equal(targets["b"], y[:, 3:])


def test_head_specs_are_checked_when_made():
    from keras_tl.core.contract.errors import ConfigError
    from keras_tl.core.models.heads import HeadSpec
    from keras_tl.image.model import build_model

    with pytest.raises(ConfigError, match="Multi-task class names are 'head:class'. Received: 'a'"):
        HeadSpec(3, "multitask", class_names=("a", "b", "c"))  # Before any backbone is built.
    with pytest.raises(ConfigError, match="not 'val' or 'val_...'"):
        HeadSpec(4, "multitask", class_names=("val:a", "val:b", "x:a", "x:b"))
    assert HeadSpec(np.int64(3), dense_units=[8]).num_classes == 3
    with pytest.raises(ConfigError, match="not both"):
        build_model("mobilenet_v2", num_classes=3, head=HeadSpec(2), weights="none", image_size=32)
    with pytest.raises(ConfigError, match="Head 'a' names class 'x' twice"):
        HeadSpec(4, "multitask", class_names=("a:x", "a:x", "b:x", "b:y"))
    # `build_classifier` resolves "head:class" names as `train` does (it built one 4-way softmax), and
    # takes a numpy integer as HeadSpec does.
    built = keras_tl.build_classifier(
        "mobilenet_v2", np.int64(4), class_names=["a:x", "a:y", "b:x", "b:y"], weights="none", image_size=32
    )
    assert built.problem == "multitask" and list(built.model.output) == ["a", "b"]


def test_config_and_data_errors_fail_before_work(tmp_path):
    with pytest.raises(ValueError, match=r"`head_weights` must be a mapping of names to a finite number > 0"):
        TrainConfig(head_weights={"grade": 0}).validate()
    with pytest.raises(ValueError, match="`problem` must be 'auto' or 'multitask'"):
        TrainConfig(head_weights={"grade": 1.0}, problem="multiclass").validate()
    source = _digit_heads()
    with pytest.raises(ValueError, match=r"heads the data does not have: \['colour'\]"):
        workflow.train(tiny_config(tmp_path, head_weights={"digit": 1.0, "colour": 1.0}), source)
    with pytest.raises(ValueError, match="several heads"):
        workflow.train(tiny_config(tmp_path, problem="multitask"), datasets.load_digits([0, 1, 2]))
    assert not os.path.exists(tmp_path / "run")
    manifest = tmp_path / "both.csv"
    manifest.write_text("path,label,label:grade\nx.png,a,b\n")
    with pytest.raises(ValueError, match="not both"):
        workflow.train(tiny_config(tmp_path, data=str(manifest)))
    # A head no validation row labels: Keras reports its accuracy as 0, which pulled the mean that
    # `monitor` reads down by half without a word. Refused before any work.
    source = _digit_heads(missing=0)
    order = np.arange(len(source.labels))
    source.predefined = {"train": order[:120], "val": order[120:180], "test": order[180:240]}
    source.labels[120:180, :4] = 0  # The digit head: unlabelled in every validation row.
    with pytest.raises(
        keras_tl.ConfigError, match=r"Head\(s\) \['digit'\] have no labelled row in the validation split"
    ):
        workflow.train(tiny_config(tmp_path), source)
    assert not os.path.exists(tmp_path / "run")


STROKES = {"0": ["loop"], "1": ["line"], "2": ["curve", "line"], "3": ["curve"]}


def _digit_heads(missing=0.3):
    """Digits 0-3 with three heads: the digit (missing for a share of rows), its parity and the
    strokes it is drawn with (multi-label: a 2 is a curve and a line)."""
    source = datasets.load_digits([0, 1, 2, 3])
    digits = [source.class_names[i] for i in source.labels]
    drop = np.random.default_rng(0).random(len(digits)) < missing
    names, labels = multitask_labels.labels_from_columns(
        {
            "digit": [None if d else x for x, d in zip(digits, drop)],
            "parity": ["even" if int(x) % 2 == 0 else "odd" for x in digits],
            "strokes": [STROKES[x] for x in digits],
        }
    )
    return Source(names, source.items, labels, modality="image")


@pytest.mark.slow
def test_multitask_run_trains_two_phase_and_every_export_agrees(tmp_path, monkeypatch):
    """One backbone, three heads (one with missing labels, one multi-label): cached frozen phase,
    unfrozen phase, per-head metrics, a reloadable run, and .keras / SavedModel / TFLite exports
    that agree with Keras per head; MediaPipe's ImageClassifier reads every head with its labels."""
    config = tiny_config(
        tmp_path,
        backbone="efficientnet_lite0",
        weights="pretrained",
        head_epochs=3,
        fine_tune_epochs=1,
        head_weights={"digit": 1.0, "parity": 0.5, "strokes": 1.0},
        monitor="val_accuracy",
        compare_scratch=True,
    )
    result = workflow.train(config, _digit_heads())
    metrics = result.metrics
    assert result.config.problem == "multitask" and set(metrics["heads"]) == {"digit", "parity", "strokes"}
    assert multitask.kinds_of(result.model) == {"digit": "multiclass", "parity": "multiclass", "strokes": "multilabel"}
    strokes = metrics["heads"]["strokes"]  # Multi-label metrics; better than predicting no stroke at all.
    assert strokes["accuracy"] == strokes["subset_accuracy"] and strokes["macro_f1"] > 0.5, strokes
    assert not os.path.exists(os.path.join(result.run_dir, "confusion_matrix_strokes.png"))
    assert metrics["heads"]["digit"]["num_examples"] < metrics["heads"]["parity"]["num_examples"]
    for head in ("digit", "parity"):  # Better than always answering the commonest class.
        counts = np.array([row["support"] for row in metrics["heads"][head]["per_class"].values()])
        assert metrics["heads"][head]["accuracy"] > counts.max() / counts.sum() + 0.05, metrics["heads"][head]
    # The from-scratch twin trains the same two heads; its mean-over-heads accuracy is compared.
    scratch = json.load(open(os.path.join(result.run_dir, "scratch", "metrics.json")))
    assert set(scratch["heads"]) == {"digit", "parity", "strokes"}
    assert metrics["transfer_minus_scratch"] == pytest.approx(metrics["test_accuracy"] - scratch["test_accuracy"])
    history = result.histories
    assert "val_digit_accuracy" in history["phase1"] and "val_parity_accuracy" in history["phase2"]
    for phase in ("phase1", "phase2"):  # What monitor="val_accuracy" read: the heads' mean, every epoch.
        heads_mean = np.mean([history[phase][f"val_{h}_accuracy"] for h in ("digit", "parity", "strokes")], axis=0)
        np.testing.assert_allclose(history[phase]["val_accuracy"], heads_mean, rtol=1e-6)
    assert os.path.isfile(os.path.join(result.run_dir, "confusion_matrix_parity.png"))
    assert "| parity |" in open(os.path.join(result.run_dir, "report.md")).read()
    # The saved run reloads as a multi-task task and re-evaluates to the same metrics.
    assert workflow.evaluate_run(result.run_dir)["heads"]["digit"]["accuracy"] == metrics["heads"]["digit"]["accuracy"]
    out = str(tmp_path / "exported")
    for fmt in ("keras", "saved_model", "tflite"):
        exported = workflow.export_run(result.run_dir, fmt, out=out, name="heads")
        checks = (
            [c for k, c in exported.check.items() if isinstance(c, dict) and k != "storage"]
            if fmt == "saved_model"
            else [exported.check]
        )
        assert len(checks) >= 1 and all(c["top1_agreement"] == 1.0 for c in checks), exported.check
    import tensorflow as tf

    served = tf.saved_model.load(os.path.join(out, "heads", "1")).signatures["serving_images"]
    task = workflow.load_run(result.run_dir)
    test = workflow.load_split(result.run_dir, "test").subset(range(8))
    images = task.inputs(test.items)
    answer = served(images=tf.constant(images, tf.float32))
    reference = task.predict(test.items)
    np.testing.assert_allclose(answer["digit_probabilities"].numpy(), reference[:, :4], atol=1e-4)
    np.testing.assert_allclose(answer["parity_probabilities"].numpy(), reference[:, 4:6], atol=1e-4)
    np.testing.assert_allclose(answer["strokes_probabilities"].numpy(), reference[:, 6:], atol=1e-4)
    assert [s.decode() for s in answer["parity_label"].numpy()] == [
        ["even", "odd"][i] for i in reference[:, 4:6].argmax(1)
    ]
    path = os.path.join(out, "heads", "tflite", "heads_none.tflite")
    np.testing.assert_allclose(litert.tflite_predict(path, images), reference, atol=1e-4)
    metadata, files = tflite_metadata.read(open(path, "rb").read())
    outputs = {t.name.decode(): t.description.decode() for t in metadata.subgraphMetadata[0].outputTensorMetadata}
    assert set(outputs) == {"digit", "parity", "strokes"} and "multi-label" in outputs["strokes"]
    assert files["labels_parity.txt"] == b"even\nodd\n" and files["labels_strokes.txt"] == b"curve\nline\nloop\n"
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image, row in zip(images, reference):
            answer = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            heads = {c.head_name: {k.category_name: k.score for k in c.categories} for c in answer.classifications}
            assert heads["parity"]["odd"] == pytest.approx(row[5], abs=1e-4)
            assert heads["strokes"]["loop"] == pytest.approx(row[8], abs=1e-4)
            assert max(heads["digit"], key=heads["digit"].get) == str(row[:4].argmax())
    # predict: per head top-k, from Python and the CLI.
    image_file = tmp_path / "digit.png"
    tf.io.write_file(str(image_file), tf.io.encode_png(images[0]))
    (top,) = workflow.predict(result.run_dir, [str(image_file)], top_k=1)
    assert (
        set(top) == {"digit", "parity", "strokes"}
        and top["parity"][0][0] == ["even", "odd"][reference[0, 4:6].argmax()]
    )

    def saved_by_keras_tl_0_2(*args, **kwargs):  # What Keras says of a run with the old concatenated output.
        raise TypeError("Could not locate class 'HeadConcat'. Make sure custom classes are decorated ...")

    monkeypatch.setattr(keras.saving, "load_model", saved_by_keras_tl_0_2)
    with pytest.raises(keras_tl.ConfigError, match="saved by keras-tl 0.2"):
        workflow.load_run(result.run_dir)


def test_manifest_label_columns_make_a_multitask_source(tmp_path, capsys):
    source = datasets.load_digits([0, 1, 2])
    rows = ["path,label:digit,label:size"]
    middle = np.median(source.items[:60].mean(axis=(1, 2, 3)))
    for i, image in enumerate(source.items[:60]):
        name = f"{i}.png"
        import tensorflow as tf

        tf.io.write_file(str(tmp_path / name), tf.io.encode_png(image))
        digit = source.class_names[source.labels[i]] if i % 5 else ""  # Every 5th row: digit missing.
        rows.append(f"{name},{digit},{'big' if image.mean() > middle else 'small'}")
    rows.append("missing.png,1,big")
    rows.append("0.png,,")  # No label in any head: skipped and reported, like the text reader's rows.
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    from keras_tl.image.data import load_source

    loaded = load_source(str(tmp_path / "data.csv"))
    assert loaded.class_names[:3] == ["digit:0", "digit:1", "digit:2"] and loaded.class_names[3:] == [
        "size:big",
        "size:small",
    ]
    assert multitask_labels.looks_multitask(loaded.class_names, loaded.labels)
    assert loaded.labels[0, :3].sum() == 0 and loaded.labels[1, :3].sum() == 1
    assert [(os.path.basename(p), reason) for p, reason in loaded.skipped] == [
        ("missing.png", "file not found"),
        ("0.png", "row 63: no label in any of ['digit', 'size']"),
    ]
    (tmp_path / "tags.csv").write_text("path,label:digit,label:tags\n1.png,1,thin;tall\n2.png,2,wide\n3.png,,tall\n")
    tagged = load_source(str(tmp_path / "tags.csv"))  # "thin;tall": the tags head is multi-label
    assert tagged.class_names == ["digit:1", "digit:2", "tags:tall", "tags:thin", "tags:wide"]
    assert tagged.labels.tolist() == [[1, 0, 1, 1, 0], [0, 1, 0, 0, 1], [0, 0, 1, 0, 0]]
    out = tmp_path / "cli_run"
    code = cli.main(
        [
            "train",
            "--data",
            str(tmp_path / "data.csv"),
            "--backbone",
            "mobilenet_v2",
            "--weights",
            "none",
            "--image-size",
            str(TINY_SIZE),
            "--head-epochs",
            "1",
            "--fine-tune-epochs",
            "0",
            "--out",
            str(out),
            "--head-weights",
            "digit=1,size=0.5",
        ]
    )
    assert code == 0
    metrics = json.load(open(out / "metrics.json"))
    assert set(metrics["heads"]) == {"digit", "size"}
    assert yaml.safe_load(open(out / "config.yaml"))["head_weights"] == {"digit": 1.0, "size": 0.5}


def test_a_perfect_test_split_from_files_draws_no_confident_errors(tmp_path):
    """Found by bench/multitask.py: the cell-type head scores 100% and the error grid got no files."""
    import tensorflow as tf
    from conftest import tiny_model

    from keras_tl.core.data import Split
    from keras_tl.core.models.classifier import Classifier
    from keras_tl.image.modality import MODALITY
    from keras_tl.workflow.training_run import confident_errors

    source = datasets.load_digits([0, 1])
    paths = []
    for i in range(4):
        paths.append(str(tmp_path / f"{i}.png"))
        tf.io.write_file(paths[-1], tf.io.encode_png(source.items[i]))
    task = Classifier(tiny_model(tmp_path, num_classes=2), MODALITY, class_names=["0", "1"])
    labels = source.labels[:4]
    perfect = np.eye(2, dtype=np.float32)[labels]
    written = confident_errors(task, Split(paths, labels), perfect, str(tmp_path / "errors"))
    assert os.path.isfile(tmp_path / written)
    assert MODALITY.model_inputs(task, []).shape == (0, TINY_SIZE, TINY_SIZE, 3)


def test_text_multitask_run_and_its_exports(tmp_path):
    """The same heads on a text encoder (a tiny BERT preset), read from a CSV with `label:<head>`
    columns: training, predict per head, and the SavedModel (raw strings) and TFLite (two outputs,
    tokenizer metadata) checked against Keras."""
    import csv

    from conftest import tiny_bert_preset, tiny_texts

    from keras_tl.text.data import from_csv, from_jsonl

    texts, topics = tiny_texts(per_class=30)
    articles = ["a" if " a " in f" {t} " else "other" for t in texts]
    with open(tmp_path / "texts.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label:topic", "label:article"])
        for i, (text, topic, article) in enumerate(zip(texts, topics, articles)):
            writer.writerow([text, "" if i % 7 == 3 else topic, article])  # every 7th row lacks its topic
        writer.writerow(["no label at all", "", ""])
        writer.writerow(["", topics[0], "a"])
    source = from_csv(str(tmp_path / "texts.csv"))
    assert source.class_names == ["topic:animals", "topic:food", "topic:vehicles", "article:a", "article:other"]
    assert multitask_labels.looks_multitask(source.class_names, source.labels) and len(source.items) == len(texts)
    assert source.labels[3, :3].sum() == 0 and source.labels[3, 3:].sum() == 1  # topic missing, article kept
    assert [reason for _, reason in source.skipped] == ["no label in any of ['topic', 'article']", "empty text"]
    (tmp_path / "texts.jsonl").write_text(
        "\n".join(
            json.dumps({"text": t, "label:topic": str(c), "label:article": a})
            for t, c, a in zip(texts[::5], topics[::5], articles[::5])
        )
    )
    assert from_jsonl(str(tmp_path / "texts.jsonl")).class_names[0] == "topic:animals"
    (tmp_path / "both.csv").write_text("text,label,label:topic\nhello,x,y\n")
    with pytest.raises(ValueError, match="not both"):
        from_csv(str(tmp_path / "both.csv"))
    (tmp_path / "several.csv").write_text("text,label:topic,label:article\nhello,0;1,a\nbye,1,other\n")
    several = from_csv(str(tmp_path / "several.csv"))  # "0;1": the topic head is multi-label
    assert several.labels.tolist() == [[1, 1, 1, 0], [0, 1, 0, 1]]
    assert multitask_labels.head_kinds(several.class_names, several.labels) == {
        "topic": "multilabel",
        "article": "multiclass",
    }

    preset = tiny_bert_preset(tmp_path / "preset", texts)
    config = TrainConfig(
        data=str(tmp_path / "texts.csv"),
        backbone=preset,
        weights="pretrained",
        sequence_length=32,
        head_epochs=10,
        fine_tune_epochs=1,
        head_lr=3e-2,
        fine_tune_lr=5e-3,
        batch_size=16,
        early_stopping_patience=None,
        out=str(tmp_path / "run"),
    )
    result = workflow.train(config)
    assert result.config.problem == "multitask" and set(result.metrics["heads"]) == {"topic", "article"}
    topic = result.metrics["heads"]["topic"]
    assert topic["accuracy"] > 0.5, topic  # 3 balanced topics: chance is 1/3.
    (answer,) = workflow.predict(result.run_dir, ["a cat and a dog"], top_k=2)
    assert set(answer) == {"topic", "article"} and len(answer["topic"]) == 2
    for fmt in ("saved_model", "tflite"):
        exported = workflow.export_run(result.run_dir, fmt, out=str(tmp_path / "exported"), name="text_heads")
        checks = [c for k, c in exported.check.items() if k != "storage"] if fmt == "saved_model" else [exported.check]
        assert all(c["top1_agreement"] == 1.0 for c in checks if isinstance(c, dict)), exported.check


def test_audio_multitask_from_a_manifest_and_its_exports(tmp_path):
    """Real drum samples with two heads from a manifest's `label:<head>` columns (the instrument,
    missing on some rows, and its family): a two-phase audio run through the shared reader, whose
    SavedModel (waveforms, WAV bytes) and TFLite (one output per head, AudioClassifier metadata,
    run by MediaPipe Tasks) agree with Keras head by head."""
    import csv

    import tensorflow as tf

    from keras_tl.audio import data as audio_data

    source = datasets.load_drumkits(classes=["kick", "snare", "hihat", "cymbal"])
    family = {"kick": "drum", "snare": "drum", "hihat": "metal", "cymbal": "metal"}
    rows = []
    for split, indices in source.predefined.items():
        for c, name in enumerate(source.class_names):
            for n, i in enumerate(indices[source.labels[indices] == c][: 6 if split == "train" else 2]):
                missing = split == "train" and n % 3 == 2  # Every third training clip lacks its instrument.
                rows.append(
                    {
                        "path": source.items[i],
                        "label:instrument": "" if missing else name,
                        "label:family": family[name],
                        "split": split,
                    }
                )
    manifest = tmp_path / "drums.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label:instrument", "label:family", "split"])
        writer.writeheader()
        writer.writerows(rows)
    config = TrainConfig(
        data=str(manifest),
        backbone="aisfx_cnn9",
        clip_seconds=0.5,
        pooling="max",
        batch_size=8,
        head_epochs=3,
        fine_tune_epochs=1,
        unfreeze="blocks:1",
        early_stopping_patience=None,
        out=str(tmp_path / "run"),
    )
    result = workflow.train(config)
    assert result.config.problem == "multitask" and set(result.metrics["heads"]) == {"instrument", "family"}
    task = workflow.load_run(result.run_dir)
    assert task.class_names == [
        "instrument:cymbal",
        "instrument:hihat",
        "instrument:kick",
        "instrument:snare",
        "family:drum",
        "family:metal",
    ]
    assert (task.model.input_shape, result.metrics["heads"]["family"]["num_examples"]) == ((None, 22050), 8)
    tests = [r["path"] for r in rows if r["split"] == "test"]
    windows = np.stack([audio_data.windows(audio_data.decode(p, 44100), 22050)[0] for p in tests])
    reference = task.predict(windows)
    out = str(tmp_path / "exported")
    served = workflow.export_run(result.run_dir, "saved_model", out=out, name="drum_heads")
    checks = {k: c for k, c in served.check.items() if isinstance(c, dict) and k != "storage"}
    assert {"serving_default", "serving_wav"} <= set(checks) and all(
        c["top1_agreement"] == 1.0 for c in checks.values()
    ), served.check
    signatures = tf.saved_model.load(served.path).signatures
    answer = signatures["serving_default"](
        **{next(iter(signatures["serving_default"].structured_input_signature[1])): tf.constant(windows)}
    )
    np.testing.assert_allclose(answer["instrument_probabilities"].numpy(), reference[:, :4], atol=1e-4)
    np.testing.assert_allclose(answer["family_probabilities"].numpy(), reference[:, 4:], atol=1e-4)
    wav = tf.audio.encode_wav(tf.constant(windows[0][:, None]), 44100).numpy()
    by_wav = signatures["serving_wav"](wav_bytes=tf.constant([wav]))
    assert by_wav["family_label"].numpy()[0].decode() == ["drum", "metal"][reference[0, 4:].argmax()]

    lite = workflow.export_run(result.run_dir, "tflite", out=out, name="drum_heads")
    assert lite.check["top1_agreement"] == 1.0, lite.check
    np.testing.assert_allclose(litert.tflite_predict(lite.path, windows), reference, atol=1e-4)
    metadata, files = tflite_metadata.read(open(lite.path, "rb").read())
    assert {t.name.decode() for t in metadata.subgraphMetadata[0].outputTensorMetadata} == {"instrument", "family"}
    assert files["labels_family.txt"] == b"drum\nmetal\n"
    from mediapipe.tasks.python import audio as mp_audio
    from mediapipe.tasks.python.components.containers.audio_data import AudioData
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = mp_audio.AudioClassifierOptions(base_options=BaseOptions(model_asset_path=lite.path))
    with mp_audio.AudioClassifier.create_from_options(options) as classifier:
        for window, row in zip(windows[:3], reference):
            (first, *_) = classifier.classify(AudioData.create_from_array(window, 44100))
            heads = {c.head_name: {k.category_name: k.score for k in c.categories} for c in first.classifications}
            assert heads["family"]["metal"] == pytest.approx(row[5], abs=1e-4)
            assert (
                max(heads["instrument"], key=heads["instrument"].get)
                == ["cymbal", "hihat", "kick", "snare"][row[:4].argmax()]
            )


@pytest.mark.slow
def test_a_multitask_run_with_coral_trains_both_phases(tmp_path):
    """With `domain_adaptation: coral` (or dann) phase 2 fits a wrapper of the model: compiling its
    per-head loss read the heads off the wrapper, which has none, and the run crashed."""
    from conftest import local_pretrained_weights

    source = _digit_heads()
    inverted = 255 - source.items[:120]  # A shifted target domain; its labels are not used.
    target = Source(source.class_names, inverted, np.zeros((120, len(source.class_names)), "float32"), modality="image")
    config = tiny_config(
        tmp_path,
        weights=local_pretrained_weights(tmp_path),
        head_epochs=1,
        fine_tune_epochs=1,
        domain_adaptation="coral",
    )
    result = workflow.train(config, source, target=target)
    assert result.metrics["domain_adaptation"]["method"] == "coral"
    assert "val_parity_accuracy" in result.histories["phase2"] and "alignment_loss" in result.histories["phase2"]
