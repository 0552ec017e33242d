"""Export a classifier: `.keras`, SavedModel for TensorFlow Serving, TFLite (LiteRT) — any modality.

A closed dict of formats, one function per format, one contract: `(classifier, destination, info)`.
Each writes into a temporary path beside its destination, checks the written artifact against
the Keras model on held-out examples, and only then moves it into place with an atomic rename —
TF Serving never sees a half-written or unchecked version. What differs per modality (serving
signatures, the TFLite input, calibration data, files an app needs) comes from the classifier's
modality object.

Layout under `out` (default `exported_models/`):

    <name>/<version>/            SavedModel (TF Serving watches <name>/; integer versions)
        saved_model.pb, variables/, labels.txt, model_card.json
    <name>/tflite/<name>_<quantize>.tflite, labels.txt   (TF Serving ignores non-integer dirs)
    <name>/keras/<name>.keras, labels.txt (+ preprocessor/ where the modality has one)
"""

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from keras_tl.core.contract.errors import ConfigError, ExportCheckError, TFLiteConversionError
from keras_tl.core.data import multitask_labels
from keras_tl.core.export import litert, publish, tflite_metadata
from keras_tl.core.models import multitask
from keras_tl.core.models.classifier import Classifier
from keras_tl.core.models.heads import per_class_model, probabilities_of
from keras_tl.core.utils import quiet

DEFAULT_MIN_AGREEMENT = {"none": 0.98, "float16": 0.95, "dynamic": 0.9, "int8": 0.85}
SUBDIRS = {"saved_model": "", "tflite": "tflite", "keras": "keras", "onnx": "onnx"}


@dataclass(frozen=True)
class ExportInfo:
    """What every exporter needs besides the classifier.

    Args:
        name: str. The model's name: file names and the card use it.
        class_names: list of str.
        check_items: held-out raw examples to verify the export on: uint8 images `(N, S, S, 3)`
            at the model's size, or a list of texts.
        quantize: str. TFLite only: one of `keras_tl.core.contract.choices.QUANTIZATIONS`.
        calibration_items: raw training examples for int8 calibration.
        int8_io: bool. int8 TFLite with uint8 input and output tensors instead of float32.
        min_agreement: float. Top-1 agreement with Keras below which the export is refused;
            None picks by quantization (`DEFAULT_MIN_AGREEMENT`).
        keep_versions: int. SavedModel only: how many versions to keep (None keeps all).
        card: dict. Extra model-card fields (backbone, test metrics, config).
    """

    name: str
    class_names: list
    check_items: object
    quantize: str = "none"
    calibration_items: object = None
    int8_io: bool = False
    min_agreement: float | None = None
    keep_versions: int | None = None
    card: dict = field(default_factory=dict)


@dataclass
class ExportResult:
    format: str
    path: str
    version: int | None
    size_bytes: int
    check: dict
    evaluation: dict = field(default_factory=dict)  # TFLite: test accuracy, macro F1, batch-1 ms.


def compare(reference, candidate, *, min_agreement, what, classifier=None):
    """Top-1 agreement and max abs difference; raises `ExportCheckError` below `min_agreement`.

    For a multi-task `classifier` the agreement is that of its worst head (top-1 within each head)."""
    reference, candidate = probabilities_of(reference), probabilities_of(candidate)
    blocks = [(0, reference.shape[-1])]
    if classifier is not None and classifier.problem == "multitask":
        blocks = [(start, stop) for _, start, stop in multitask.blocks_of(classifier.model)]
    agreement = min(float(np.mean(reference[:, a:b].argmax(-1) == candidate[:, a:b].argmax(-1))) for a, b in blocks)
    max_abs = float(np.max(np.abs(reference - candidate)))
    check = {"top1_agreement": agreement, "max_abs_diff": max_abs, "n": int(len(reference))}
    if agreement < min_agreement:
        raise ExportCheckError(
            f"{what} agrees with the Keras model on {agreement:.1%} of {len(reference)} held-out "
            f"examples (needed {min_agreement:.0%}; max abs difference {max_abs:.4f}). Not published."
        )
    return check


def _min_agreement(info):
    return info.min_agreement if info.min_agreement is not None else DEFAULT_MIN_AGREEMENT[info.quantize]


