"""The transfer-learning invariants: frozen phase 1, BatchNorm in inference mode, exact unfreezing,
recompile after every trainable change, low learning rate in phase 2."""

import keras
import numpy as np
import pytest
from conftest import TINY_SIZE, local_pretrained_weights, tiny_arrays, tiny_config, tiny_model, write_image_folder

from keras_tl.core import data as core_data
from keras_tl.core.contract import registry
from keras_tl.core.models.heads import get_backbone
from keras_tl.core.train import training
from keras_tl.core.train.training import fine_tune, set_trainable
from keras_tl.image import data
from keras_tl.image.model import build_model


def _datasets(num_classes=3, per_class=12):
    images, labels = tiny_arrays(num_classes, per_class)
    split = core_data.Split(images, labels)
    kwargs = dict(image_size=TINY_SIZE, batch_size=16, num_classes=num_classes)
    return data.make_dataset(split, training=True, **kwargs), data.make_dataset(split, **kwargs), split


def _values(weights):
    return [w.numpy().copy() for w in weights]


def _bn_statistics(backbone):
    return [
        v.numpy().copy()
        for layer in backbone.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in (layer.moving_mean, layer.moving_variance)
    ]


def _run(tmp_path, **overrides):
    weights = local_pretrained_weights(tmp_path)
    config = tiny_config(tmp_path, weights=weights, **overrides)
    model = build_model("mobilenet_v2", num_classes=3, weights=weights, image_size=TINY_SIZE)
    train, val, split = _datasets()
    return model, config, train, val, core_data.steps_per_epoch(split, 16)


def _pooled_in_both_modes(model, backbone_trainable=True):
    """Pooled features of a batch with the outer call in training mode and in inference mode."""
    get_backbone(model).trainable = backbone_trainable  # BatchNorm trainable: the hard case
    pooled = keras.Model(model.inputs, model.get_layer("head_pool").output)
    images, _ = tiny_arrays(3, 4)
    images = keras.ops.image.resize(images.astype("float32"), (TINY_SIZE, TINY_SIZE))
    return np.asarray(pooled(images, training=True)), np.asarray(pooled(images, training=False))


def test_pretrained_backbone_runs_in_inference_mode_even_when_fit_says_training(tmp_path):
    # Keras 3 passes the outer `training=True` through a nested `training=False`
    # (keras-team/keras#20285); keras-tl's InferenceMode wrapper must stop it, unfrozen BatchNorm
    # and EfficientNet's stochastic depth included.
    weights = local_pretrained_weights(tmp_path, "efficientnet_b0")
    for name, file in (("mobilenet_v2", local_pretrained_weights(tmp_path)), ("efficientnet_b0", weights)):
        model = build_model(name, num_classes=3, weights=file, image_size=TINY_SIZE)
        in_training, in_inference = _pooled_in_both_modes(model)
        np.testing.assert_array_equal(in_training, in_inference)


def test_scratch_backbone_trains_its_batchnorm(tmp_path):
    model = build_model("mobilenet_v2", num_classes=3, weights="none", image_size=TINY_SIZE)
    in_training, in_inference = _pooled_in_both_modes(model)
    assert np.abs(in_training - in_inference).max() > 1e-3  # batch statistics in training


def test_phase1_changes_no_backbone_weight(tmp_path):
    model, config, train, val, steps = _run(tmp_path, strategy="feature_extraction", head_epochs=2)
    backbone = get_backbone(model)
    before = _values(backbone.weights)
    head_before = _values(model.get_layer("predictions").weights)
    fine_tune(model, train, val, config, steps_per_epoch=steps)
    for a, b in zip(before, _values(backbone.weights)):
        np.testing.assert_array_equal(a, b)
    changed = [not np.array_equal(a, b) for a, b in zip(head_before, _values(model.get_layer("predictions").weights))]
    assert all(changed)  # ... while the head did learn.


def test_phase2_keeps_batchnorm_statistics_and_trains_the_rest(tmp_path):
    model, config, train, val, steps = _run(tmp_path, head_epochs=1, fine_tune_epochs=2, unfreeze="all")
    backbone = get_backbone(model)
    stats_before = _bn_statistics(backbone)
    kernels_before = {w.path: w.numpy().copy() for w in backbone.weights if "kernel" in w.path}
    histories = fine_tune(model, train, val, config, steps_per_epoch=steps)
    assert set(histories) == {"phase1", "phase2"}
    assert len(histories["phase2"]["loss"]) == 2
    for a, b in zip(stats_before, _bn_statistics(backbone)):
        np.testing.assert_array_equal(a, b)
    moved = [
        not np.array_equal(v, w.numpy())
        for w in backbone.weights
        if w.path in kernels_before
        for v in [kernels_before[w.path]]
    ]
    assert all(moved), "phase 2 should update every unfrozen conv kernel"


