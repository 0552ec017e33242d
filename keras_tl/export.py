"""Export a trained model: `.keras`, SavedModel for TensorFlow Serving, TFLite (LiteRT).

A closed dict of formats, one small function per format, the same arguments in every one:
`(model, destination, info)`. Each writes into a temporary path beside its destination, checks
the written artifact against the Keras model on held-out images, and only then moves it into
place with an atomic rename — TF Serving never sees a half-written or unchecked version.

Layout under `out` (default `exported_models/`):

    <name>/<version>/            SavedModel (TF Serving watches <name>/; integer versions)
        saved_model.pb, variables/, labels.txt, model_card.json
    <name>/tflite/<name>_<quantize>.tflite, labels.txt   (TF Serving ignores non-integer dirs)
    <name>/keras/<name>.keras, labels.txt
"""

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


class ExportCheckError(RuntimeError):
    """The exported artifact does not agree with the Keras model; nothing was published."""


@dataclass(frozen=True)
class ExportInfo:
    """What every exporter needs besides the model.

    Args:
        name: str. The model's name: file names and the card use it.
        class_names: list of str.
        image_size: int. Side of the model's square input.
        check_images: uint8 array `(N, S, S, 3)` of held-out images to verify the export on.
        quantize: str. TFLite only: "none", "float16", "dynamic" or "int8".
        representative_images: uint8 array. int8 calibration data (from the training split).
        int8_io: bool. int8 TFLite with uint8 input and output tensors instead of float32.
        min_agreement: float. Top-1 agreement with Keras below which the export is refused;
            None picks by quantization (`DEFAULT_MIN_AGREEMENT`).
        keep_versions: int. SavedModel only: how many versions to keep (None keeps all).
        card: dict. Extra model-card fields (backbone, test metrics, config).
    """

    name: str
    class_names: list
    image_size: int
    check_images: np.ndarray
    quantize: str = "none"
    representative_images: np.ndarray | None = None
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


DEFAULT_MIN_AGREEMENT = {"none": 0.98, "float16": 0.95, "dynamic": 0.9, "int8": 0.85}


# ---------------------------------------------------------------- checks


def probabilities_of(outputs):
    """Binary models give `(N, 1)`; every export returns `(N, C)` class probabilities."""
    outputs = np.asarray(outputs, dtype=np.float32)
    if outputs.shape[-1] == 1:
        return np.concatenate([1 - outputs, outputs], axis=-1)
    return outputs


def compare(reference, candidate, *, min_agreement, what):
    """Top-1 agreement and max abs difference; raises `ExportCheckError` below `min_agreement`."""
    reference, candidate = probabilities_of(reference), probabilities_of(candidate)
    agreement = float(np.mean(reference.argmax(-1) == candidate.argmax(-1)))
    max_abs = float(np.max(np.abs(reference - candidate)))
    check = {"top1_agreement": agreement, "max_abs_diff": max_abs, "n": int(len(reference))}
    if agreement < min_agreement:
        raise ExportCheckError(
            f"{what} agrees with the Keras model on {agreement:.1%} of {len(reference)} held-out "
            f"images (needed {min_agreement:.0%}; max abs difference {max_abs:.4f}). Not published."
        )
    return check


def _min_agreement(info):
    if info.min_agreement is not None:
        return info.min_agreement
    return DEFAULT_MIN_AGREEMENT[info.quantize]


# ---------------------------------------------------------------- atomic publishing


