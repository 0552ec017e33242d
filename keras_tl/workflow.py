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

from keras_tl import augment as augment_lib
from keras_tl import backbones, data, distribute, export, features, imports, plots, text_backbones
from keras_tl.config import TrainConfig, resolve_augment
from keras_tl.evaluate import classification_metrics, format_metrics, multilabel_metrics
from keras_tl.model import build_model, get_backbone, is_pretrained
from keras_tl.report import write_report
from keras_tl.text_data import TextSource
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
    distribute.check(config.distribute)
    spec = backbones.get(config.backbone)
    if config.pooling not in ("avg", "max"):
        raise ValueError(f"`pooling` for images must be 'avg' or 'max' ('cls' is for text encoders). "
                         f"Received: pooling={config.pooling!r}")
    size = config.image_size or spec.default_size
    if size < spec.min_size:
        raise ValueError(
            f"`image_size` {size} is smaller than backbone {spec.name!r} allows "
            f"(minimum {spec.min_size}px)."
        )
    if config.weights == "imagenet" and spec.imagenet_from != "keras":
        # Weights a package ships: fail now if it is missing, and convert them (once) before the
        # seeded work starts, so a first run and a later one train identically.
        imports.imagenet_weights(spec.imagenet_from)
    if config.weights not in ("imagenet", "none", "preset") and not os.path.isfile(config.weights):
        raise ValueError(
            f"`weights` must be 'imagenet', 'none', 'preset' (KerasHub) or an existing weights "
            f"file. Received: weights={config.weights!r}"
        )
    if source is None:
        if config.data is None:
            raise ValueError("No data: set `data` to a directory of class folders or pass a source.")
        if config.data.lower().endswith(".csv"):
            if not os.path.isfile(config.data):
                raise ValueError(f"Manifest not found: {config.data!r}. Expected a CSV file.")
        elif not config.data.startswith("tfds:") and not os.path.isdir(config.data):
            raise ValueError(
                f"Data directory not found: {config.data!r}. Expected a folder of class folders, "
                "a .csv manifest or tfds:NAME."
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


def resolve_task(config, num_classes, multilabel=False):
    if multilabel:
        if config.task not in ("auto", "multilabel"):
            raise ValueError(f"The data has several labels per image; task must be 'auto' or "
                             f"'multilabel'. Received: task={config.task!r}")
        return "multilabel"
    if config.task == "multilabel":
        raise ValueError("task='multilabel' needs multi-label data (a manifest with 'a;b' labels).")
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

    A text run (`modality`, or a text encoder as `backbone`) goes to `keras_tl.text_workflow`.
    """
    if is_text(config, source):
        from keras_tl import text_workflow

        return text_workflow.train_text(config, source)
    started = time.perf_counter()
    spec = check_config(config, source)
    if source is None:
        source = data.load_source(config.data)
    splits = data.split_source(
        source,
        val_split=config.val_split,
        test_split=config.test_split,
        seed=config.seed,
        labels_per_class=config.labels_per_class,
    )
    num_classes = len(source.class_names)
    task = resolve_task(config, num_classes, multilabel=source.labels.ndim == 2)
    size = config.image_size or spec.default_size
    resolved = TrainConfig.from_dict({
        **config.to_dict(), "image_size": size, "task": task, "modality": "image",
        "optimizer": "adam" if config.optimizer == "auto" else config.optimizer,
        "schedule": "cosine" if config.schedule == "auto" else config.schedule,
    })

    run_dir = start_run(resolved, source, splits, save_splits=_save_splits, unit="images")
    return finish_run(resolved, spec, source, splits, run_dir, _fit_and_evaluate, started)


def start_run(resolved, source, splits, *, save_splits, unit):
    """Writes what a run knows before training (config, classes, splits, data report); returns the
    run directory. `save_splits(run_dir, splits)` writes the splits; `unit` names the examples."""
    run_dir = resolved.out
    os.makedirs(run_dir, exist_ok=True)
    resolved.save(os.path.join(run_dir, "config.yaml"))
    _write_json(run_dir, "classes.json", source.class_names)
    save_splits(run_dir, splits)
    _write_json(
        run_dir,
        "data_report.json",
        {
            "counts": {s: _class_counts(splits[s], source.class_names) for s in splits},
            "imbalance": _imbalance(resolved, splits["train"], source.class_names),
            "skipped": [{"path": p, "reason": r} for p, r in source.skipped],
            "licence": source.licence,
        },
    )
    if source.licence:
        print(f"[keras-tl] data licence: {source.licence}")
    print(f"[keras-tl] {len(source.class_names)} classes; train/val/test = "
          f"{len(splits['train'])}/{len(splits['val'])}/{len(splits['test'])} {unit}; "
          f"imbalance handled by: {resolved.class_weight}")
    if source.skipped:
        print(f"[keras-tl] skipped {len(source.skipped)} unusable inputs; see data_report.json "
              f"(first: {source.skipped[0][0]}: {source.skipped[0][1]})")
    return run_dir


def finish_run(resolved, spec, source, splits, run_dir, fit_and_evaluate, started):
    """Trains and evaluates through `fit_and_evaluate(config, spec, splits, class_names, run_dir)`,
    and its from-scratch twin if asked; writes metrics.json and report.md; returns a `RunResult`."""
    model, histories, metrics = fit_and_evaluate(resolved, spec, splits, source.class_names, run_dir)
    if resolved.compare_scratch:
        print("[keras-tl] --compare-scratch: the same architecture from random weights")
        scratch_config = scratch_baseline(resolved)
        _, _, scratch = fit_and_evaluate(scratch_config, spec, splits, source.class_names, scratch_config.out)
        metrics["scratch"] = {k: scratch[k] for k in ("test_accuracy", "macro_f1", "train_seconds")}
        metrics["transfer_minus_scratch"] = metrics["test_accuracy"] - scratch["test_accuracy"]
    if source.licence:
        metrics["data_licence"] = source.licence
    seconds = time.perf_counter() - started
    metrics["total_seconds"] = round(seconds, 1)
    _write_json(run_dir, "metrics.json", metrics)
    write_report(run_dir, resolved, metrics, metrics["plots"])
    print(format_metrics(metrics))
    if "scratch" in metrics:
        print(f"scratch accuracy {metrics['scratch']['test_accuracy']:.4f}; transfer - scratch "
              f"{100 * metrics['transfer_minus_scratch']:+.1f} points")
    return RunResult(run_dir, resolved, model, histories, metrics, source.class_names, seconds)


def is_text(config, source=None):
    """True for a text run: `modality: text`, a text source, or (auto) a text encoder as backbone."""
    if config.modality != "auto":
        return config.modality == "text"
    if source is not None:
        return isinstance(source, TextSource)
    return text_backbones.is_text(config.backbone)


def scratch_baseline(config):
    """The from-scratch twin of a config: random weights, everything trainable, same total epochs."""
    return TrainConfig.from_dict({
        **config.to_dict(),
        "weights": "none",
        "strategy": "full",
        "head_epochs": config.head_epochs + config.epochs,
        "epochs": 0,
        "compare_scratch": False,
        "out": os.path.join(config.out, "scratch"),
    })


def _fit_and_evaluate(config, spec, splits, class_names, run_dir):
    """Builds, trains and evaluates one model; writes its history, model, metrics and plots."""
    started = time.perf_counter()
    os.makedirs(run_dir, exist_ok=True)
    num_classes = len(class_names)
    keras.utils.set_random_seed(config.seed)
    def cache(split):
        if config.cache == "disk":
            os.makedirs(os.path.join(run_dir, "cache"), exist_ok=True)
            return os.path.join(run_dir, "cache", split)
        return config.cache

    pipeline = dict(image_size=config.image_size, batch_size=config.batch_size,
                    num_classes=num_classes, task=config.task, seed=config.seed)
    def train_dataset(seed=config.seed):
        return data.make_dataset(splits["train"], training=True, augment=config.augment,
                                 augment_params=config.augment_params, cache=cache("train"),
                                 augment_on=config.augment_on, oversample=config.class_weight == "oversample",
                                 **{**pipeline, "seed": seed})

    train_ds = train_dataset()
    val_ds = data.make_dataset(splits["val"], cache=cache("val"), **pipeline)
    test_ds = data.make_dataset(splits["test"], cache=cache("test"), **pipeline)
    class_weight = None
    if config.class_weight == "balanced" and config.task != "multilabel":
        class_weight = data.class_weights(splits["train"].labels, num_classes)
    in_model = None
    if config.augment_on == "model":
        params = resolve_augment(config.augment, config.augment_params)
        in_model = augment_lib.image_layers(params, config.image_size, config.seed)

    with _precision(config.mixed_precision), distribute.scope(config.distribute):
        model = build_model(
            spec,
            num_classes=num_classes,
            weights=config.weights,
            image_size=config.image_size,
            task=config.task,
            pooling=config.pooling,
            dense_units=config.dense_units,
            dropout=config.dropout,
            augmentation=in_model,
        )
        cached = _cached_phase(model, config, splits, train_dataset, data.make_dataset(
            splits["train"], cache=cache("train"), **pipeline), val_ds)
        timings = {}
        histories = fine_tune(
            model,
            train_ds,
            val_ds,
            config,
            steps_per_epoch=data.steps_per_epoch(splits["train"], config.batch_size),
            run_dir=run_dir,
            class_weight=class_weight,
            cached=cached,
            timings=timings,
            train_phase2=train_dataset() if config.strategy == "two_phase" else None,
        )
    _write_json(run_dir, "history.json", histories)
    model.save(os.path.join(run_dir, MODEL_FILE))
    print("[keras-tl] evaluating on the test split")
    probabilities = model.predict(test_ds)
    metrics = evaluate_predictions(splits["test"].labels, probabilities, class_names, config.task)
    metrics = {
        "test_accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "train_seconds": round(time.perf_counter() - started, 1),
        "train_examples": len(splits["train"]),
        "phase_seconds": {k: round(v, 2) for k, v in timings.items()},
        **metrics,
        "plots": _plot_run(run_dir, histories, metrics, splits["test"], probabilities, class_names, config),
    }
    _write_json(run_dir, "metrics.json", metrics)
    return model, histories, metrics


def _cached_phase(model, config, splits, train_dataset, plain_train, val_ds):
    """The frozen phase on cached backbone features, or None where it must run on images.

    `train_dataset(seed)` builds the (augmented) training pipeline; `plain_train` is the training
    split without shuffling or augmentation.
    """
    frozen_phase = config.strategy != "full" and config.head_epochs > 0
    if not (config.feature_cache and frozen_phase and is_pretrained(config.weights)):
        return None
    augmenting = not augment_lib.is_identity(resolve_augment(config.augment, config.augment_params))
    if augmenting and config.augmented_views == 0:
        print("[keras-tl] phase 1 runs on images: augmentation is on and augmented_views=0 "
              "(set augmented_views=N to cache the features of N augmented views instead)")
        return None
    started = time.perf_counter()
    extractor, head = features.split_model(model)
    train = splits["train"]
    oversample = config.class_weight == "oversample"
    if augmenting:
        sources = [train_dataset(config.seed + n) for n in range(config.augmented_views)]
        names = [f"features of augmented view {n + 1}/{config.augmented_views}" for n in range(len(sources))]
    else:
        sources, names = [plain_train], ["training-set features"]
    *views, (val_x, val_y) = features.extract(
        extractor, [data.targets_as_inputs(ds) for ds in sources + [val_ds]],
        augmented=augmenting and config.augment_on == "model", descriptions=names + ["validation-set features"],
    )
    x = np.concatenate([v[0] for v in views])
    y = np.concatenate([v[1] for v in views])
    if augmenting:  # Views are already shuffled/oversampled; one epoch = one training set's worth.
        train_features = data.feature_dataset(x, y, np.zeros(len(x), np.int32), batch_size=config.batch_size,
                                              training=True, seed=config.seed, repeat=True)
    else:
        train_features = data.feature_dataset(x, y, train.labels, batch_size=config.batch_size,
                                              training=True, oversample=oversample, seed=config.seed)
    val_features = data.feature_dataset(val_x, val_y, splits["val"].labels, batch_size=config.batch_size)
    seconds = time.perf_counter() - started
    print(f"[keras-tl] features cached in {seconds:.1f} s: {x.shape[0]:,} x {x.shape[1]:,} training, "
          f"{val_x.shape[0]:,} validation")
    return features.CachedPhase(head, train_features, val_features,
                                steps_per_epoch=data.steps_per_epoch(train, config.batch_size),
                                seconds=seconds, repeated=augmenting)


def evaluate_predictions(labels, probabilities, class_names, task):
    """Single-label metrics, or multi-label ones with "accuracy" = subset accuracy."""
    if task == "multilabel":
        metrics = multilabel_metrics(labels, probabilities, class_names)
        return {"accuracy": metrics["subset_accuracy"], **metrics}
    return classification_metrics(labels, probabilities, class_names)


def _plot_run(run_dir, histories, metrics, test, probabilities, class_names, config):
    if config.task == "multilabel":
        files = {"Learning curves": "learning_curves.png", "Per-class F1": "per_class_f1.png"}
        plots.learning_curves(histories, os.path.join(run_dir, files["Learning curves"]))
        plots.per_class_f1(metrics["per_class"], os.path.join(run_dir, files["Per-class F1"]))
        return files
    files = {
        "Learning curves": "learning_curves.png",
        "Confusion matrix": "confusion_matrix.png",
        "Per-class F1": "per_class_f1.png",
        "Most confidently wrong test images": "confident_errors.png",
    }
    plots.learning_curves(histories, os.path.join(run_dir, files["Learning curves"]))
    plots.confusion_matrix(metrics["confusion_matrix"], class_names, os.path.join(run_dir, files["Confusion matrix"]))
    plots.per_class_f1(metrics["per_class"], os.path.join(run_dir, files["Per-class F1"]))
    probabilities = export.probabilities_of(probabilities)
    wrong = np.flatnonzero(probabilities.argmax(-1) != test.labels)
    worst = wrong[np.argsort(-probabilities[wrong].max(-1))][:16]
    images = images_at_size(test.subset(worst), config) if len(worst) else np.zeros((0, 1, 1, 3), np.uint8)
    plots.confident_errors(images, test.labels[worst], probabilities[worst], class_names,
                           os.path.join(run_dir, files["Most confidently wrong test images"]))
    return files


def compare_backbones(config, names, source=None):
    """Trains each backbone under one config and budget; writes a ranked table and a Pareto plot.

    Args:
        config: TrainConfig. Shared by every backbone; `config.out` receives one run directory per
            backbone plus `compare.md`, `compare.json` and `pareto.png`.
        names: list of str. Backbone names (at least 2).
        source: ImageSource. Defaults to scanning `config.data`.

    Returns:
        The table rows, best test accuracy first (ties: lower Keras latency first).
    """
    if len(names) < 2:
        raise ValueError(f"`compare` needs at least 2 backbones. Received: {names}")
    text = [n for n in names if text_backbones.is_text(n)]
    if text or config.modality == "text":
        raise ValueError(f"`compare` ranks image backbones (it exports each to TFLite and times it on "
                         f"images). Received text encoders: {text or names}; train each with `train`.")
    configs = [TrainConfig.from_dict({**config.to_dict(), "backbone": n,
                                      "out": os.path.join(config.out, n.replace("/", "_"))}) for n in names]
    for c in configs:  # Every config is checked before the first one trains.
        check_config(c, source)
    if source is None:
        source = data.load_source(config.data)
    rows = []
    for c in configs:
        result = train(c, source)
        # Float32 TFLite, checked against Keras, for its size and latency.
        exported = export_run(result.run_dir, "tflite", out=os.path.join(result.run_dir, "exports"))
        sample = images_at_size(load_split(result.run_dir, "test"), result.config, limit=1)[0]
        rows.append({
            "backbone": c.backbone,
            "test_accuracy": result.metrics["test_accuracy"],
            "macro_f1": result.metrics["macro_f1"],
            "params": int(result.model.count_params()),
            "model_mb": exported.size_bytes / 2**20,
            "keras_mb": os.path.getsize(os.path.join(result.run_dir, MODEL_FILE)) / 2**20,
            "keras_latency_ms": export.keras_latency_ms(result.model, sample),
            "tflite_latency_ms": exported.evaluation["latency_ms_batch1"],
            "train_seconds": result.metrics["train_seconds"],
        })
    rows.sort(key=lambda r: (-r["test_accuracy"], r["keras_latency_ms"]))
    os.makedirs(config.out, exist_ok=True)
    _write_json(config.out, "compare.json", rows)
    plots.pareto(rows, os.path.join(config.out, "pareto.png"))
    header = ("| rank | backbone | test accuracy | macro F1 | parameters | TFLite MB | .keras MB | "
              "Keras batch-1 ms | TFLite batch-1 ms | training s |")
    lines = [f"# Backbone comparison ({config.image_size or 'default'}px, {config.head_epochs} + "
             f"{config.epochs} epochs, weights `{config.weights}`)", "", header, "|" + "---|" * 10]
    for rank, r in enumerate(rows, 1):
        lines.append(
            f"| {rank} | {r['backbone']} | {100 * r['test_accuracy']:.1f}% | {r['macro_f1']:.3f} | "
            f"{r['params']:,} | {r['model_mb']:.2f} | {r['keras_mb']:.2f} | {r['keras_latency_ms']:.2f} | "
            f"{r['tflite_latency_ms']:.2f} | {r['train_seconds']:.0f} |"
        )
    lines += ["", "![accuracy vs latency](pareto.png)", ""]
    with open(os.path.join(config.out, "compare.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("\n".join(lines[2:-2]))
    return rows


def show_batch(config, path, source=None, count=16):
    """Writes a PNG grid of augmented training samples with their (possibly mixed) labels.

    Args:
        config: TrainConfig. Its data, image size, augmentation and seed are used.
        path: str. The PNG to write.
        source: ImageSource. Defaults to loading `config.data`.
        count: int. How many samples. Defaults to 16.
    """
    spec = check_config(config, source)
    source = source if source is not None else data.load_source(config.data)
    splits = data.split_source(source, val_split=config.val_split, test_split=config.test_split,
                               seed=config.seed, labels_per_class=config.labels_per_class)
    task = resolve_task(config, len(source.class_names), multilabel=source.labels.ndim == 2)
    ds = data.make_dataset(splits["train"], image_size=config.image_size or spec.default_size,
                           batch_size=count, num_classes=len(source.class_names), task=task,
                           training=True, augment=config.augment, augment_params=config.augment_params,
                           cache="none", seed=config.seed)
    images, targets = next(iter(ds))
    titles = []
    for row in targets.numpy():
        if task == "binary":
            row = np.array([1 - row[0], row[0]])
        shown = [(source.class_names[i], row[i]) for i in np.argsort(-row) if row[i] > 0.01][:2]
        titles.append(" + ".join(f"{n} {w:.2f}" if w < 0.99 else n for n, w in shown))
    plots.image_grid(images.numpy(), titles, path)
    return path


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


def _is_text_run(run_dir):
    return os.path.isdir(os.path.join(run_dir, "preprocessor"))


def evaluate_run(run_dir):
    """Recomputes the test metrics of a run from its saved model and saved test split."""
    if _is_text_run(run_dir):
        from keras_tl import text_workflow

        return text_workflow.evaluate_text_run(run_dir)
    model, config, class_names = load_run(run_dir)
    test = load_split(run_dir, "test")
    ds = data.make_dataset(
        test, image_size=config.image_size, batch_size=config.batch_size,
        num_classes=len(class_names), task=config.task, cache=False,
    )
    probabilities = model.predict(ds)
    metrics = evaluate_predictions(test.labels, probabilities, class_names, config.task)
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


EXPORT_SUBDIRS = {"saved_model": "", "tflite": "tflite", "keras": "keras"}


def export_run(run_dir, format="saved_model", *, out="exported_models", name=None, quantize="none",
               keep_versions=None, int8_io=False, min_agreement=None, check_limit=64):
    """Exports a run's model, checked against Keras on held-out test images before it is published.

    Args:
        run_dir: str. A finished run directory.
        format: str. "keras", "saved_model" (TF Serving layout) or "tflite".
        out: str. Root of the exports. Defaults to "exported_models".
        name: str. Model name (folder and file names). Defaults to the run directory's name.
        quantize: str. TFLite: "none", "float16", "dynamic" or "int8".
        keep_versions: int. SavedModel: keep only this many newest versions.
        int8_io: bool. int8 TFLite with uint8 input/output.
        min_agreement: float. Refuse the export below this top-1 agreement with Keras.
        check_limit: int. How many test images the check uses.

    Returns:
        An `export.ExportResult` (for TFLite with `evaluation`: test accuracy, macro F1 and
        batch-1 latency); its record is appended to `RUN_DIR/exports.json`.
    """
    if format not in export.FORMATS:
        raise ValueError(f"`format` must be one of {list(export.FORMATS)}. Received: format={format!r}")
    if quantize not in export.QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {list(export.QUANTIZATIONS)}. Received: {quantize!r}")
    if quantize != "none" and format != "tflite":
        raise ValueError(f"Quantization applies to TFLite only. Received: format={format!r}, quantize={quantize!r}")
    if _is_text_run(run_dir):
        from keras_tl import text_workflow

        if int8_io:
            raise ValueError("`int8_io` applies to image models only.")
        return text_workflow.export_text_run(run_dir, format, out=out, name=name, quantize=quantize,
                                             keep_versions=keep_versions, min_agreement=min_agreement,
                                             check_limit=check_limit)
    model, config, class_names = load_run(run_dir)
    name = check_export_name(name or os.path.basename(os.path.normpath(run_dir)))
    test = load_split(run_dir, "test")
    metrics_path = os.path.join(run_dir, "metrics.json")
    metrics = {}
    if os.path.isfile(metrics_path):
        with open(metrics_path, encoding="utf-8") as f:
            metrics = json.load(f)
    info = export.ExportInfo(
        name=name,
        class_names=class_names,
        image_size=config.image_size,
        check_images=images_at_size(test, config, limit=check_limit),
        quantize=quantize,
        representative_images=(images_at_size(load_split(run_dir, "train"), config, limit=200)
                               if quantize == "int8" else None),
        int8_io=int8_io,
        min_agreement=min_agreement,
        keep_versions=keep_versions,
        card={"backbone": config.backbone, "weights": config.weights, "task": config.task,
              "test_metrics": {k: metrics[k] for k in ("test_accuracy", "macro_f1") if k in metrics},
              "config": config.to_dict()},
    )
    destination = os.path.join(out, name, EXPORT_SUBDIRS[format])
    result = export.FORMATS[format](model, destination, info)
    record = {"format": format, "quantize": quantize, "path": result.path, "version": result.version,
              "size_bytes": result.size_bytes, "check": result.check}
    if format == "tflite":
        images = images_at_size(test, config)
        probabilities = export.tflite_predict(result.path, images)
        tflite_metrics = evaluate_predictions(test.labels, probabilities, class_names, config.task)
        result.evaluation = {
            "test_accuracy": tflite_metrics["accuracy"],
            "macro_f1": tflite_metrics["macro_f1"],
            "latency_ms_batch1": export.tflite_latency_ms(result.path, images[0]),
        }
        record.update(result.evaluation)
    records = []
    exports_path = os.path.join(run_dir, "exports.json")
    if os.path.isfile(exports_path):
        with open(exports_path, encoding="utf-8") as f:
            records = json.load(f)
    _write_json(run_dir, "exports.json", records + [record])
    return result


def check_export_name(name):
    """Returns `name` if it is a safe model (folder) name, else raises `ValueError`."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ValueError(f"`name` must be letters, digits, '-', '_' or '.'. Received: name={name!r}")
    return name


def images_at_size(split, config, limit=None):
    """A split's images as the model sees them: uint8 `(N, S, S, 3)`, at most `limit`."""
    if limit is not None:
        split = split.subset(np.arange(min(limit, len(split))))
    ds = data.make_dataset(split, image_size=config.image_size, batch_size=64, num_classes=2,
                           task="binary", cache=False)
    return np.concatenate([x.numpy() for x, _ in ds])


def _imbalance(config, train, class_names):
    """How the run handles class imbalance, for the data report."""
    counts = _class_counts(train, class_names)
    report = {"method": config.class_weight,
              "largest_to_smallest": max(counts.values()) / max(1, min(counts.values()))}
    if config.class_weight == "balanced" and config.task != "multilabel":
        weights = data.class_weights(train.labels, len(class_names))
        report["class_weights"] = {name: weights[i] for i, name in enumerate(class_names)}
    return report


def _class_counts(split, class_names):
    if split.labels.ndim == 2:
        counts = split.labels.sum(axis=0)
    else:
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


def load_split(run_dir, name):
    """The saved "train", "val" or "test" split of a run, as a `data.Split`."""
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
