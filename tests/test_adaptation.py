"""Domain adaptation (`keras_tl.core.adapt.adaptation`): the proxy A-distance, CORAL, AdaBN (only BatchNorm
moving statistics change), the gradient-reversal layer, Deep CORAL / DANN training beside target
batches, and `domain_adaptation` runs (config errors before any work, the CLI, AdaBN's statistics)."""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import local_pretrained_weights, tiny_config, tiny_texts, write_image_folder

import keras_tl
from keras_tl import datasets
from keras_tl.cli import main as cli
from keras_tl.core.adapt import adaptation
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.data import Source
from keras_tl.core.models import heads, layers
from keras_tl.text import data as text_data
from keras_tl.workflow import training_run


def test_proxy_a_distance_is_near_zero_for_one_domain_and_near_two_for_separable_ones():
    rng = np.random.default_rng(0)
    same = adaptation.proxy_a_distance(rng.normal(size=(300, 5)), rng.normal(size=(300, 5)))
    apart = adaptation.proxy_a_distance(rng.normal(size=(300, 5)), rng.normal(size=(300, 5)) + [4, 0, 0, 0, 0])
    between = adaptation.proxy_a_distance(rng.normal(size=(300, 5)), rng.normal(size=(300, 5)) + [1, 0, 0, 0, 0])
    assert abs(same) < 0.4 and apart > 1.9 and 0.4 < between < 1.5
    with pytest.raises(ValueError, match=r"same D.*Received: \(3, 5\) and \(3, 4\)"):
        adaptation.proxy_a_distance(np.zeros((3, 5)), np.zeros((3, 4)))


def test_coral_gives_source_features_the_target_mean_and_covariance():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4)) + 3.0
    target = rng.normal(size=(400, 4)) @ rng.normal(size=(4, 4)) - 1.0
    moved = adaptation.coral(source, target, regularization=1e-9)
    np.testing.assert_allclose(moved.mean(0), target.mean(0), atol=1e-4)
    np.testing.assert_allclose(np.cov(moved, rowvar=False), np.cov(target, rowvar=False), atol=1e-3)
    assert moved.shape == source.shape and moved.dtype == np.float32
    with pytest.raises(ValueError, match="regularization"):
        adaptation.coral(source, target, regularization=0)


