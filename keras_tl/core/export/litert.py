"""Running a TFLite (LiteRT) file as an app would: the interpreter, per-example inference in the Keras
model's output order, quantized inputs and outputs, batch-1 latency.

Used by the TFLite export's check (`keras_tl.core.export.formats`) and by whoever evaluates an exported file.
"""

import re
import time

import numpy as np

from keras_tl.core.models.heads import probabilities_of
from keras_tl.core.utils import private, quiet


def load(path):
    """A LiteRT interpreter of the file at `path`, its tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter  # tf.lite.Interpreter is deprecated.

    with quiet.quietly():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" line.
        interpreter = Interpreter(model_path=path)
        interpreter.allocate_tensors()
    return interpreter


def _examples(inputs):
    """Model inputs (an array, or a dict of arrays) -> a list of per-example `{name: (1, ...)}` dicts."""
    if isinstance(inputs, dict):
        arrays = {k: np.asarray(v) for k, v in inputs.items()}
        count = len(next(iter(arrays.values())))
        return [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(count)]
    return [{None: np.asarray(x)[None]} for x in np.asarray(inputs)]


def _set_inputs(interpreter, example):
    details = interpreter.get_input_details()
    for detail in details:
        key = None if None in example else next(k for k in example if k in detail["name"])
        interpreter.set_tensor(detail["index"], _input_tensor(example[key], detail))


def tflite_predict(path, inputs, interpreter=None):
    """Runs a TFLite model one example at a time; returns float probabilities `(N, C)`.

    Args:
        inputs: what the Keras model takes: an array (images), or a dict of arrays (token ids).
    """
    interpreter = interpreter or load(path)
    outputs = output_details(interpreter)
    results = []
    for example in _examples(inputs):
        _set_inputs(interpreter, example)
        interpreter.invoke()
        row = []
        for out in outputs:
            y = interpreter.get_tensor(out["index"]).astype(np.float32)
            if out["dtype"] != np.float32:
                scale, zero = out["quantization"]
                y = (y - zero) * scale
            row.append(y[0])
        results.append(np.concatenate(row))
    return probabilities_of(np.stack(results))


def output_details(interpreter):
    """The output tensors' details in the Keras model's output order (a multi-task model has one
    per head; the converter may store them in another order, the signature keeps Keras' order)."""
    details = {d["index"]: d for d in interpreter.get_output_details()}
    signatures = private.output_tensor_order(interpreter)
    if len(details) == 1 or len(signatures) != 1:
        return list(details.values())
    named = next(iter(signatures.values()))["outputs"]
    order = sorted(named, key=lambda n: int(re.sub(r"\D", "", n) or 0))
    return [details[named[n]] for n in order]


def _input_tensor(x, detail):
    """One example as the interpreter's input: its dtype, quantized with its scale and zero point."""
    if detail["dtype"] in (np.uint8, np.int8) and detail["quantization"][0]:
        scale, zero = detail["quantization"]
        limits = np.iinfo(detail["dtype"])
        x = np.clip(np.round(x.astype(np.float32) / scale + zero), limits.min, limits.max)
    return x.astype(detail["dtype"])


def tflite_latency_ms(path, inputs, repeats=50):
    """Median batch-1 invoke time of a TFLite model on the first example of `inputs`, in milliseconds."""
    interpreter = load(path)
    example = _examples(inputs)[0]
    _set_inputs(interpreter, example)
    interpreter.invoke()  # Warm up.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))