def test_every_trainable_change_is_followed_by_a_recompile(tmp_path, monkeypatch):
    model, config, train, val, steps = _run(tmp_path)
    events = []
    real_set, real_compile = training.set_trainable, training.compile_model
    monkeypatch.setattr(training, "set_trainable", lambda *a, **k: (events.append("trainable"), real_set(*a, **k))[1])
    monkeypatch.setattr(training, "compile_model", lambda *a, **k: (events.append("compile"), real_compile(*a, **k))[1])

    def fake_fit(self, *args, epochs, initial_epoch, **kwargs):
        events.append("fit")
        history = keras.callbacks.History()
        history.epoch, history.history = list(range(initial_epoch, epochs)), {"loss": [1.0]}
        return history

    monkeypatch.setattr(keras.Model, "fit", fake_fit)
    fine_tune(model, train, val, config, steps_per_epoch=steps)
    assert events == ["trainable", "compile", "fit", "trainable", "compile", "fit"]


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_phase2_compiles_with_the_low_learning_rate(tmp_path, schedule):
    model, config, train, val, steps = _run(tmp_path, schedule=schedule, head_lr=1e-2, fine_tune_lr=3e-5)
    fine_tune(model, train, val, config, steps_per_epoch=steps)
    rate = model.optimizer.learning_rate if schedule == "constant" else model.optimizer._learning_rate
    if schedule == "constant":
        assert float(rate.numpy()) == pytest.approx(3e-5)
    else:
        peak = max(float(rate(step)) for step in range(steps * config.fine_tune_epochs + 1))
        assert peak == pytest.approx(3e-5, rel=1e-4)


def _trainable_names(backbone):
    return [l.name for l in backbone.layers if l.trainable and l.weights]


def _expected(backbone, start):
    return [l.name for l in backbone.layers[start:] if l.weights and not isinstance(l, keras.layers.BatchNormalization)]


@pytest.mark.parametrize(
    "policy, start_of",
    [
        ("all", lambda layers, blocks: 0),
        ("top:20", lambda layers, blocks: len(layers) - 20),
        ("fraction:0.25", lambda layers, blocks: len(layers) - int(np.ceil(0.25 * len(layers)))),
        ("blocks:2", lambda layers, blocks: blocks[-2][1]),
        ("from:block_13", lambda layers, blocks: [l.name for l in layers].index("block_13_expand")),
        ("from:block_15_expand", lambda layers, blocks: [l.name for l in layers].index("block_15_expand")),
    ],
)
def test_unfreeze_policy_unfreezes_exactly_what_it_says(tmp_path, policy, start_of):
    model = tiny_model(tmp_path)
    backbone = get_backbone(model)
    spec = registry.get("mobilenet_v2")
    set_trainable(model, None)
    assert _trainable_names(backbone) == [] and not backbone.trainable
    unfrozen = set_trainable(model, policy, spec=spec)
    start = start_of(backbone.layers, registry.block_starts(backbone, spec))
    expected = _expected(backbone, start)
    assert unfrozen == expected == _trainable_names(backbone)
    assert expected, "the policy should unfreeze something"
    assert not any(isinstance(backbone.get_layer(n), keras.layers.BatchNormalization) for n in unfrozen)


def test_unknown_from_name_lists_blocks(tmp_path):
    model = tiny_model(tmp_path)
    with pytest.raises(ValueError, match=r"unfreeze='from:block_99' names no layer or block.*block_16"):
        set_trainable(model, "from:block_99", spec=registry.get("mobilenet_v2"))


def test_full_strategy_trains_everything_from_the_start(tmp_path):
    model, config, train, val, steps = _run(tmp_path, strategy="full", head_epochs=1, fine_tune_epochs=0)
    histories = fine_tune(model, train, val, config, steps_per_epoch=steps)
    assert list(histories) == ["full"]
    backbone = get_backbone(model)
    assert backbone.trainable
    assert len(_trainable_names(backbone)) == len(_expected(backbone, 0))


