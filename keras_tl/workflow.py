"""The whole run in order: check config -> data -> model -> fine-tune -> evaluate -> save.

This module and `cli.py` are the only ones that know the whole order. A run directory holds:
`config.yaml` (resolved), `classes.json`, `splits.json`, `data_report.json`, `history_*.csv`,
`history.json`, `best.weights.h5`, `model.keras` and `metrics.json`.
"""

import contextlib
import json
import os
import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from keras_tl import backbones, data
from keras_tl.config import TrainConfig
from keras_tl.evaluate import classification_metrics, format_metrics
from keras_tl.model import build_model, get_backbone
from keras_tl.training import fine_tune

MODEL_FILE = "model.keras"


@dataclass
class RunResult:
    """What `train` returns: the trained model, both phases' histories and the test metrics."""

    run_dir: str
    config: TrainConfig
    model: keras.Model
    histories: dict
    metrics: dict
    class_names: list
    seconds: float


def check_config(config, source=None):
    """Validates everything about a run before any work: fields, backbone, size, weights, data.

    Returns:
        The backbone spec.
    """
    config.validate()
    spec = backbones.get(config.backbone)
    size = config.image_size or spec.default_size
    if size < spec.min_size:
        raise ValueError(
            f"`image_size` {size} is smaller than backbone {spec.name!r} allows "
            f"(minimum {spec.min_size}px)."
        )
    if config.weights not in ("imagenet", "none", "preset") and not os.path.isfile(config.weights):
        raise ValueError(
            f"`weights` must be 'imagenet', 'none', 'preset' (KerasHub) or an existing weights "
            f"file. Received: weights={config.weights!r}"
        )
    if source is None:
        if config.data is None:
            raise ValueError("No data: set `data` to a directory of class folders or pass a source.")
        if not os.path.isdir(config.data):
            raise ValueError(
                f"Data directory not found: {config.data!r}. Expected a folder of class folders."
            )
    return spec


