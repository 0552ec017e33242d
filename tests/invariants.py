"""The transfer-learning invariants, checked for any modality (keras-hub's `run_task_test` habit).

A modality's test is one declarative call:

    run_transfer_test(config, source, tmp_path, monkeypatch, policies=["all", "top:5", "blocks:1"])

It builds the task through the modality plug-in (as `keras_tl.train` does) and checks:
1. a pretrained backbone runs in inference mode even when `fit` says training (BatchNorm statistics
   and dropout off), with its layers trainable;
2. phase 1 moves no backbone weight while the head learns;
3. every `trainable` change is followed by a recompile, in both phases;
4. each unfreeze policy unfreezes exactly the layers it names (never BatchNorm) and phase 2 moves
   those and only those;
5. a save/load round trip gives the same predictions;
6. the `.keras` and SavedModel exports agree with the Keras model.
"""

import os

import keras
import numpy as np

from keras_tl.core import data as core_data
from keras_tl.core.contract import modality as modalities
from keras_tl.core.contract import registry
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.export import formats as export
from keras_tl.core.models.classifier import Classifier
from keras_tl.core.models.heads import POOL_LAYER, get_backbone
from keras_tl.core.train import training
from keras_tl.workflow.checks import resolve_config, resolve_problem


def build_classifier(config, source):
    """`(task, resolved config, train, val, split)` for `config` on `source`, as a run builds them."""
    modality = modalities.of(config, source)
    spec = registry.get(config.backbone, modality=modality.name)
    resolved = resolve_config(config, modality, spec, resolve_problem(config, len(source.class_names)))
    keras.utils.set_random_seed(resolved.seed)
    task = Classifier.build(modality, spec, resolved, len(source.class_names), source.class_names)
    split = source.as_split()
    train = modality.dataset(task, split, resolved, training=True)
    val = modality.dataset(task, split, resolved)
    return task, resolved, train, val, split


def _values(weights):
    return [np.array(w.numpy(), copy=True) for w in weights]


def _weights_by_layer(backbone):
    return {layer.name: _values(layer.weights) for layer in backbone.layers if layer.weights}


def _check_inference_mode(task, items):
    backbone = get_backbone(task.model)
    backbone.trainable = True  # The hard case: unfrozen, BatchNorm and dropout included.
    pooled = keras.Model(task.model.inputs, task.model.get_layer(POOL_LAYER).output)
    inputs = task.inputs(items)
    np.testing.assert_allclose(
        np.asarray(pooled(inputs, training=True)), np.asarray(pooled(inputs, training=False)), rtol=0, atol=1e-6
    )
    backbone.trainable = False


def _check_phase1_moves_only_the_head(task, config, train, val, split):
    backbone_before = _values(get_backbone(task.model).weights)
    head = task.model.get_layer("predictions")
    head_before = _values(head.weights)
    phase1 = TrainConfig.from_dict({**config.to_dict(), "strategy": "feature_extraction", "head_epochs": 2})
    training.fine_tune(task, train, val, phase1, steps_per_epoch=core_data.steps_per_epoch(split, config.batch_size))
    for a, b in zip(backbone_before, _values(get_backbone(task.model).weights)):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(head_before, _values(head.weights))), "the head did not learn"


def _check_recompile_after_every_trainable_change(task, config, train, val, split, monkeypatch):
    events = []
    real_set, real_compile = training.set_trainable, training.compile_model

    def fake_fit(self, *args, epochs, initial_epoch, **kwargs):
        events.append("fit")
        history = keras.callbacks.History()
        history.epoch, history.history = list(range(initial_epoch, epochs)), {"loss": [1.0]}
        return history

    with monkeypatch.context() as patch:
        patch.setattr(training, "set_trainable", lambda *a, **k: (events.append("trainable"), real_set(*a, **k))[1])
        patch.setattr(training, "compile_model", lambda *a, **k: (events.append("compile"), real_compile(*a, **k))[1])
        patch.setattr(keras.Model, "fit", fake_fit)
        training.fine_tune(
            task, train, val, config, steps_per_epoch=core_data.steps_per_epoch(split, config.batch_size)
        )
    assert events == ["trainable", "compile", "fit", "trainable", "compile", "fit"], events


