"""Discriminative learning rates (layer_lr_decay): per-variable rates reach the optimizer."""

import dataclasses
import json
import os
import zipfile

import keras
import numpy as np
import pytest
from conftest import local_pretrained_weights, tiny_arrays, tiny_config, tiny_model

import keras_tl
from keras_tl import datasets
from keras_tl.core.contract import registry
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.models import optimizers
from keras_tl.core.train.training import compile_model, set_trainable


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_discriminative_rates_reach_the_optimizer_per_variable(tmp_path, name):
    model = tiny_model(tmp_path)
    spec = registry.get("mobilenet_v2")
    set_trainable(model, "all", spec=spec)
    multipliers, blocks = optimizers.layer_rate_multipliers(model, spec, 0.8)
    assert len(blocks) > 10
    assert sorted(set(multipliers.values())) == pytest.approx([0.8**k for k in range(len(blocks), -1, -1)])
    compile_model(
        model, learning_rate=1e-2, optimizer=name, weight_decay=1e-4, lr_multipliers=multipliers, jit_compile=False
    )
    assert type(model.optimizer).__name__ == {"adam": "DiscriminativeAdam", "adamw": "DiscriminativeAdamW"}[name]
    before = {v.path: np.array(v) for v in model.trainable_variables}
    images, labels = tiny_arrays(3, 4)
    images = keras.ops.image.resize(images.astype("float32"), (32, 32))
    model.train_on_batch(images, np.eye(3)[labels])
    rates = set()
    for variable in model.trainable_variables:
        # Adam's first step moves every element by lr * g / (|g| + eps): the largest move is the
        # variable's own rate (the head's variables are not in `multipliers`: the full rate).
        moved = np.abs(np.array(variable) - before[variable.path]).max()
        expected = 1e-2 * multipliers.get(variable.path, 1.0)
        assert moved == pytest.approx(expected, rel=0.02), variable.path
        rates.add(round(expected, 12))
    assert len(rates) > 10 and 1e-2 in rates


def test_layer_lr_decay_in_a_run_is_recorded_and_the_saved_model_is_plain_keras(tmp_path):
    weights = local_pretrained_weights(tmp_path)
    config = tiny_config(tmp_path, weights=weights, layer_lr_decay=0.5, unfreeze="blocks:3")
    result = keras_tl.train(config, datasets.load_digits([0, 1, 2]))
    assert "layer_lr_decay: 0.5" in open(os.path.join(result.run_dir, "config.yaml")).read()
    with zipfile.ZipFile(os.path.join(result.run_dir, "model.keras")) as archive:
        saved = json.loads(archive.read("config.json"))
    assert saved["compile_config"]["optimizer"]["class_name"] == "Adam"
    keras.saving.load_model(os.path.join(result.run_dir, "model.keras"))


def test_layer_lr_decay_is_checked_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"layer_lr_decay` must be a number in \(0, 1\]"):
        TrainConfig(layer_lr_decay=0).validate()
    with pytest.raises(ValueError, match="only strategy='two_phase'"):
        TrainConfig(layer_lr_decay=0.5, strategy="full").validate()
    spec = dataclasses.replace(registry.get("mobilenet_v2"), block_pattern="")  # A backbone without blocks.
    with pytest.raises(ValueError, match="has no block pattern"):
        optimizers.layer_rate_multipliers(tiny_model(tmp_path), spec, 0.5)
    get = registry.get
    monkeypatch.setattr(
        registry, "get", lambda name, **kwargs: dataclasses.replace(get(name, **kwargs), block_pattern="")
    )
    config = tiny_config(tmp_path, layer_lr_decay=0.5)
    with pytest.raises(ValueError, match="has no block pattern"):
        keras_tl.train(config, datasets.load_digits([0, 1]))
    assert not os.path.exists(config.out)