def test_mixed_precision_keeps_probabilities_float32(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = build_model("mobilenet_v2", num_classes=3, weights="none", image_size=TINY_SIZE)
    assert get_backbone(model).compute_dtype == "bfloat16"
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    assert model.output.dtype == "float32"


def test_image_task_keeps_every_transfer_invariant(tmp_path, monkeypatch):
    from invariants import run_transfer_test

    from keras_tl.image.data import from_arrays

    images, labels = tiny_arrays(3, 12)
    config = tiny_config(tmp_path, weights=local_pretrained_weights(tmp_path), unfreeze="blocks:2")
    run_transfer_test(
        config,
        from_arrays(images, labels),
        tmp_path,
        monkeypatch,
        policies=["all", "top:20", "fraction:0.25", "from:block_15_expand", "blocks:2"],
    )


@pytest.mark.parametrize("monitor, kept", [("val_loss", 0), ("val_accuracy", 2)])
def test_best_weights_keeps_the_epoch_the_monitor_names(tmp_path, monitor, kept):
    """A near-uniform first epoch has the lowest loss; by accuracy a later epoch wins, ties going to
    the lower loss."""
    from keras_tl.core.train.callbacks import BestWeights

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    keeper = BestWeights(str(tmp_path / "best.weights.h5"), model, monitor)
    epochs = [
        {"val_loss": 1.60, "val_accuracy": 0.2},
        {"val_loss": 2.10, "val_accuracy": 0.6},
        {"val_loss": 1.90, "val_accuracy": 0.6},
        {"val_loss": 1.70, "val_accuracy": 0.4},
    ]
    for epoch, logs in enumerate(epochs):
        model.layers[0].bias.assign([float(epoch)])
        keeper.on_epoch_end(epoch, logs)
    keeper.restore()
    assert float(model.layers[0].bias.numpy()[0]) == kept
    with pytest.raises(
        ValueError,
        match=r"`monitor` must be one of \['val_loss', 'val_accuracy'\]. Received: "
        r"monitor='f1'",
    ):
        BestWeights(str(tmp_path / "x.weights.h5"), model, "f1")


def test_head_norm_standardizes_the_pooled_features_with_the_cached_features_statistics(tmp_path):
    """`head_norm: true` puts a BatchNormalization without scale and offset before the head (as a
    linear probe standardizes its features). Its statistics start from the cached training features'
    own, so even two short epochs leave evaluation and every export standardizing as training did
    (a trial with 8 steps found moving statistics still near their initial 0 and 1)."""
    import json
    import os

    import keras_tl
    from keras_tl.core.contract.errors import ConfigError
    from keras_tl.core.models.heads import HeadSpec

    folder = write_image_folder(tmp_path / "digits", per_class=12)
    config = tiny_config(
        tmp_path,
        data=folder,
        weights=local_pretrained_weights(tmp_path),
        strategy="feature_extraction",
        head_epochs=2,
        head_norm=True,
    )
    keras_tl.train(config)
    task = keras_tl.load_run(config.out)
    norm = task.model.get_layer("head_norm")
    assert isinstance(norm, keras.layers.BatchNormalization) and not norm.center and not norm.scale
    assert [layer.name for layer in task.model.layers][-3:] == ["head_norm", "head_dropout", "predictions"]
    with open(os.path.join(config.out, "splits.json"), encoding="utf-8") as f:
        items = json.load(f)["train"]["items"]
    inputs = task.modality.model_inputs(task, items)
    pooled = keras.Model(task.model.inputs, task.model.get_layer("head_pool").output).predict(inputs, verbose=0)
    assert not norm.trainable  # A fixed scaler: training does not move it.
    spread = pooled.std(axis=0).mean()
    np.testing.assert_allclose(np.asarray(norm.moving_mean), pooled.mean(axis=0), rtol=0, atol=1e-3 * spread)
    np.testing.assert_allclose(np.asarray(norm.moving_variance), pooled.var(axis=0), rtol=1e-3, atol=1e-3 * spread**2)
    assert "head_norm" not in [
        layer.name for layer in build_model("mobilenet_v2", num_classes=3, weights="none", image_size=TINY_SIZE).layers
    ]
    with pytest.raises(ConfigError, match=r"`normalize` must be true or false. Received: normalize=1"):
        HeadSpec(3, normalize=1)
    # Without cached features there are no statistics to standardize with: refused before any work.
    for change, received in (
        ({"feature_cache": False}, "feature_cache=False"),
        ({"strategy": "full"}, "strategy='full'"),
        ({"weights": "none"}, "weights='none'"),
        ({"augment": "light"}, "augmented_views=0"),
    ):
        refused = tiny_config(tmp_path, data=folder, head_norm=True, out=str(tmp_path / "refused"), **change)
        with pytest.raises(ConfigError, match=rf"`head_norm` .* needs the frozen phase on cached features.*{received}"):
            keras_tl.train(refused)
        assert not os.path.exists(tmp_path / "refused")
