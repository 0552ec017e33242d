"""Speed and scale: the feature cache trains the same head, in-model augmentation, compile options,
distribution (MirroredStrategy on two logical CPU devices, in a subprocess)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import TINY_SIZE, local_pretrained_weights, tiny_arrays, tiny_config, tiny_model

from keras_tl import workflow
from keras_tl.core import data as core_data
from keras_tl.core.models.classifier import Classifier
from keras_tl.core.train import features
from keras_tl.image import data
from keras_tl.image.model import AUGMENTATION_LAYER, build_model
from keras_tl.workflow import rundir as run


def _source(per_class=30):
    images, labels = tiny_arrays(3, per_class)
    return data.from_arrays(images, labels)


def test_cached_phase1_trains_the_same_head_as_the_plain_path(tmp_path, capsys):
    weights = local_pretrained_weights(tmp_path)
    source = _source()
    heads = {}
    for cache in (False, True):
        config = tiny_config(
            tmp_path,
            out=str(tmp_path / f"cache_{cache}"),
            weights=weights,
            strategy="feature_extraction",
            head_epochs=3,
            feature_cache=cache,
        )
        result = workflow.train(config, source)
        heads[cache] = result.model.get_layer("predictions").get_weights()
        assert len(result.histories["phase1"]["loss"]) == 3
    out = capsys.readouterr().out
    assert "features cached" in out and "on cached backbone features" in out
    before = build_model("mobilenet_v2", num_classes=3, weights=weights, image_size=TINY_SIZE)
    moved = np.abs(heads[True][0] - before.get_layer("predictions").get_weights()[0]).max()
    assert moved > 1e-3  # The head did train...
    for plain, cached in zip(heads[False], heads[True]):  # ...to the same weights (same seed).
        np.testing.assert_allclose(cached, plain, atol=1e-5)


def test_text_cached_phase_reads_trimmed_batches_and_keeps_the_split_order(tmp_path, monkeypatch):
    """The frozen phase reads texts through the trimmed, length-sorted pass, yet caches each split's
    rows in the split's order with the features of the padded pass (real MiniLM, real glosses)."""
    from keras_tl import datasets
    from keras_tl.core.contract import modality as modalities
    from keras_tl.core.contract import registry
    from keras_tl.core.contract.config import TrainConfig

    glosses = datasets.load_wordnet_glosses()
    texts = list(glosses.items[:60]) + [" ".join(glosses.items[:20])]  # the last one fills all 64 tokens
    splits = {
        "train": core_data.Split(texts[:40], glosses.labels[:40]),
        "val": core_data.Split(texts[40:], glosses.labels[40:61]),
    }
    text = modalities.get("text")
    config = TrainConfig(
        backbone="minilm_l6",
        weights="pretrained",
        sequence_length=64,
        batch_size=8,
        problem="multiclass",
        head_epochs=1,
        out=str(tmp_path / "never"),
    )
    task = Classifier.build(
        text, registry.get("minilm_l6", modality="text"), config, len(glosses.class_names), glosses.class_names
    )
    widths, trimmed = [], text.feature_pass

    def spied(*args):  # the batch widths of each pass the cache asks for
        order, dataset = trimmed(*args)
        widths.extend(x["token_ids"].shape[1] for x, _ in dataset)
        return order, dataset

    monkeypatch.setattr(text, "feature_pass", spied)
    cached = features.cached_phase(task, config, splits, train_dataset=None)
    assert min(widths) < 32 and max(widths) == 64  # the trimmed pass was the one read
    extractor, _ = features.split_model(task.model)
    val_x, val_y = (np.concatenate(parts) for parts in zip(*cached.val.as_numpy_iterator()))
    padded = extractor.predict(text.dataset(task, splits["val"], config, cache="none").map(lambda x, y: x), verbose=0)
    np.testing.assert_allclose(val_x, padded, atol=2e-5)  # in the split's order, not by length
    assert (val_y.argmax(1) == splits["val"].labels).all()
    train_x = np.concatenate([x for x, _ in cached.train.as_numpy_iterator()])
    plain = extractor.predict(text.dataset(task, splits["train"], config, cache="none").map(lambda x, y: x), verbose=0)
    np.testing.assert_allclose(np.sort(train_x.sum(1)), np.sort(plain.sum(1)), rtol=1e-4)
    with pytest.raises(ValueError, match="one row per item: 3 items in the order, received 2 rows"):
        features.in_split_order(np.array([2, 0, 1]), np.zeros((2, 4)), np.zeros((2, 1)))