@contextlib.contextmanager
def _precision(enabled):
    previous = keras.config.dtype_policy().name
    if enabled:
        gpu = bool(tf.config.list_physical_devices("GPU"))
        keras.config.set_dtype_policy("mixed_float16" if gpu else "mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def resolve_task(config, num_classes):
    if config.task == "auto":
        return "binary" if num_classes == 2 else "multiclass"
    if config.task == "binary" and num_classes != 2:
        raise ValueError(f"task='binary' needs exactly 2 classes. Received: {num_classes} classes.")
    return config.task


def train(config, source=None):
    """Runs a whole training job and writes its run directory.

    Args:
        config: TrainConfig. Checked before any work starts.
        source: ImageSource. Images from Python (`keras_tl.data.from_arrays`,
            `keras_tl.datasets.load_digits`); defaults to scanning `config.data`.

    Returns:
        A `RunResult`.

    Example:
    >>> config = keras_tl.TrainConfig(backbone="mobilenet_v2", weights="none", image_size=32,
    ...                               head_epochs=1, epochs=1, out="runs/demo")
    >>> result = keras_tl.train(config, keras_tl.datasets.load_digits())
    """
    started = time.perf_counter()
    spec = check_config(config, source)
    if source is None:
        source = data.from_directory(config.data)
    splits = data.split_source(
        source,
        val_split=config.val_split,
        test_split=config.test_split,
        seed=config.seed,
        labels_per_class=config.labels_per_class,
    )
    num_classes = len(source.class_names)
    task = resolve_task(config, num_classes)
    size = config.image_size or spec.default_size
    resolved = TrainConfig.from_dict({**config.to_dict(), "image_size": size, "task": task})

    run_dir = config.out
    os.makedirs(run_dir, exist_ok=True)
    resolved.save(os.path.join(run_dir, "config.yaml"))
    _write_json(run_dir, "classes.json", source.class_names)
    _save_splits(run_dir, splits)
    _write_json(
        run_dir,
        "data_report.json",
        {
            "counts": {s: _class_counts(splits[s], source.class_names) for s in splits},
            "skipped": [{"path": p, "reason": r} for p, r in source.skipped],
        },
    )
    if source.skipped:
        print(f"[keras-tl] skipped {len(source.skipped)} unreadable files; see data_report.json")

    keras.utils.set_random_seed(config.seed)
    pipeline = dict(image_size=size, batch_size=config.batch_size, num_classes=num_classes,
                    task=task, cache=config.cache, seed=config.seed)
    train_ds = data.make_dataset(splits["train"], training=True, augment=config.augment, **pipeline)
    val_ds = data.make_dataset(splits["val"], **pipeline)
    test_ds = data.make_dataset(splits["test"], **pipeline)
    class_weight = None
    if config.class_weight == "balanced":
        class_weight = data.class_weights(splits["train"].labels, num_classes)
        if task == "binary":
            class_weight = {0: class_weight[0], 1: class_weight[1]}

    with _precision(config.mixed_precision):
        model = build_model(
            spec,
            num_classes=num_classes,
            weights=config.weights,
            image_size=size,
            task=task,
            pooling=config.pooling,
            dense_units=config.dense_units,
            dropout=config.dropout,
        )
        histories = fine_tune(
            model,
            train_ds,
            val_ds,
            resolved,
            steps_per_epoch=data.steps_per_epoch(splits["train"], config.batch_size),
            run_dir=run_dir,
            class_weight=class_weight,
        )
    _write_json(run_dir, "history.json", histories)
    model.save(os.path.join(run_dir, MODEL_FILE))
    print("[keras-tl] evaluating on the test split")
    probabilities = model.predict(test_ds)
    metrics = classification_metrics(splits["test"].labels, probabilities, source.class_names)
    seconds = time.perf_counter() - started
    metrics = {
        "test_accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "train_seconds": round(seconds, 1),
        "train_examples": len(splits["train"]),
        **metrics,
    }
    _write_json(run_dir, "metrics.json", metrics)
    print(format_metrics(metrics))
    return RunResult(run_dir, resolved, model, histories, metrics, source.class_names, seconds)


def save_backbone_weights(model, path):
    """Saves the backbone's weights (to reuse as `weights=path` in another run).

    Args:
        model: keras.Model. From `build_model` or `train(...).model`.
        path: str. Must end in `.weights.h5`.
    """
    if not path.endswith(".weights.h5"):
        raise ValueError(f"The weights path must end in '.weights.h5'. Received: {path!r}")
    get_backbone(model).save_weights(path)
    return path


def load_run(run_dir):
    """Loads a run directory: `(model, config, class_names)`."""
    model_path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.isfile(model_path):
        raise ValueError(
            f"{run_dir!r} is not a finished keras-tl run directory: {MODEL_FILE} is missing."
        )
    config = TrainConfig.from_yaml(os.path.join(run_dir, "config.yaml"))
    with open(os.path.join(run_dir, "classes.json"), encoding="utf-8") as f:
        class_names = json.load(f)
    model = keras.saving.load_model(model_path)
    return model, config, class_names


def evaluate_run(run_dir):
    """Recomputes the test metrics of a run from its saved model and saved test split."""
    model, config, class_names = load_run(run_dir)
    test = _load_split(run_dir, "test")
    ds = data.make_dataset(
        test, image_size=config.image_size, batch_size=config.batch_size,
        num_classes=len(class_names), task=config.task, cache=False,
    )
    probabilities = model.predict(ds)
    metrics = classification_metrics(test.labels, probabilities, class_names)
    metrics = {"test_accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], **metrics}
    _write_json(run_dir, "metrics_evaluate.json", metrics)
    return metrics


def predict_files(run_dir, paths, top_k=3):
    """Top-k `(label, probability)` lists for image files, using a run's saved model."""
    model, config, class_names = load_run(run_dir)
    for path in paths:
        reason = data.check_image_file(path)
        if reason:
            raise ValueError(f"Cannot read image {path!r}: {reason}")
    split = data.Split(list(paths), np.zeros(len(paths), dtype=np.int64))
    ds = data.make_dataset(
        split, image_size=config.image_size, batch_size=config.batch_size,
        num_classes=len(class_names), task=config.task, cache=False,
    )
    probabilities = model.predict(ds, verbose=0)
    if probabilities.shape[-1] == 1:
        probabilities = np.concatenate([1 - probabilities, probabilities], axis=-1)
    k = min(top_k, len(class_names))
    results = []
    for row in probabilities:
        order = np.argsort(-row)[:k]
        results.append([(class_names[i], float(row[i])) for i in order])
    return results


def _class_counts(split, class_names):
    counts = np.bincount(split.labels, minlength=len(class_names))
    return {name: int(c) for name, c in zip(class_names, counts)}


def _save_splits(run_dir, splits):
    if isinstance(splits["train"].images, np.ndarray):
        np.savez_compressed(
            os.path.join(run_dir, "splits.npz"),
            **{f"{s}_images": splits[s].images for s in splits},
            **{f"{s}_labels": splits[s].labels for s in splits},
        )
    else:
        _write_json(
            run_dir,
            "splits.json",
            {s: {"files": list(splits[s].images), "labels": splits[s].labels.tolist()} for s in splits},
        )


def _load_split(run_dir, name):
    json_path = os.path.join(run_dir, "splits.json")
    if os.path.isfile(json_path):
        with open(json_path, encoding="utf-8") as f:
            entry = json.load(f)[name]
        return data.Split(entry["files"], np.asarray(entry["labels"], dtype=np.int64))
    with np.load(os.path.join(run_dir, "splits.npz")) as arrays:
        return data.Split(arrays[f"{name}_images"], arrays[f"{name}_labels"])


def _write_json(run_dir, name, value):
    with open(os.path.join(run_dir, name), "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
