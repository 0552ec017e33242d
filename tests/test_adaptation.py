"""Domain adaptation building blocks (`keras_tl.core.adaptation`): the proxy A-distance, CORAL,
AdaBN (only BatchNorm moving statistics change) and the gradient-reversal layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl.core import adaptation, heads


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
    model = keras.Model(inputs, heads.head(pooled, num_classes=2, task="multiclass"))
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
    layer = adaptation.GradientReversal(scale=0.5)
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
    copy = adaptation.GradientReversal.from_config(adaptation.GradientReversal(scale=0.3).get_config())
    assert float(copy.scale) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="scale"):
        adaptation.GradientReversal(scale=-1)