def test_split_model_shares_the_head_and_reproduces_the_model(tmp_path):
    model = tiny_model(tmp_path, dense_units=[8])
    extractor, head = features.split_model(model)
    images, _ = tiny_arrays(3, 2)
    images = keras.ops.image.resize(images.astype("float32"), (TINY_SIZE, TINY_SIZE))
    np.testing.assert_allclose(
        head.predict(extractor.predict(images, verbose=0), verbose=0), model.predict(images, verbose=0), atol=1e-6
    )
    head_variables = {id(v) for v in head.weights}
    assert {id(v) for v in model.get_layer("predictions").weights} <= head_variables
    assert extractor.output_shape == (None, 1280)


def test_cached_phase_then_phase2_saves_a_model_that_reloads(tmp_path):
    weights = local_pretrained_weights(tmp_path)
    config = tiny_config(tmp_path, weights=weights, head_epochs=2, fine_tune_epochs=1)
    result = workflow.train(config, _source(12))
    reloaded = keras.saving.load_model(os.path.join(result.run_dir, run.MODEL_FILE))
    images, _ = tiny_arrays(3, 2)
    images = keras.ops.image.resize(images.astype("float32"), (TINY_SIZE, TINY_SIZE))
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), result.model.predict(images, verbose=0), atol=1e-6)
    assert set(result.histories) == {"phase1", "phase2"}


def test_augmentation_without_views_falls_back_and_says_so(tmp_path, capsys):
    weights = local_pretrained_weights(tmp_path)
    config = tiny_config(tmp_path, weights=weights, strategy="feature_extraction", augment="light")
    workflow.train(config, _source(12))
    out = capsys.readouterr().out
    assert "phase 1 runs on raw inputs: augmentation is on" in out
    assert "on cached backbone features" not in out


def test_augmented_views_are_cached_in_model_augmentation_is_inference_safe(tmp_path, capsys):
    weights = local_pretrained_weights(tmp_path)
    config = tiny_config(
        tmp_path,
        weights=weights,
        strategy="feature_extraction",
        augment="light",
        augment_on="model",
        augmented_views=2,
        head_epochs=2,
    )
    source = _source(12)
    result = workflow.train(config, source)
    out = capsys.readouterr().out
    assert "augmented view 2/2" in out and "on cached backbone features" in out
    assert "24 x 1,280 training" not in out  # two views of the 24 training images
    assert "48 x 1,280 training" in out
    model = result.model
    assert isinstance(model.get_layer(AUGMENTATION_LAYER), keras.Sequential)
    images = keras.ops.image.resize(source.items[:4].astype("float32"), (TINY_SIZE, TINY_SIZE))
    np.testing.assert_array_equal(model.predict(images, verbose=0), model.predict(images, verbose=0))
    augmented = model.get_layer(AUGMENTATION_LAYER)(images, training=True)
    assert np.abs(np.asarray(augmented) - np.asarray(images)).max() > 1  # active in training only


def test_compile_options_reach_the_model(tmp_path):
    weights = local_pretrained_weights(tmp_path)
    config = tiny_config(
        tmp_path, weights=weights, steps_per_execution=2, feature_cache=False, strategy="feature_extraction"
    )
    result = workflow.train(config, _source(12))
    assert result.model.steps_per_execution == 2
    assert result.model.jit_compile is False  # "auto" on a TensorFlow CPU


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(distribute="data_parallel"), "needs KERAS_BACKEND=jax"),
        (dict(distribute="multi_worker"), "TF_CONFIG"),
        (dict(distribute="horovod"), "`distribute` must be one of"),
        (dict(augment_on="gpu"), "`augment_on` must be one of"),
        (dict(steps_per_execution=0), "`steps_per_execution` must be an integer >= 1"),
        (dict(augmented_views=-1), "`augmented_views` must be an integer >= 0"),
        (dict(feature_cache="yes"), "`feature_cache` must be true or false"),
        (dict(jit_compile="xla"), "`jit_compile` must be true, false or 'auto'"),
    ],
)
def test_speed_options_are_checked_before_any_work(tmp_path, monkeypatch, overrides, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=message):
        workflow.check_config(tiny_config(tmp_path, **overrides), source=_source(2))