def expected_unfrozen(backbone, policy, spec):
    """The layer names `policy` should unfreeze, computed here independently of `set_trainable`."""
    layers = backbone.layers
    kind, _, value = policy.partition(":")
    if kind == "all":
        start = 0
    elif kind == "top":
        start = len(layers) - int(value)
    elif kind == "fraction":
        start = len(layers) - int(np.ceil(float(value) * len(layers)))
    elif kind == "blocks":
        start = registry.block_starts(backbone, spec)[-int(value)][1]
    else:
        start = [layer.name for layer in layers].index(value)
    return [
        layer.name
        for layer in layers[start:]
        if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
    ]


def _check_unfreeze_policy(task, policy):
    backbone = get_backbone(task.model)
    training.set_trainable(task.model, None)
    assert not backbone.trainable and not backbone.trainable_weights
    unfrozen = training.set_trainable(task.model, policy, spec=task.spec)
    expected = expected_unfrozen(backbone, policy, task.spec)
    trainable = [layer.name for layer in backbone.layers if layer.trainable and layer.weights]
    assert unfrozen == expected == trainable, (policy, unfrozen, expected)
    assert expected, f"{policy} should unfreeze something"
    assert len(expected) < len([l for l in backbone.layers if l.weights]) or policy == "all"


def _check_phase2_moves_what_it_unfroze(task, config, train, val, split, policy):
    backbone = get_backbone(task.model)
    before = _weights_by_layer(backbone)
    phase2 = TrainConfig.from_dict(
        {**config.to_dict(), "strategy": "two_phase", "head_epochs": 1, "fine_tune_epochs": 1, "unfreeze": policy}
    )
    training.fine_tune(task, train, val, phase2, steps_per_epoch=core_data.steps_per_epoch(split, config.batch_size))
    unfrozen = set(expected_unfrozen(backbone, policy, task.spec))
    after = _weights_by_layer(backbone)
    for name, values in before.items():
        layer = backbone.get_layer(name)
        if name in unfrozen:
            trainable = [i for i, w in enumerate(layer.weights) if w.trainable]
            assert any(not np.array_equal(values[i], after[name][i]) for i in trainable), f"{name} did not move"
        else:
            for a, b in zip(values, after[name]):
                np.testing.assert_array_equal(a, b, err_msg=f"frozen layer {name} moved in phase 2")


def _check_save_load_and_exports(task, items, tmp_path):
    reference = task.predict(items)
    path = os.path.join(tmp_path, "round_trip.keras")
    task.model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(task.inputs(items), verbose=0),
        task.model.predict(task.inputs(items), verbose=0),
        rtol=0,
        atol=1e-6,
    )
    info = export.ExportInfo(name="invariants", class_names=task.class_names, check_items=items)
    kept = export.export_keras(task, os.path.join(tmp_path, "keras"), info)
    assert kept.check["top1_agreement"] == 1.0 and kept.check["max_abs_diff"] < 1e-6
    served = export.export_saved_model(task, os.path.join(tmp_path, "saved"), info)
    assert served.version == 1 and os.path.isfile(os.path.join(served.path, "saved_model.pb"))
    for name, check in served.check.items():
        if name not in ("pruned_versions", "storage"):
            assert check["top1_agreement"] == 1.0 and check["max_abs_diff"] < 1e-4, (name, check)
    assert reference.shape == (len(items), len(task.class_names))


def run_transfer_test(config, source, tmp_path, monkeypatch, *, policies, phase2_policy=None, check_items=8):
    """Checks every transfer invariant for the task `config` builds on `source` (any modality).

    Args:
        config: TrainConfig. A pretrained backbone (weights from a local file or preset), tiny sizes.
        source: a labelled source of the config's modality.
        policies: list of str. Unfreeze policies to check exactly.
        phase2_policy: str. The policy phase 2 trains with in the "moves what it unfroze" check.
            Defaults to the last of `policies`.
        check_items: int. Held-out items for the round trip and export checks.

    Returns:
        The trained task (for modality-specific assertions).
    """
    task, resolved, train, val, split = build_classifier(config, source)
    assert resolved.strategy == "two_phase" and resolved.fine_tune_epochs > 0, "the helper checks both phases"
    items = split.items[:check_items]
    _check_inference_mode(task, items)
    _check_phase1_moves_only_the_head(task, resolved, train, val, split)
    _check_recompile_after_every_trainable_change(task, resolved, train, val, split, monkeypatch)
    for policy in policies:
        _check_unfreeze_policy(task, policy)
    _check_phase2_moves_what_it_unfroze(task, resolved, train, val, split, phase2_policy or policies[-1])
    _check_save_load_and_exports(task, items, str(tmp_path))
    return task