def export_keras(classifier, destination, info):
    """Writes `<destination>/<name>.keras` (+ the host preprocessor, labels.txt), checked by reloading."""
    with publish.staged(destination) as tmp:
        classifier.model.save(os.path.join(tmp, f"{info.name}.keras"))
        classifier.modality.save_preprocessor(classifier, os.path.join(tmp, "preprocessor"))
        reloaded = Classifier(
            keras.saving.load_model(os.path.join(tmp, f"{info.name}.keras")),
            classifier.modality,
            classifier.spec,
            classifier.modality.load_preprocessor(os.path.join(tmp, "preprocessor")),
        )
        check = compare(
            classifier.predict(info.check_items),
            reloaded.predict(info.check_items),
            min_agreement=1.0,
            what="The reloaded .keras model",
            classifier=classifier,
        )
        publish.write_labels(tmp, info.class_names)
    final = os.path.join(destination, f"{info.name}.keras")
    return ExportResult("keras", final, None, os.path.getsize(final), check)


def export_saved_model(classifier, destination, info):
    """Writes the next integer version `<destination>/<version>/` for TF Serving.

    The signatures are the modality's (images: encoded bytes and float images; text: raw
    strings), each returning `probabilities`, `top_classes` and `labels`. labels.txt and
    model_card.json sit beside saved_model.pb.
    """
    os.makedirs(destination, exist_ok=True)
    publish.remove_stale(destination)
    version = publish.next_version(destination)
    tmp = publish.temporary(destination)
    try:
        archive = keras.export.ExportArchive()
        # Not `archive.track(classifier.model)`: on TensorFlow, Keras 3 (3.15) then stores every weight
        # twice, once per Keras variable and once per tf.Variable the endpoints capture
        # (keras-team/keras#23553), and TF Serving loads both. The endpoints' captures are all a
        # server needs; `weights_stored_once` records the sizes (tests hold them).
        if classifier.preprocessor is not None:
            archive.track(classifier.preprocessor)  # Its lookup tables become SavedModel resources.
        endpoints = classifier.modality.serving_endpoints(classifier, info)
        for name, (function, _) in endpoints.items():
            archive.add_endpoint(name, function)
        archive.write_out(tmp, verbose=False)
        publish.write_labels(tmp, info.class_names)
        card = {
            **info.card,
            **classifier.modality.card(classifier),
            "name": info.name,
            "classes": info.class_names,
            "version": version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "signatures": {name: about for name, (_, about) in endpoints.items()},
        }
        with open(os.path.join(tmp, "model_card.json"), "w", encoding="utf-8") as f:
            json.dump(card, f, indent=2)
        check = check_saved_model(tmp, classifier, info)
        stored, weights = weights_stored_once(tmp, classifier.model)
        check["storage"] = {"variables_bytes": stored, "parameter_bytes": weights}
        publish.readable(tmp)
        final = os.path.join(destination, str(version))
        os.rename(tmp, final)  # Atomic on one filesystem; fails if the version exists.
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    check["pruned_versions"] = publish.prune_versions(destination, info.keep_versions)
    return ExportResult("saved_model", final, version, publish.dir_size(final), check)


def weights_stored_once(path, model):
    """`(bytes of variables/, bytes of the model's weights)`, recorded with the export's check: the first
    is about the second (each weight stored once; keras-team/keras#23553 stored them twice)."""
    stored = publish.dir_size(os.path.join(path, "variables"))
    weights = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    return stored, weights


def check_saved_model(path, classifier, info):
    """Calls every signature of a written SavedModel on the check examples and compares it with Keras."""
    loaded = tf.saved_model.load(path)
    checks = {}
    for name, (arguments, reference) in classifier.modality.endpoint_checks(classifier, info).items():
        served = loaded.signatures[name](**arguments)
        checks[name] = compare(
            reference,
            served["probabilities"].numpy(),
            min_agreement=_min_agreement(info),
            what=f"The SavedModel's {name} signature",
            classifier=classifier,
        )
    return checks


