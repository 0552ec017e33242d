"""What happens to a finished run, for every modality: evaluate, predict, export, reuse its backbone."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.data import multitask_labels
from keras_tl.core.evaluation.evaluate import evaluate_predictions
from keras_tl.core.export import formats as export
from keras_tl.core.export import litert
from keras_tl.core.models.classifier import decide
from keras_tl.core.models.heads import get_backbone
from keras_tl.core.utils import quiet
from keras_tl.workflow import rundir as run
from keras_tl.workflow.checks import check_export, check_export_name, check_top_k

if TYPE_CHECKING:
    import keras

    from keras_tl.core.export.formats import ExportResult
    from keras_tl.core.models.classifier import Classifier


@quiet.tensorflow_started
def load_run(run_dir: str) -> Classifier:
    """Loads a finished run directory as a `Classifier` (model, modality, preprocessor, class names, config).

    Example:
    >>> classifier = keras_tl.load_run("runs/photos")
    >>> classifier.predict(["cat.jpg"])
    """
    return run.load_classifier(run_dir)


@quiet.tensorflow_started
def evaluate_run(run_dir: str) -> dict:
    """Recomputes the test metrics of a run from its saved model and saved test split."""
    classifier = run.load_classifier(run_dir)
    test = run.load_split(run_dir, "test")
    probabilities = classifier.modality.predict_split(classifier, test, classifier.config)
    metrics = evaluate_predictions(
        test.labels, probabilities, classifier.class_names, classifier.problem, classifier.head_kinds
    )
    if classifier.operating_point:  # The run's decision rule, measured again beside the top class's figures.
        from keras_tl.core.evaluation import operating_point

        point = classifier.operating_point
        metrics["operating_point"] = {
            **point,
            "test": operating_point.measure(point, test.labels, probabilities, classifier.class_names),
        }
    run.write_json(run_dir, "metrics_evaluate.json", metrics)
    return metrics


@quiet.tensorflow_started
def predict(run_dir: str, items: Sequence[Any], top_k: int = 3) -> list:
    """Top-k `(label, probability)` lists for raw items (image files, texts), using a run's saved model;
    for a multi-task run, a dict `{head: top-k list within the head}` per item.

    Example:
    >>> keras_tl.predict("runs/photos", ["cat.jpg"])
    [[('cat', 0.93), ('dog', 0.05), ('bird', 0.02)]]
    """
    return [top for top, _ in labelled_predictions(run_dir, items, top_k)]


@quiet.tensorflow_started
def labelled_predictions(run_dir: str, items: Sequence[Any], top_k: int = 3) -> list:
    """`(top-k, label)` per item: `predict`'s top-k list and the class the run decides on, at its
    operating point where it has one (a binary run trained with `target_recall` / `target_precision`),
    else the most probable class (None for a multi-task run: each head's top-k says it)."""
    check_top_k(top_k)
    classifier = run.load_classifier(run_dir)
    items = classifier.modality.read_items(items)
    probabilities = classifier.predict(items)
    if classifier.problem == "multitask":  # {head: top-k within the head} per item.
        return [
            (
                {
                    head: _top(row[start:stop], classes, top_k)
                    for head, classes, start, stop in multitask_labels.heads_of(classifier.class_names)
                },
                None,
            )
            for row in probabilities
        ]
    if classifier.problem == "multilabel":
        return [(_top(row, classifier.class_names, top_k), None) for row in probabilities]
    decided = decide(classifier.operating_point, probabilities, classifier.class_names)
    return [
        (_top(row, classifier.class_names, top_k), classifier.class_names[i]) for row, i in zip(probabilities, decided)
    ]


def _top(row, class_names, top_k):
    return [(class_names[i], float(row[i])) for i in np.argsort(-row)[: min(top_k, len(class_names))]]


@quiet.tensorflow_started
def export_run(
    run_dir: str,
    format: str = "saved_model",
    *,
    out: str = "exported_models",
    name: str | None = None,
    quantize: str = "none",
    keep_versions: int | None = None,
    int8_io: bool = False,
    min_agreement: float | None = None,
    check_limit: int = 64,
) -> ExportResult:
    """Exports a run's classifier, checked against Keras on held-out test examples before it is published.

    Args:
        run_dir: str. A finished run directory (images or text).
        format: str. "keras", "saved_model" (TF Serving layout), "tflite" or "onnx" (checked with
            ONNX Runtime; `pip install "keras-tl[onnx]"`).
        out: str. Root of the exports. Defaults to "exported_models".
        name: str. Model name (folder and file names). Defaults to the run directory's name.
        quantize: str. TFLite: "none", "float16", "dynamic" or "int8" (images).
        keep_versions: int. SavedModel: keep only this many newest versions.
        int8_io: bool. int8 TFLite with uint8 input/output (needs quantize="int8").
        min_agreement: float. Refuse the export below this top-1 agreement with Keras.
        check_limit: int. How many test examples the check uses.

    Returns:
        An `ExportResult` (for TFLite with `evaluation`: test accuracy, macro F1 and batch-1
        latency); its record is appended to `RUN_DIR/exports.json`.
    """
    check_export(format, quantize, int8_io, keep_versions)
    name = check_export_name(name or os.path.basename(os.path.normpath(run_dir)))
    classifier = run.load_classifier(run_dir)
    if format == "tflite" and quantize not in classifier.modality.tflite_quantizations:
        raise ConfigError(
            f"TFLite export of a {classifier.modality.name} model supports quantize in "
            f"{list(classifier.modality.tflite_quantizations)}. Received: quantize={quantize!r}"
        )
    test = run.load_split(run_dir, "test")
    metrics = run.read_json(run_dir, "metrics.json", {})
    config = classifier.config
    info = export.ExportInfo(
        name=name,
        class_names=classifier.class_names,
        check_items=_first(test, check_limit).items,
        quantize=quantize,
        calibration_items=_first(run.load_split(run_dir, "train"), 200).items if quantize == "int8" else None,
        int8_io=int8_io,
        min_agreement=min_agreement,
        keep_versions=keep_versions,
        card={
            "backbone": config.backbone,
            "weights": config.weights,
            "problem": config.problem,
            "modality": classifier.modality.name,
            "data_licence": metrics.get("data_licence", ""),
            "test_metrics": {k: metrics[k] for k in ("test_accuracy", "macro_f1") if k in metrics},
            "config": config.to_dict(),
            **({"operating_point": classifier.operating_point} if classifier.operating_point else {}),
        },
    )
    destination = os.path.join(out, name, export.SUBDIRS[format])
    result = export.FORMATS[format](classifier, destination, info)
    record = {
        "format": format,
        "quantize": quantize,
        "path": result.path,
        "version": result.version,
        "size_bytes": result.size_bytes,
        "check": result.check,
        "input": classifier.modality.card(classifier).get("input", {}),  # What the artifact takes.
        "labels": classifier.class_names,
        **({"operating_point": classifier.operating_point} if classifier.operating_point else {}),
    }
    if format in ("tflite", "onnx"):  # What a device runtime gives on the whole test split.
        from keras_tl.core.export import onnx

        predict_with, latency_of = {
            "tflite": (litert.tflite_predict, litert.tflite_latency_ms),
            "onnx": (onnx.onnx_predict, onnx.latency_ms),
        }[format]
        probabilities = classifier.predict(test.items, runner=lambda inputs: predict_with(result.path, inputs))
        evaluation = evaluate_predictions(
            test.labels, probabilities, classifier.class_names, classifier.problem, classifier.head_kinds
        )
        latency = latency_of(result.path, classifier.inputs(test.subset([0]).items))
        result.evaluation = {
            "test_accuracy": evaluation["test_accuracy"],
            "macro_f1": evaluation["macro_f1"],
            "latency_ms_batch1": latency,
        }
        record.update(result.evaluation)
    run.append_export_record(run_dir, record)
    return result


def artifact_latency_ms(format, path, classifier, items):
    """Median batch-1 latency of an exported artifact in its own runtime (LiteRT, ONNX Runtime, TensorFlow's
    SavedModel loader) on the first of `items`, in milliseconds."""
    if format == "saved_model":
        return export.saved_model_latency_ms(path, classifier, items[:1])
    from keras_tl.core.export import onnx

    latency_of = {"tflite": litert.tflite_latency_ms, "onnx": onnx.latency_ms}[format]
    return latency_of(path, classifier.inputs(items[:1]))


def _first(split, count):
    return split.subset(np.arange(min(count, len(split))))


def save_backbone_weights(model: keras.Model, path: str) -> str:
    """Saves the backbone's weights (to reuse as `weights=path` in another run).

    Args:
        model: keras.Model. From `build_model` or `train(...).model`.
        path: str. Must end in `.weights.h5`.
    """
    if not path.endswith(".weights.h5"):
        raise ConfigError(f"The weights path must end in '.weights.h5'. Received: {path!r}")
    get_backbone(model).save_weights(path)
    return path