MIRRORED = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    sys.path.insert(0, sys.argv[2])
    from conftest import local_pretrained_weights, tiny_arrays, tiny_config, TINY_SIZE
    import pathlib
    from keras_tl import workflow
    from keras_tl.core import data as core_data
    from keras_tl.image import data
    from keras_tl.workflow import rundir as run
    tmp = pathlib.Path(sys.argv[1])
    weights = local_pretrained_weights(tmp)
    images, labels = tiny_arrays(3, 12)
    config = tiny_config(tmp, weights=weights, distribute="mirrored", head_epochs=1, fine_tune_epochs=1)
    result = workflow.train(config, data.from_arrays(images, labels))
    reloaded = keras.saving.load_model(os.path.join(result.run_dir, run.MODEL_FILE))
    x = keras.ops.image.resize(images[:4].astype("float32"), (TINY_SIZE, TINY_SIZE))
    diff = float(np.abs(reloaded.predict(x, verbose=0) - result.model.predict(x, verbose=0)).max())
    print("RESULT " + json.dumps({"diff": diff, "phases": sorted(result.histories)}))
""")


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus_trains_saves_and_reloads(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), os.path.dirname(__file__)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "MirroredStrategy: 2 replicas" in done.stdout
    result = json.loads(done.stdout.split("RESULT ")[-1])
    assert result["phases"] == ["phase1", "phase2"]
    assert result["diff"] < 1e-5


JAX_DATA_PARALLEL = textwrap.dedent("""
    import json, os, sys
    import keras
    import keras_tl
    from keras_tl.core.train import features  # the model side
    from keras_tl.image import model
    from keras_tl.core.train import training
    tf_after_model_side = "tensorflow" in sys.modules
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from conftest import local_pretrained_weights, tiny_arrays, tiny_config, TINY_SIZE
    import pathlib
    from keras_tl import workflow
    from keras_tl.core import data as core_data
    from keras_tl.image import data
    from keras_tl.workflow import rundir as run
    tmp = pathlib.Path(sys.argv[1])
    weights = local_pretrained_weights(tmp)
    images, labels = tiny_arrays(3, 12)
    config = tiny_config(tmp, weights=weights, distribute="data_parallel", head_epochs=2, fine_tune_epochs=1)
    result = workflow.train(config, data.from_arrays(images, labels))
    reloaded = keras.saving.load_model(os.path.join(result.run_dir, run.MODEL_FILE))
    x = keras.ops.image.resize(images[:4].astype("float32"), (TINY_SIZE, TINY_SIZE))
    diff = float(np.abs(reloaded.predict(x, verbose=0) - result.model.predict(x, verbose=0)).max())
    print("RESULT " + json.dumps({"backend": keras.backend.backend(), "tf_after_model_side": tf_after_model_side,
                                  "devices": len(keras.distribution.list_devices()), "diff": diff,
                                  "phases": sorted(result.histories)}))
""")


@pytest.mark.slow
def test_jax_backend_trains_two_phases_with_data_parallel_on_two_cpu_devices(tmp_path):
    script = tmp_path / "jax_run.py"
    script.write_text(JAX_DATA_PARALLEL)
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), os.path.dirname(__file__)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "keras.distribution.DataParallel: 2 devices" in done.stdout
    assert "on cached backbone features" in done.stdout
    result = json.loads(done.stdout.split("RESULT ")[-1])
    assert result["backend"] == "jax" and result["devices"] == 2
    assert result["tf_after_model_side"] is False  # model/training/features need no TensorFlow
    assert result["phases"] == ["phase1", "phase2"]
    assert result["diff"] < 1e-5


def test_best_weights_over_both_phases_are_the_ones_kept(tmp_path):
    weights = local_pretrained_weights(tmp_path)
    config = tiny_config(tmp_path, weights=weights, head_epochs=3, fine_tune_epochs=2, head_lr=3e-2)
    source = _source(12)
    result = workflow.train(config, source)
    val_losses = result.histories["phase1"]["val_loss"] + result.histories["phase2"]["val_loss"]
    splits = core_data.split_source(source, val_split=config.val_split, test_split=config.test_split, seed=config.seed)
    val = data.make_dataset(splits["val"], image_size=TINY_SIZE, batch_size=16, num_classes=3)
    loss = result.model.evaluate(val, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(min(val_losses), abs=1e-4)
    reloaded = build_model("mobilenet_v2", num_classes=3, weights=weights, image_size=TINY_SIZE)
    reloaded.load_weights(os.path.join(result.run_dir, "best.weights.h5"))
    for a, b in zip(reloaded.weights, result.model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
