"""Export a text model: SavedModel that takes raw strings, TFLite on token ids, `.keras` + preprocessor.

The same contract as `keras_tl.export` for images: one function per format with the same
arguments `(model, preprocessor, destination, info)`; each writes beside its destination, checks
the artifact against the Keras model on held-out texts, and only then publishes it atomically.

KerasHub exports an encoder without its tokenizer; here the SavedModel's `serving_default`
signature runs the preset's preprocessor (tokenizer, truncation, padding) in the graph, so
TF Serving answers raw text. The TFLite model takes token ids: the tokenizer's tf.text ops are not TFLite
builtins (converting the raw-string signature fails on CaseFoldUTF8, RegexSplitWithOffsets,
FastWordpieceTokenizeWithOffsets, ...), so an app tokenizes with the vocabulary written beside the model.
"""

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from keras_tl import export, text_backbones
from keras_tl.export import ExportResult, compare

QUANTIZATIONS = ("none", "dynamic", "float16")


class TFLiteConversionError(RuntimeError):
    """The TFLite converter refused the model; the message names the ops it could not convert."""


@dataclass(frozen=True)
class TextExportInfo:
    """What every text exporter needs besides the model and preprocessor.

    Args:
        name: str. The model's name (folder and file names, the card).
        class_names: list of str.
        sequence_length: int. Tokens per example.
        check_texts: list of str. Held-out texts the export is verified on.
        quantize: str. TFLite: "none", "dynamic" (int8 weights) or "float16".
        min_agreement: float. Top-1 agreement with Keras below which the export is refused.
        keep_versions: int. SavedModel: how many versions to keep.
        card: dict. Extra model-card fields.
    """

    name: str
    class_names: list
    sequence_length: int
    check_texts: list
    quantize: str = "none"
    min_agreement: float | None = None
    keep_versions: int | None = None
    card: dict = field(default_factory=dict)


def _min_agreement(info):
    if info.min_agreement is not None:
        return info.min_agreement
    return export.DEFAULT_MIN_AGREEMENT[info.quantize]


def _reference(model, preprocessor, texts):
    return model.predict(preprocessor(list(texts)), verbose=0)


def export_keras(model, preprocessor, destination, info):
    """Writes `<destination>/<name>.keras`, `preprocessor/` and labels.txt, checked by reloading."""
    os.makedirs(destination, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=destination)
    try:
        model.save(os.path.join(tmp, f"{info.name}.keras"))
        preprocessor.save_to_preset(os.path.join(tmp, "preprocessor"))
        reloaded = keras.saving.load_model(os.path.join(tmp, f"{info.name}.keras"))
        reloaded_pre = text_backbones.load_saved_preprocessor(os.path.join(tmp, "preprocessor"))
        check = compare(_reference(model, preprocessor, info.check_texts),
                        _reference(reloaded, reloaded_pre, info.check_texts),
                        min_agreement=1.0, what="The reloaded .keras model and preprocessor")
        export._write_labels(tmp, info.class_names)
        for entry in os.listdir(tmp):  # Each piece replaces its old copy atomically.
            final = os.path.join(destination, entry)
            if os.path.isdir(final):
                old = tempfile.mkdtemp(prefix=".old-", dir=destination)
                os.rename(final, os.path.join(old, entry))
                os.rename(os.path.join(tmp, entry), final)
                shutil.rmtree(old)
            else:
                os.replace(os.path.join(tmp, entry), final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    final = os.path.join(destination, f"{info.name}.keras")
    return ExportResult("keras", final, None, os.path.getsize(final), check)


def serving_function(model, preprocessor, class_names, top_k=5):
    """`serving_default`: raw strings `(N,)` -> probabilities, top classes and the top label."""
    names = tf.constant(class_names)
    k = min(top_k, len(class_names))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        probs = model(preprocessor(text), training=False)
        if probs.shape[-1] == 1:
            probs = tf.concat([1.0 - probs, probs], axis=-1)
        top = tf.math.top_k(probs, k=k)
        return {"probabilities": tf.cast(probs, tf.float32), "top_classes": top.indices,
                "labels": tf.gather(names, top.indices[:, 0])}

    return serve


def export_saved_model(model, preprocessor, destination, info):
    """Writes the next integer version `<destination>/<version>/` for TF Serving (raw-text input)."""
    os.makedirs(destination, exist_ok=True)
    version = export.next_version(destination)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=destination)
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.track(preprocessor)  # Its vocabulary lookup tables become SavedModel resources.
        archive.add_endpoint("serving_default", serving_function(model, preprocessor, info.class_names))
        archive.write_out(tmp, verbose=False)
        export._write_labels(tmp, info.class_names)
        card = {**info.card, "name": info.name, "classes": info.class_names, "version": version,
                "sequence_length": info.sequence_length, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "signatures": {"serving_default": "text: string [N] (raw UTF-8 text; tokenized in the graph)"}}
        with open(os.path.join(tmp, "model_card.json"), "w", encoding="utf-8") as f:
            json.dump(card, f, indent=2)
        check = check_saved_model(tmp, model, preprocessor, info)
        final = os.path.join(destination, str(version))
        export._publish_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    check["pruned_versions"] = export.prune_versions(destination, info.keep_versions)
    return ExportResult("saved_model", final, version, export._dir_size(final), check)