def saved_model_latency_ms(path, classifier, items, repeats=30):
    """Median batch-1 time of a written SavedModel's first signature (what TF Serving runs) on the first
    of `items`, in milliseconds."""
    info = ExportInfo(name="latency", class_names=classifier.class_names, check_items=items)
    name, (arguments, _) = next(iter(classifier.modality.endpoint_checks(classifier, info).items()))
    signature = tf.saved_model.load(path).signatures[name]
    signature(**arguments)  # Warm up.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        signature(**arguments)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def tflite_converter_options(quantize, calibration=None, int8_io=False):
    """`Model.export(format="litert")` converter settings for a quantization mode.

    Args:
        quantize: str. "none", "float16", "dynamic" or "int8".
        calibration: list of `[input]` lists. int8 calibration inputs (from the training split).
        int8_io: bool. int8 with uint8 input and output tensors.
    """
    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "none":
        return {"target_spec": {"supported_ops": builtins}}
    options = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantize == "float16":
        options["target_spec"] = {"supported_ops": builtins, "supported_types": [tf.float16]}
    elif quantize == "dynamic":
        options["target_spec"] = {"supported_ops": builtins}
    else:
        if calibration is None or not len(calibration):
            raise ConfigError("int8 quantization needs representative examples from the training split.")

        def representative():
            yield from calibration

        options["representative_dataset"] = representative
        options["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}
        if int8_io:
            options["inference_input_type"] = tf.uint8
            options["inference_output_type"] = tf.uint8
    return options


def tflite_file_name(info):
    return f"{info.name}_{info.quantize}{'_uint8io' if info.int8_io else ''}.tflite"


def export_tflite(classifier, destination, info):
    """Writes `<destination>/<name>_<quantize>.tflite` (+ labels.txt and the modality's assets),
    checked with the LiteRT interpreter."""
    allowed = classifier.modality.tflite_quantizations
    if info.quantize not in allowed:
        raise ConfigError(
            f"TFLite export of a {classifier.modality.name} model supports quantize in {list(allowed)}. "
            f"Received: quantize={info.quantize!r}"
        )
    if info.int8_io and info.quantize != "int8":
        raise ConfigError(f"`int8_io` needs quantize='int8'. Received: quantize={info.quantize!r}")
    os.makedirs(destination, exist_ok=True)
    publish.remove_stale(destination)
    final = os.path.join(destination, tflite_file_name(info))
    tmp = publish.temporary(destination, ".tflite")
    calibration = (
        classifier.modality.tflite_calibration(classifier, info.calibration_items) if info.quantize == "int8" else None
    )
    try:
        try:
            with quiet.quietly():  # The converter's native lines (`fully_quantize: 0, ...`).
                per_class_model(classifier.model).export(
                    tmp,
                    format="litert",
                    verbose=False,
                    input_signature=[classifier.modality.tflite_signature(classifier)],
                    **tflite_converter_options(info.quantize, calibration, info.int8_io),
                )
        except Exception as error:  # The converter raises its own ConverterError (and others).
            ops = unsupported_ops(str(error))
            if not ops:
                raise
            raise TFLiteConversionError(
                f"The TFLite converter could not convert this model: unsupported op(s) {ops}. Serve it "
                "as a SavedModel (format='saved_model'), which runs every TensorFlow op."
            ) from error
        write_tflite_metadata(tmp, classifier, info)
        check = compare(
            classifier.predict(info.check_items),
            classifier.predict(info.check_items, runner=lambda x: litert.tflite_predict(tmp, x)),
            min_agreement=_min_agreement(info),
            what=f"The {info.quantize} TFLite model",
            classifier=classifier,
        )
        publish.readable(tmp)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    publish.write_labels(destination, info.class_names)
    classifier.modality.write_export_assets(classifier, destination)
    return ExportResult("tflite", final, None, os.path.getsize(final), check)


def write_tflite_metadata(path, classifier, info):
    """Adds the metadata MediaPipe Tasks reads (inputs from the modality, labels.txt on the output,
    name, description, version, licences) to the TFLite file at `path`, in place."""
    from keras_tl.core.utils.version import __version__

    with open(path, "rb") as f:
        model = f.read()
    inputs = litert.load(path).get_input_details()
    card, spec = info.card, classifier.spec
    weights = card.get("weights") or ""
    if weights in ("none", ""):
        start = "trained from random weights" if weights == "none" else "trained"
    else:
        origin = (
            f"local weights ({os.path.basename(os.path.normpath(weights))})"
            if os.path.exists(weights)
            else f"{weights} weights"
        )
        start = f"fine-tuned from {origin}"
    licences = (
        [f"weights ({spec.name}): {spec.licence}"] if spec is not None and spec.licence and weights != "none" else []
    )
    if card.get("data_licence"):
        licences.append(f"training data: {card['data_licence']}")
    classes = ", ".join(info.class_names[:10]) + (", ..." if len(info.class_names) > 10 else "")
    about = tflite_metadata.About(
        name=info.name,
        description=(
            f"{classifier.modality.name.capitalize()} classifier, {len(info.class_names)} classes ({classes}); "
            f"backbone {card.get('backbone') or (spec.name if spec else 'unknown')}, {start} with keras-tl; "
            f"TFLite {info.quantize}."
            + (f" Decision: {classifier.operating_point['rule']}." if classifier.operating_point else "")
        ),
        version=f"keras-tl {__version__}",
        licence="; ".join(licences),
    )
    described = classifier.modality.tflite_input_metadata(classifier, inputs, info)
    if classifier.problem == "multitask":  # One output per head, each with its labels, in the file's output order.
        heads = {start: (head, classes) for head, classes, start, _ in multitask_labels.heads_of(info.class_names)}
        by_index = dict(zip((d["index"] for d in litert.output_details(litert.load(path))), sorted(heads)))
        stored = tflite_metadata.output_order(model)
        outputs, files = [], {}
        for index in stored:
            head, classes = heads[by_index[index]]
            outputs.append(
                tflite_metadata.scores_output(
                    classes,
                    name=head,
                    labels_file=f"labels_{head}.txt",
                    multilabel=classifier.head_kinds[head] == "multilabel",
                )
            )
            files[f"labels_{head}.txt"] = "".join(f"{c}\n" for c in classes).encode("utf-8")
    else:
        outputs = [tflite_metadata.scores_output(info.class_names, multilabel=classifier.problem == "multilabel")]
        files = {tflite_metadata.LABELS_FILE: "".join(f"{name}\n" for name in info.class_names).encode("utf-8")}
    blob = tflite_metadata.metadata_buffer(about, inputs=described, outputs=outputs)
    with open(path, "wb") as f:
        f.write(tflite_metadata.populate(model, blob, {**described.files, **files}))


def unsupported_ops(message):
    """The TensorFlow op names (`tf.OpName`) a TFLite converter error message lists, sorted."""
    return sorted({f"tf.{op}" for op in re.findall(r"\btf\.([A-Z]\w+)", message)} - {"tf.TFText"})


def keras_latency_ms(model, inputs, repeats=30):
    """Median batch-1 `predict_on_batch` time of a Keras model on the first example, in milliseconds."""
    if isinstance(inputs, dict):
        x = {k: np.asarray(v)[:1] for k, v in inputs.items()}
    else:
        x = np.asarray(inputs[:1], dtype=np.float32)
    model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def export_onnx(classifier, destination, info):
    """Writes `<destination>/<name>.onnx` (+ labels.txt, model_card.json, the host preprocessor),
    checked with ONNX Runtime against Keras on held-out examples before it is published.

    The ONNX graph takes what the Keras model takes (`Modality.model_inputs`: images at the model's
    size, token ids from the run's tokenizer, audio windows); the card says so, input by input.
    """
    from keras_tl.core.export import onnx

    with publish.staged(destination) as tmp:
        path = os.path.join(tmp, f"{info.name}.onnx")
        with quiet.quietly():  # tf2onnx's converter lines.
            onnx.convert(per_class_model(classifier.model), path)
        # Checked as an app runs it: the tokenizer shipped beside the file (reloaded) makes the inputs.
        classifier.modality.save_preprocessor(classifier, os.path.join(tmp, "preprocessor"))
        shipped = Classifier(
            classifier.model,
            classifier.modality,
            classifier.spec,
            classifier.modality.load_preprocessor(os.path.join(tmp, "preprocessor")),
            classifier.class_names,
        )
        check = compare(
            classifier.predict(info.check_items),
            shipped.predict(info.check_items, runner=lambda x: onnx.onnx_predict(path, x)),
            min_agreement=_min_agreement(info),
            what="The ONNX model (ONNX Runtime)",
            classifier=classifier,
        )
        publish.write_labels(tmp, info.class_names)
        card = {
            **info.card,
            **classifier.modality.card(classifier),
            "name": info.name,
            "classes": info.class_names,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "inputs": onnx.input_contract(path),
            "outputs": "class probabilities in labels.txt order (one output per head for a multi-task model)",
            "runtime_check": {"runtime": "onnxruntime", **check},
        }
        with open(os.path.join(tmp, "model_card.json"), "w", encoding="utf-8") as f:
            json.dump(card, f, indent=2)
    final = os.path.join(destination, f"{info.name}.onnx")
    return ExportResult("onnx", final, None, os.path.getsize(final), check)


FORMATS = {"keras": export_keras, "saved_model": export_saved_model, "tflite": export_tflite, "onnx": export_onnx}