def tiny_model():
    """Preprocessing -> backbone (conv, BN, dropout, conv, BN) in inference mode -> head, frozen."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    inner_in = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, name="conv1")(inner_in)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.Dropout(0.5, name="drop")(h)
    h = keras.layers.Conv2D(4, 3, name="conv2")(h)
    h = keras.layers.BatchNormalization(name="bn2")(h)
    backbone = keras.Model(inner_in, h, name="tiny")
    features = heads.backbone_layer(backbone, x, pretrained=True)
    pooled = keras.layers.GlobalAveragePooling2D(name=heads.POOL_LAYER)(features)
    model = keras.Model(inputs, heads.head(pooled, num_classes=2, problem="multiclass"))
    backbone.trainable = False
    return model, backbone


def test_adabn_changes_only_batchnorm_moving_statistics_to_the_target_domain():
    model, backbone = tiny_model()
    target = np.random.default_rng(2).uniform(150, 255, size=(128, 8, 8, 3)).astype(np.float32)
    before = {w.path: np.array(w) for w in model.weights}
    predicted = model.predict(target, verbose=0)

    assert adaptation.adabn(model, target, batch_size=64) == 2

    after = {w.path: np.array(w) for w in model.weights}
    moved = {path for path in before if not np.array_equal(before[path], after[path])}
    assert moved == {p for p in before if p.endswith(("moving_mean", "moving_variance"))} and len(moved) == 4
    # bn1's statistics are its inputs' batch statistics on the target images (two equal batches).
    conv1 = keras.Model(backbone.input, backbone.get_layer("conv1").output)
    out = np.asarray(conv1(target / 255.0)).reshape(2, -1, 4)
    bn1 = backbone.get_layer("bn1")
    np.testing.assert_allclose(np.array(bn1.moving_mean), out.mean(axis=1).mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.array(bn1.moving_variance), out.var(axis=1).mean(0), rtol=1e-4, atol=1e-6)
    # Flags, momentum and dropout rate as they were; the predictions now use the target statistics.
    assert not backbone.trainable and not any(layer.trainable for layer in backbone.layers)
    assert bn1.momentum == 0.99 and backbone.get_layer("drop").rate == 0.5
    assert not np.allclose(model.predict(target, verbose=0), predicted)
    with pytest.raises(ValueError, match="at least 2 target inputs"):
        adaptation.adabn(model, target[:1])


def test_gradient_reversal_is_the_identity_forward_and_negates_and_scales_gradients():
    layer = layers.GradientReversal(scale=0.5)
    x = tf.constant(np.random.default_rng(3).normal(size=(4, 3)), tf.float32)
    w = tf.constant(np.random.default_rng(4).normal(size=(4, 3)), tf.float32)
    for scale in (0.5, 2.0, 0.0):
        layer.scale.assign(scale)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * w)
        np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-5)
        np.testing.assert_allclose(tape.gradient(loss, x).numpy(), -scale * w.numpy(), atol=1e-6)
    copy = layers.GradientReversal.from_config(layers.GradientReversal(scale=0.3).get_config())
    assert float(copy.scale) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="scale"):
        layers.GradientReversal(scale=-1)


def test_coral_loss_is_the_papers_covariance_distance():
    rng = np.random.default_rng(5)
    source, target = rng.normal(size=(16, 5)), 2.0 * rng.normal(size=(12, 5)) + 1.0
    expected = np.sum((np.cov(source, rowvar=False) - np.cov(target, rowvar=False)) ** 2) / (4 * 5**2)
    assert float(adaptation.coral_loss(source.astype("float32"), target.astype("float32"))) == pytest.approx(
        expected, rel=1e-4
    )
    assert float(adaptation.coral_loss(source.astype("float32"), source.astype("float32") + 3.0)) == pytest.approx(
        0.0, abs=1e-6
    )  # A shift of the mean alone: the covariances agree.


def test_domain_adapted_adds_its_loss_only_beside_target_batches_and_trains_the_shared_model():
    model, backbone = tiny_model()
    backbone.trainable = True
    rng = np.random.default_rng(6)
    source = rng.uniform(0, 120, size=(32, 8, 8, 3)).astype(np.float32)
    target = rng.uniform(130, 255, size=(32, 8, 8, 3)).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 32)]
    wrapper = adaptation.DomainAdapted(model, "coral", weight=10.0)
    np.testing.assert_allclose(wrapper(source), model(source), atol=1e-6)  # Plain inputs: the model itself.
    extractor = keras.Model(model.input, model.get_layer(heads.POOL_LAYER).output)
    predictions = wrapper({"source": source, "target": target})  # (training=False: the head's dropout off)
    np.testing.assert_allclose(predictions, model(source), atol=1e-5)  # The source batch's predictions.
    expected = 10.0 * float(adaptation.coral_loss(extractor(source), extractor(target)))
    assert len(wrapper.losses) == 1 and float(wrapper.losses[0]) == pytest.approx(expected, rel=1e-4)

    # DANN: fit on paired batches trains the shared backbone and the domain classifier, logs the
    # domain loss, ramps the reversal scale, and validates on plain source batches.
    dann = adaptation.DomainAdapted(model, "dann", weight=0.5)
    dann.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    train = tf.data.Dataset.from_tensor_slices((source, labels)).batch(8)
    paired = adaptation.paired_batches(train, tf.data.Dataset.from_tensor_slices(target).batch(8))
    before = {w.path: np.array(w) for w in backbone.trainable_weights}
    ramp = adaptation.ReversalRamp(dann.reversal, 0.5, total_steps=8)
    history = dann.fit(paired, validation_data=train, epochs=2, verbose=0, callbacks=[ramp], shuffle=False)
    assert history.history["alignment_loss"][0] > 0 and "val_loss" in history.history
    assert any(not np.allclose(before[w.path], np.array(w)) for w in backbone.trainable_weights)
    assert float(dann.reversal.scale) == pytest.approx(0.5 * (2 / (1 + math.exp(-10 * 7 / 8)) - 1), rel=1e-5)
    with pytest.raises(ValueError, match="'coral' or 'dann'"):
        adaptation.DomainAdapted(model, "mmd")


def _digits_domains():
    """Digit scans (source) and inverted digit scans (a shifted target domain, labels unused)."""
    digits = datasets.load_digits([0, 1, 2])
    order = np.random.default_rng(0).permutation(len(digits.labels))
    first, second = order[:150], order[150:300]
    source = Source(digits.class_names, digits.items[first], digits.labels[first], modality="image")
    target = Source(digits.class_names, 255 - digits.items[second], np.zeros(150, np.int64), modality="image")
    return source, target


def test_adabn_run_ends_with_the_target_domains_batchnorm_statistics(tmp_path, capsys):
    source, target = _digits_domains()
    weights = local_pretrained_weights(tmp_path)
    config = tiny_config(
        tmp_path,
        weights=weights,
        strategy="feature_extraction",
        head_epochs=2,
        fine_tune_epochs=0,
        domain_adaptation="adabn",
    )
    result = keras_tl.train(config, source, target=target)
    out = capsys.readouterr().out
    assert "AdaBN: 52 BatchNorm layers now hold the source" in out and "re-estimated on the target" in out
    assert result.config.domain_adaptation == "adabn"
    assert result.metrics["domain_adaptation"] == {"method": "adabn", "target_examples": 150}
    model = keras.saving.load_model(os.path.join(result.run_dir, "model.keras"))
    norms = [w for w in model.weights if w.path.endswith(("moving_mean", "moving_variance"))]
    adapted = [np.array(w) for w in norms]
    # Re-estimating on the target again changes nothing: the saved statistics are the target's...
    objective = training_run.adapted_objective(result.classifier, result.config, target, cache="none")
    objective.after(model)
    for value, w in zip(adapted, norms):
        np.testing.assert_allclose(np.array(w), value, rtol=1e-4, atol=1e-5)
    # ...and not the pretrained file's (nor the source's, which the head was trained with).
    objective.before(model, result.classifier.modality.model_inputs(result.classifier, source.items[:64]))
    assert not all(np.allclose(np.array(w), value, atol=1e-3) for w, value in zip(norms, adapted))


def test_prior_matching_moves_only_output_biases_until_the_mean_target_prediction_is_the_prior():
    """Softmax (single and per head of a multi-task model) and sigmoid outputs: after `match_prior`
    the mean prediction over target inputs is the prior, and only the output biases changed."""
    from keras_tl.core.models import multitask

    rng = np.random.default_rng(0)
    target = tf.data.Dataset.from_tensor_slices(rng.normal(1.5, 1.0, (200, 6)).astype("float32")).batch(32)

    def model(output):
        inputs = keras.Input((6,))
        x = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
        return keras.Model(inputs, output(x))

    names = ["grade:0", "grade:1", "grade:2", "type:mono", "type:poly"]
    labels = np.array([[1, 0, 0, 1, 0], [0, 1, 0, 0, 1], [0, 0, 0, 0, 1], [0, 1, 0, 0, 1]])  # row 3: grade missing
    np.testing.assert_allclose(adaptation.class_prior(labels, names, "multitask"), [1 / 3, 2 / 3, 0, 1 / 4, 3 / 4])
    # A multi-label head's prior: each class's share of positives over the rows that label the head.
    tagged = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [0, 1, 0, 0]])
    np.testing.assert_allclose(
        adaptation.class_prior(tagged, ["g:0", "g:1", "t:a", "t:b"], "multitask", {"t": "multilabel"}),
        [1 / 3, 2 / 3, 1.0, 0.5],
    )
    np.testing.assert_allclose(adaptation.class_prior(np.array([0, 1, 1, 1]), ["a", "b"], "binary"), [0.75])
    np.testing.assert_allclose(
        adaptation.class_prior(np.array([0, 2, 2, 1]), ["a", "b", "c"], "multiclass"), [0.25, 0.25, 0.5]
    )
    cases = [
        (lambda x: keras.layers.Dense(3, activation="softmax", name="predictions")(x), [0.2, 0.3, 0.5]),
        (
            lambda x: multitask.multitask_head(x, ["grade:0", "grade:1", "type:a", "type:b", "type:c"], dropout=0),
            [0.7, 0.3, 0.1, 0.1, 0.8],
        ),
        (lambda x: keras.layers.Dense(2, activation="sigmoid", name="predictions")(x), [0.1, 0.6]),
        (lambda x: keras.layers.Dense(1, activation="sigmoid", name="predictions")(x), [0.3]),  # binary
        (
            lambda x: multitask.multitask_head(
                x, ["grade:0", "grade:1", "tags:a", "tags:b"], dropout=0, kinds={"tags": "multilabel"}
            ),
            [0.4, 0.6, 0.2, 0.9],
        ),
    ]
    for output, prior in cases:
        net = model(output)
        before = {w.path: np.array(w) for w in net.weights}
        shifts = adaptation.match_prior(net, target, np.array(prior))
        np.testing.assert_allclose(multitask.joined(net.predict(target, verbose=0)).mean(axis=0), prior, atol=1e-3)
        changed = {w.path for w in net.weights if not np.array_equal(np.array(w), before[w.path])}
        assert changed == {f"{name}/bias" for name in shifts}, changed


def test_prior_run_ends_predicting_the_source_class_frequencies_on_the_target(tmp_path, capsys):
    source, target = _digits_domains()
    config = tiny_config(
        tmp_path,
        weights=local_pretrained_weights(tmp_path),
        strategy="feature_extraction",
        head_epochs=2,
        fine_tune_epochs=0,
    )
    result = keras_tl.train(config, source, target=target)  # domain_adaptation "auto" with target data: prior
    assert "prior: output biases shifted" in capsys.readouterr().out and result.config.domain_adaptation == "prior"
    shifts = result.metrics["domain_adaptation"]["bias_shifts"]
    assert list(shifts) == ["predictions"] and len(shifts["predictions"]) == 3
    train_labels = keras_tl.workflow.load_split(result.run_dir, "train").labels
    saved = keras_tl.load_run(result.run_dir)  # The shift is in the saved model.
    np.testing.assert_allclose(
        saved.predict(target.items).mean(axis=0), np.bincount(train_labels, minlength=3) / len(train_labels), atol=2e-3
    )


def test_domain_adaptation_config_errors_come_before_any_work(tmp_path):
    source, target = _digits_domains()
    folder = write_image_folder(tmp_path / "target", num_classes=2, per_class=2)
    cases = [
        (dict(domain_adaptation="coral"), None, "needs unlabelled target-domain data"),
        (dict(domain_adaptation="none", target_data=folder), None, "nothing would use it"),
        (
            dict(domain_adaptation="mmd", target_data=folder),
            None,
            "domain_adaptation.*'adabn', 'coral', 'dann', 'prior'",
        ),
        (dict(domain_adaptation="dann", strategy="feature_extraction"), target, "never trains it"),
        (dict(domain_adaptation="coral", target_data=str(tmp_path / "nowhere")), None, "nowhere"),
        (dict(domain_adaptation="coral", adaptation_weight=0), target, "adaptation_weight"),
        (dict(domain_adaptation="coral", adaptation_weight=True), target, "adaptation_weight"),
        (
            dict(domain_adaptation="coral"),
            np.zeros((3, 8, 8, 3)),
            r"`target` must be a keras_tl.core.data.Source of images \(modality='image'\).*Received: ndarray",
        ),
    ]
    for overrides, python_target, message in cases:
        with pytest.raises(ValueError, match=message):
            keras_tl.train(tiny_config(tmp_path, **overrides), source, target=python_target)
    texts = text_data.from_texts(*tiny_texts(4))  # A text encoder has no BatchNorm for AdaBN.
    with pytest.raises(ValueError, match="text backbones have none. Use 'prior', 'coral' or 'dann'"):
        keras_tl.train(
            TrainConfig(
                backbone="minilm_l6", weights="pretrained", domain_adaptation="adabn", out=str(tmp_path / "run")
            ),
            texts,
            target=texts,
        )
    assert not os.path.exists(tmp_path / "run")


def test_dann_from_the_command_line_trains_beside_the_target_folder(tmp_path, capsys):
    data = write_image_folder(tmp_path / "source", num_classes=2, per_class=12)
    target = write_image_folder(tmp_path / "target", num_classes=2, per_class=6, size=56)
    weights = local_pretrained_weights(tmp_path)
    out = str(tmp_path / "run")
    assert (
        cli(
            [
                "train",
                "--data",
                data,
                "--target-data",
                target,
                "--domain-adaptation",
                "dann",
                "--adaptation-weight",
                "0.3",
                "--backbone",
                "mobilenet_v2",
                "--weights",
                weights,
                "--image-size",
                "32",
                "--head-epochs",
                "1",
                "--fine-tune-epochs",
                "2",
                "--batch-size",
                "8",
                "--out",
                out,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "domain adaptation: dann, 12 target-domain images" in printed
    assert "phase2: domain adaptation 'dann' (weight 0.3)" in printed
    with open(os.path.join(out, "history_phase2.csv"), encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    assert "alignment_loss" in header
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        assert json.load(f)["domain_adaptation"] == {"method": "dann", "target_examples": 12}
    # The saved model is the plain model (no domain classifier, no wrapper): Keras alone loads it.
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert not any("domain" in layer.name for layer in model.layers)
    assert model.optimizer.__class__.__module__.startswith("keras.")


def test_an_adapted_phase_keeps_its_own_best_epoch_not_an_earlier_unadapted_one(tmp_path):
    """Alignment costs some source validation loss, so an unadapted phase-1 epoch would always win
    the run's best-epoch choice and silently undo the adaptation: the adapted phase starts over."""
    from keras_tl.core.train.callbacks import BestWeights

    model, _ = tiny_model()
    best = BestWeights(str(tmp_path / "best.weights.h5"), model)
    best.on_epoch_end(0, {"val_loss": 0.1})
    unadapted = [np.array(w) for w in model.get_weights()]
    best.start_over()
    model.set_weights([w + 1.0 for w in unadapted])
    best.on_epoch_end(1, {"val_loss": 0.5})
    model.set_weights(unadapted)
    best.restore()
    np.testing.assert_allclose(model.get_weights()[0], unadapted[0] + 1.0)
