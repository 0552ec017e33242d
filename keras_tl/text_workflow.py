"""The whole text run in order: check config -> data -> encoder -> fine-tune -> evaluate -> save.

`keras_tl.workflow.train` hands a run here when its modality is text; the order and the run
directory are the image run's, with the texts' own pieces: `splits.json` holds the texts, and
`preprocessor/` holds the preset's tokenizer and preprocessor (KerasHub `save_to_preset`), which
`load_text_run` and the exports put back in front of `model.keras`.
"""

import json
import os
import time

import keras
import numpy as np

from keras_tl import data, distribute, features, plots, text_backbones, text_data, text_export
from keras_tl.config import TrainConfig
from keras_tl.model import is_pretrained
from keras_tl.text_model import build_text_model
from keras_tl.training import fine_tune

MODEL_FILE = "model.keras"
PREPROCESSOR_DIR = "preprocessor"


def check_text_config(config, source=None):
    """Validates a text run before any work; returns the encoder's spec."""
    config.validate()
    distribute.check(config.distribute)
    if config.augment != "none" or config.augmented_views:
        raise ValueError(f"Augmentation applies to images only. Received: augment={config.augment!r}, "
                         f"augmented_views={config.augmented_views} for a text run.")
    if config.weights not in ("imagenet", "preset", "none"):
        raise ValueError("`weights` for a text encoder must be 'preset' (its pretrained weights) or "
                         f"'none' (random initialization). Received: weights={config.weights!r}")
    spec = text_backbones.get(config.backbone)
    if spec.asset:
        text_backbones.preset_path(spec)  # Fails now, with the install command, if the package is missing.
    if source is None:
        if config.data is None:
            raise ValueError("No data: set `data` to a .csv/.jsonl file, a folder of class folders of "
                             ".txt files or tfds:NAME, or pass a source.")
        text_data.check_data_path(config.data)
    return spec


def resolved_text_config(config, task):
    """The config with every "auto" made concrete for a text run (what config.yaml records)."""
    return TrainConfig.from_dict({
        **config.to_dict(),
        "modality": "text",
        "task": task,
        "weights": "preset" if config.weights == "imagenet" else config.weights,
        "optimizer": "adamw" if config.optimizer == "auto" else config.optimizer,
        "schedule": "linear" if config.schedule == "auto" else config.schedule,
        "image_size": None,
    })


def train_text(config, source=None):
    """Runs a text training job and writes its run directory (see `keras_tl.workflow.train`).

    Example:
    >>> config = keras_tl.TrainConfig(backbone="minilm_l6", data="reviews.csv", head_epochs=3,
    ...                               epochs=2, unfreeze="blocks:2", fine_tune_lr=3e-5)
    >>> result = keras_tl.train(config)
    """
    from keras_tl import workflow  # The shared run-directory helpers; workflow imports this module lazily.

    started = time.perf_counter()
    spec = check_text_config(config, source)
    if source is None:
        source = text_data.load_text_source(config.data, text_column=config.text_column,
                                            label_column=config.label_column)
    splits = data.split_source(source, val_split=config.val_split, test_split=config.test_split,
                               seed=config.seed, labels_per_class=config.labels_per_class)
    task = workflow.resolve_task(config, len(source.class_names), multilabel=source.labels.ndim == 2)
    resolved = resolved_text_config(config, task)
    run_dir = workflow.start_run(resolved, source, splits, save_splits=_save_splits, unit="texts")
    return workflow.finish_run(resolved, spec, source, splits, run_dir, _fit_and_evaluate, started)


def _save_splits(run_dir, splits):
    from keras_tl import workflow

    workflow._write_json(run_dir, "splits.json", {
        s: {"texts": list(splits[s].images), "labels": splits[s].labels.tolist()} for s in splits})