def next_version(model_dir):
    """1 + the largest integer version folder in `model_dir` (1 if none)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(d) for d in os.listdir(model_dir) if d.isdigit()]
    return max(versions, default=0) + 1


def prune_versions(model_dir, keep):
    """Deletes all but the `keep` newest integer versions; returns the deleted ones."""
    versions = sorted(int(d) for d in os.listdir(model_dir) if d.isdigit())
    doomed = versions[:-keep] if keep and len(versions) > keep else []
    for version in doomed:
        shutil.rmtree(os.path.join(model_dir, str(version)))
    return doomed


def _publish_dir(tmp_dir, final_dir):
    os.rename(tmp_dir, final_dir)  # Atomic on one filesystem; fails if final_dir exists.


def _publish_file(tmp_path, final_path):
    os.replace(tmp_path, final_path)


def _write_labels(directory, class_names):
    with open(os.path.join(directory, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(class_names) + "\n")


# ---------------------------------------------------------------- formats


def export_keras(model, destination, info):
    """Writes `<destination>/<name>.keras` (+ labels.txt), checked by reloading it."""
    os.makedirs(destination, exist_ok=True)
    final = os.path.join(destination, f"{info.name}.keras")
    tmp = os.path.join(destination, f".tmp-{os.getpid()}-{time.time_ns()}.keras")
    try:
        model.save(tmp)
        reloaded = keras.saving.load_model(tmp)
        check = compare(model.predict(info.check_images, verbose=0),
                        reloaded.predict(info.check_images, verbose=0),
                        min_agreement=1.0, what="The reloaded .keras file")
        _publish_file(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _write_labels(destination, info.class_names)
    return ExportResult("keras", final, None, os.path.getsize(final), check)


def serving_functions(model, info, top_k=5):
    """The two serving signatures: encoded image bytes, and an image tensor.

    Both return `probabilities` (N, C) float32, `top_classes` (N, k) int32 and `labels` (N,)
    string of the top class. Decoding (JPEG, PNG, GIF, BMP), resizing and the backbone's
    preprocessing all happen in the graph.
    """
    size = info.image_size
    names = tf.constant(info.class_names)
    k = min(top_k, len(info.class_names))

    def outputs(images):
        probs = model(images, training=False)
        if probs.shape[-1] == 1:
            probs = tf.concat([1.0 - probs, probs], axis=-1)
        top = tf.math.top_k(probs, k=k)
        return {
            "probabilities": tf.cast(probs, tf.float32),
            "top_classes": top.indices,
            "labels": tf.gather(names, top.indices[:, 0]),
        }

    def decode(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
        image.set_shape([None, None, 3])
        image = tf.image.resize(image, (size, size), antialias=True)
        return tf.clip_by_value(tf.round(image), 0.0, 255.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
        return outputs(images)

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
    def serve_images(images):
        return outputs(images)

    return serve_bytes, serve_images


def export_saved_model(model, destination, info):
    """Writes the next integer version `<destination>/<version>/` for TF Serving.

    Signatures: `serving_default` (batch of encoded image bytes) and `serving_images` (float
    images 0-255 of the model's size). labels.txt and model_card.json sit beside saved_model.pb.
    """
    os.makedirs(destination, exist_ok=True)
    version = next_version(destination)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=destination)
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        serve_bytes, serve_images = serving_functions(model, info)
        archive.add_endpoint("serving_default", serve_bytes)
        archive.add_endpoint("serving_images", serve_images)
        archive.write_out(tmp, verbose=False)
        _write_labels(tmp, info.class_names)
        card = {**info.card, "name": info.name, "classes": info.class_names, "input_size": info.image_size,
                "version": version, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "signatures": {"serving_default": "image_bytes: string [N] (JPEG/PNG/GIF/BMP)",
                               "serving_images": f"images: float32 [N, {info.image_size}, {info.image_size}, 3] in 0-255"}}
        with open(os.path.join(tmp, "model_card.json"), "w", encoding="utf-8") as f:
            json.dump(card, f, indent=2)
        check = check_saved_model(tmp, model, info)
        final = os.path.join(destination, str(version))
        _publish_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pruned = prune_versions(destination, info.keep_versions)
    check["pruned_versions"] = pruned
    return ExportResult("saved_model", final, version, _dir_size(final), check)


def encode_png(images):
    return [tf.io.encode_png(image).numpy() for image in np.asarray(images, dtype=np.uint8)]


def check_saved_model(path, model, info):
    """Calls both signatures of a written SavedModel and compares them with Keras."""
    loaded = tf.saved_model.load(path)
    reference = model.predict(info.check_images, verbose=0)
    by_tensor = loaded.signatures["serving_images"](images=tf.constant(info.check_images, tf.float32))
    by_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant(encode_png(info.check_images)))
    minimum = _min_agreement(info)
    return {
        "serving_images": compare(reference, by_tensor["probabilities"].numpy(), min_agreement=minimum,
                                  what="The SavedModel's serving_images signature"),
        "serving_default": compare(reference, by_bytes["probabilities"].numpy(), min_agreement=minimum,
                                   what="The SavedModel's serving_default (PNG bytes) signature"),
    }


def tflite_converter_options(quantize, representative_images=None, int8_io=False):
    """`Model.export(format="litert")` converter settings for a quantization mode.

    Args:
        quantize: str. "none", "float16", "dynamic" or "int8".
        representative_images: array. int8 calibration inputs (from the training split).
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
        if representative_images is None or not len(representative_images):
            raise ValueError("int8 quantization needs representative images from the training split.")
        images = np.asarray(representative_images, dtype=np.float32)

        def representative():
            for image in images:
                yield [image[None]]

        options["representative_dataset"] = representative
        options["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}
        if int8_io:
            options["inference_input_type"] = tf.uint8
            options["inference_output_type"] = tf.uint8
    return options


def export_tflite(model, destination, info):
    """Writes `<destination>/<name>_<quantize>.tflite` (+ labels.txt), checked with LiteRT."""
    if info.quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {list(QUANTIZATIONS)}. Received: {info.quantize!r}")
    os.makedirs(destination, exist_ok=True)
    final = os.path.join(destination, f"{info.name}_{info.quantize}{'_uint8io' if info.int8_io else ''}.tflite")
    tmp = os.path.join(destination, f".tmp-{os.getpid()}-{time.time_ns()}.tflite")
    size = info.image_size
    try:
        model.export(tmp, format="litert", verbose=False,
                     input_signature=[keras.InputSpec(shape=(1, size, size, 3), dtype="float32")],
                     **tflite_converter_options(info.quantize, info.representative_images, info.int8_io))
        reference = model.predict(info.check_images, verbose=0)
        check = compare(reference, tflite_predict(tmp, info.check_images), min_agreement=_min_agreement(info),
                        what=f"The {info.quantize} TFLite model")
        _publish_file(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _write_labels(destination, info.class_names)
    return ExportResult("tflite", final, None, os.path.getsize(final), check)


def tflite_interpreter(path):
    from ai_edge_litert.interpreter import Interpreter  # tf.lite.Interpreter is deprecated.

    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    return interpreter


def tflite_predict(path, images, interpreter=None):
    """Runs a TFLite model one image at a time; returns float probabilities `(N, C)`."""
    interpreter = interpreter or tflite_interpreter(path)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    results = []
    for image in np.asarray(images):
        interpreter.set_tensor(inp["index"], _input_tensor(image, inp))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y - zero) * scale
        results.append(y[0])
    return np.stack(results)


def _input_tensor(image, detail):
    """One image as the interpreter's input: float32, or quantized with its scale and zero point."""
    x = image[None].astype(np.float32)
    if detail["dtype"] != np.float32:
        scale, zero = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max)
    return x.astype(detail["dtype"])


def tflite_latency_ms(path, image, repeats=50):
    """Median batch-1 invoke time of a TFLite model, in milliseconds."""
    interpreter = tflite_interpreter(path)
    tflite_predict(path, image[None], interpreter)  # Warm up.
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], _input_tensor(np.asarray(image), inp))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def keras_latency_ms(model, image, repeats=30):
    """Median batch-1 `predict_on_batch` time of a Keras model, in milliseconds."""
    x = np.asarray(image[None], dtype=np.float32)
    model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _dir_size(path):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


FORMATS = {"keras": export_keras, "saved_model": export_saved_model, "tflite": export_tflite}