def check_saved_model(path, model, preprocessor, info):
    """Calls the written SavedModel on raw strings and compares it with Keras."""
    loaded = tf.saved_model.load(path)
    served = loaded.signatures["serving_default"](text=tf.constant(info.check_texts))
    return {"serving_default": compare(_reference(model, preprocessor, info.check_texts),
                                       served["probabilities"].numpy(), min_agreement=_min_agreement(info),
                                       what="The SavedModel's serving_default (raw text) signature")}


def export_tflite(model, preprocessor, destination, info):
    """Writes `<destination>/<name>_<quantize>.tflite` on token ids, with vocabulary and labels."""
    if info.quantize not in QUANTIZATIONS:
        raise ValueError(f"Text TFLite export supports quantize in {list(QUANTIZATIONS)} (int8 activations "
                         f"need calibration texts: not supported). Received: quantize={info.quantize!r}")
    os.makedirs(destination, exist_ok=True)
    final = os.path.join(destination, f"{info.name}_{info.quantize}.tflite")
    tmp = os.path.join(destination, f".tmp-{os.getpid()}-{time.time_ns()}.tflite")
    signature = {k: keras.InputSpec(shape=(1, info.sequence_length), dtype="int32", name=k)
                 for k in sorted(model.input)}
    options = export.tflite_converter_options(info.quantize)
    try:
        try:
            model.export(tmp, format="litert", verbose=False, input_signature=[signature], **options)
        except Exception as error:  # The converter raises its own ConverterError (and others).
            ops = unsupported_ops(str(error))
            raise TFLiteConversionError(
                f"The TFLite converter could not convert this text model: unsupported op(s) "
                f"{ops or 'unknown (see the converter error above)'}. Serve it as a SavedModel "
                "(format='saved_model'), which runs every TensorFlow op."
            ) from error
        tokens = preprocessor(list(info.check_texts))
        check = compare(model.predict(tokens, verbose=0), tflite_predict_tokens(tmp, tokens),
                        min_agreement=_min_agreement(info), what=f"The {info.quantize} TFLite text model")
        export._publish_file(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    export._write_labels(destination, info.class_names)
    _write_vocabulary(preprocessor, os.path.join(destination, "vocab.txt"))
    return ExportResult("tflite", final, None, os.path.getsize(final), check)


def unsupported_ops(message):
    """The TensorFlow op names (`tf.OpName`) a TFLite converter error message lists, sorted."""
    return sorted({f"tf.{op}" for op in re.findall(r"\btf\.([A-Z]\w+)", message)} - {"tf.TFText"})


def _write_vocabulary(preprocessor, path):
    vocabulary = preprocessor.tokenizer.get_vocabulary()
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(vocabulary) + "\n")


def tflite_predict_tokens(path, tokens):
    """Runs a token-id TFLite model one example at a time; returns probabilities `(N, C)`."""
    interpreter = export.tflite_interpreter(path)
    inputs = {d["name"]: d for d in interpreter.get_input_details()}
    out = interpreter.get_output_details()[0]
    tokens = {k: np.asarray(v) for k, v in tokens.items()}
    count = len(next(iter(tokens.values())))
    results = []
    for i in range(count):
        for name, detail in inputs.items():
            key = next(k for k in tokens if k in name)
            interpreter.set_tensor(detail["index"], tokens[key][i:i + 1].astype(detail["dtype"]))
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"]).astype(np.float32)[0])
    return export.probabilities_of(np.stack(results))


FORMATS = {"keras": export_keras, "saved_model": export_saved_model, "tflite": export_tflite}