def _fit_and_evaluate(config, spec, splits, class_names, run_dir):
    from keras_tl import workflow

    started = time.perf_counter()
    os.makedirs(run_dir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    num_classes = len(class_names)
    with workflow._precision(config.mixed_precision), distribute.scope(config.distribute):
        model, preprocessor = build_text_model(
            spec, num_classes=num_classes, weights=config.weights, sequence_length=config.sequence_length,
            task=config.task, pooling=config.pooling, dense_units=config.dense_units, dropout=config.dropout)
    pipeline = dict(batch_size=config.batch_size, num_classes=num_classes, task=config.task)

    def train_dataset():
        return text_data.make_text_dataset(splits["train"], preprocessor, training=True, seed=config.seed,
                                           oversample=config.class_weight == "oversample", **pipeline)

    val_ds = text_data.make_text_dataset(splits["val"], preprocessor, **pipeline)
    test_ds = text_data.make_text_dataset(splits["test"], preprocessor, **pipeline)
    class_weight = None
    if config.class_weight == "balanced" and config.task != "multilabel":
        class_weight = data.class_weights(splits["train"].labels, num_classes)
    cached = _cached_phase(model, config, splits, preprocessor, val_ds, pipeline)
    timings = {}
    with distribute.scope(config.distribute):
        histories = fine_tune(
            model, train_dataset(), val_ds, config,
            steps_per_epoch=data.steps_per_epoch(splits["train"], config.batch_size),
            run_dir=run_dir, class_weight=class_weight, cached=cached, timings=timings,
            train_phase2=train_dataset() if config.strategy == "two_phase" else None, spec=spec,
        )
    workflow._write_json(run_dir, "history.json", histories)
    model.save(os.path.join(run_dir, MODEL_FILE))
    preprocessor.save_to_preset(os.path.join(run_dir, PREPROCESSOR_DIR))
    print("[keras-tl] evaluating on the test split")
    probabilities = model.predict(test_ds)
    evaluation = workflow.evaluate_predictions(splits["test"].labels, probabilities, class_names, config.task)
    metrics = {
        "test_accuracy": evaluation["accuracy"],
        "macro_f1": evaluation["macro_f1"],
        "train_seconds": round(time.perf_counter() - started, 1),
        "train_examples": len(splits["train"]),
        "phase_seconds": {k: round(v, 2) for k, v in timings.items()},
        **evaluation,
    }
    metrics["plots"] = _plot_run(run_dir, histories, metrics, splits["test"], probabilities, class_names, config)
    workflow._write_json(run_dir, "metrics.json", metrics)
    return model, histories, metrics


def _cached_phase(model, config, splits, preprocessor, val_ds, pipeline):
    """The frozen phase on cached pooled encoder features (text has no augmentation to vary them)."""
    if not (config.feature_cache and config.strategy != "full" and config.head_epochs > 0
            and is_pretrained(config.weights)):
        return None
    started = time.perf_counter()
    extractor, head = features.split_model(model)
    plain = text_data.make_text_dataset(splits["train"], preprocessor, cache=False, **pipeline)
    print("[keras-tl] computing training-set features once")
    x = np.asarray(extractor.predict(plain.map(lambda t, y: t)), np.float32)
    print("[keras-tl] computing validation-set features once")
    val_x = np.asarray(extractor.predict(val_ds.map(lambda t, y: t)), np.float32)
    y = data.encode_labels(splits["train"].labels, pipeline["num_classes"], config.task)
    val_y = data.encode_labels(splits["val"].labels, pipeline["num_classes"], config.task)
    train_features = data.feature_dataset(x, y, splits["train"].labels, batch_size=config.batch_size,
                                          training=True, oversample=config.class_weight == "oversample",
                                          seed=config.seed)
    val_features = data.feature_dataset(val_x, val_y, splits["val"].labels, batch_size=config.batch_size)
    seconds = time.perf_counter() - started
    print(f"[keras-tl] features cached in {seconds:.1f} s: {x.shape[0]:,} x {x.shape[1]:,} training, "
          f"{val_x.shape[0]:,} validation")
    return features.CachedPhase(head, train_features, val_features,
                                steps_per_epoch=data.steps_per_epoch(splits["train"], config.batch_size),
                                seconds=seconds)


def _plot_run(run_dir, histories, metrics, test, probabilities, class_names, config):
    files = {"Learning curves": "learning_curves.png", "Per-class F1": "per_class_f1.png"}
    plots.learning_curves(histories, os.path.join(run_dir, files["Learning curves"]))
    plots.per_class_f1(metrics["per_class"], os.path.join(run_dir, files["Per-class F1"]))
    if config.task != "multilabel":
        files["Confusion matrix"] = "confusion_matrix.png"
        plots.confusion_matrix(metrics["confusion_matrix"], class_names,
                               os.path.join(run_dir, files["Confusion matrix"]))
        probabilities = np.asarray(probabilities, np.float32)
        if probabilities.shape[-1] == 1:
            probabilities = np.concatenate([1 - probabilities, probabilities], axis=-1)
        wrong = np.flatnonzero(probabilities.argmax(-1) != test.labels)
        worst = wrong[np.argsort(-probabilities[wrong].max(-1))][:20]
        lines = ["# Most confidently wrong test texts", "", "| text | true | predicted | probability |",
                 "|---|---|---|---|"]
        for i in worst:
            text = test.images[i].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {text[:200]} | {class_names[test.labels[i]]} | "
                         f"{class_names[probabilities[i].argmax()]} | {probabilities[i].max():.3f} |")
        with open(os.path.join(run_dir, "confident_errors.md"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return files


def load_text_run(run_dir):
    """Loads a finished text run: `(model, preprocessor, config, class_names)`."""
    model_path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.isfile(model_path):
        raise ValueError(f"{run_dir!r} is not a finished keras-tl run directory: {MODEL_FILE} is missing.")
    config = TrainConfig.from_yaml(os.path.join(run_dir, "config.yaml"))
    with open(os.path.join(run_dir, "classes.json"), encoding="utf-8") as f:
        class_names = json.load(f)
    preprocessor = text_backbones.load_saved_preprocessor(os.path.join(run_dir, PREPROCESSOR_DIR))
    return keras.saving.load_model(model_path), preprocessor, config, class_names


def load_text_split(run_dir, name):
    """The saved "train", "val" or "test" split of a text run (`Split.images` holds the texts)."""
    with open(os.path.join(run_dir, "splits.json"), encoding="utf-8") as f:
        entry = json.load(f)[name]
    return data.Split(entry["texts"], np.asarray(entry["labels"], dtype=np.int64))


def predict_texts(run_dir, texts, top_k=3):
    """Top-k `(label, probability)` lists for raw texts, using a run's saved model."""
    model, preprocessor, config, class_names = load_text_run(run_dir)
    probabilities = model.predict(preprocessor(list(texts)), verbose=0)
    probabilities = np.asarray(probabilities, np.float32)
    if probabilities.shape[-1] == 1:
        probabilities = np.concatenate([1 - probabilities, probabilities], axis=-1)
    k = min(top_k, len(class_names))
    return [[(class_names[i], float(row[i])) for i in np.argsort(-row)[:k]] for row in probabilities]


def evaluate_text_run(run_dir):
    """Recomputes the test metrics of a text run from its saved model and saved test split."""
    from keras_tl import workflow

    model, preprocessor, config, class_names = load_text_run(run_dir)
    test = load_text_split(run_dir, "test")
    ds = text_data.make_text_dataset(test, preprocessor, batch_size=config.batch_size,
                                     num_classes=len(class_names), task=config.task)
    metrics = workflow.evaluate_predictions(test.labels, model.predict(ds), class_names, config.task)
    metrics = {"test_accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], **metrics}
    workflow._write_json(run_dir, "metrics_evaluate.json", metrics)
    return metrics


def export_text_run(run_dir, format="saved_model", *, out="exported_models", name=None, quantize="none",
                    keep_versions=None, min_agreement=None, check_limit=64):
    """Exports a text run, checked against the Keras model on held-out test texts before publishing.

    "saved_model": TF Serving layout, `serving_default` takes raw strings (tokenizer in the graph).
    "tflite": the model on token ids (`quantize` "none" or "dynamic"), with the vocabulary beside
    it; tokenization happens in the app (the tokenizer's tf.text ops have no TFLite kernels).
    "keras": `<name>.keras` plus the preprocessor preset.
    """
    from keras_tl import workflow

    model, preprocessor, config, class_names = load_text_run(run_dir)
    name = workflow.check_export_name(name or os.path.basename(os.path.normpath(run_dir)))
    test = load_text_split(run_dir, "test")
    metrics = {}
    if os.path.isfile(os.path.join(run_dir, "metrics.json")):
        with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
            metrics = json.load(f)
    info = text_export.TextExportInfo(
        name=name, class_names=class_names, sequence_length=config.sequence_length,
        check_texts=list(test.images[:check_limit]), quantize=quantize, min_agreement=min_agreement,
        keep_versions=keep_versions,
        card={"backbone": config.backbone, "weights": config.weights, "task": config.task,
              "test_metrics": {k: metrics[k] for k in ("test_accuracy", "macro_f1") if k in metrics},
              "config": config.to_dict()},
    )
    destination = os.path.join(out, name, workflow.EXPORT_SUBDIRS[format])
    result = text_export.FORMATS[format](model, preprocessor, destination, info)
    record = {"format": format, "quantize": quantize, "path": result.path, "version": result.version,
              "size_bytes": result.size_bytes, "check": result.check}
    if format == "tflite":
        tokens = preprocessor(list(test.images))
        probabilities = text_export.tflite_predict_tokens(result.path, tokens)
        evaluation = workflow.evaluate_predictions(test.labels, probabilities, class_names, config.task)
        result.evaluation = {"test_accuracy": evaluation["accuracy"], "macro_f1": evaluation["macro_f1"]}
        record.update(result.evaluation)
    records = []
    exports_path = os.path.join(run_dir, "exports.json")
    if os.path.isfile(exports_path):
        with open(exports_path, encoding="utf-8") as f:
            records = json.load(f)
    workflow._write_json(run_dir, "exports.json", records + [record])
    return result
