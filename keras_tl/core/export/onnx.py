"""ONNX: Keras 3's own exporter (`model.export(format="onnx")`, tf2onnx on TensorFlow) and ONNX Runtime,
the runtime that checks every ONNX file keras-tl publishes (as LiteRT checks the TFLite files).

Both come with `pip install "keras-tl[onnx]"`; a missing one is named with that command.
"""

import re
import warnings

import numpy as np

from keras_tl.core.contract.errors import ExportError
from keras_tl.core.models.heads import probabilities_of

INSTALL = 'pip install "keras-tl[onnx]"'


def _require(module):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"ONNX export needs {module.split('.')[0]} ({INSTALL}). Received: {first}") from None


def convert(model, path):
    """Writes `model` to `path` as ONNX; `ExportError` naming the cause when it cannot be converted."""
    _require("tf2onnx")
    _require("onnx")
    try:
        # The model's own inputs (free batch), as its structure gives them (one tensor, or a dict).
        with warnings.catch_warnings():  # tf2onnx on numpy 2: "In the future `np.object` will be ..."
            warnings.simplefilter("ignore", FutureWarning)
            model.export(path, format="onnx", verbose=False, input_signature=[model.input])
        session(path)  # tf2onnx leaves an op it cannot convert in the graph: ONNX Runtime refuses the file.
    except ExportError:
        raise
    except Exception as error:  # tf2onnx raises many kinds; the first line names the op or the cause.
        text = str(error).strip()
        unregistered = re.search(r"No Op registered for (\w+)", text)
        first = (
            f"ONNX has no {unregistered.group(1)} op (tf2onnx left TensorFlow's in the graph)"
            if unregistered
            else (text.splitlines()[0][:300] if text else type(error).__name__)
        )
        raise ExportError(
            f"This model could not be converted to ONNX: {first}. Serve it as a SavedModel "
            "(format='saved_model') or a TFLite file (format='tflite')."
        ) from error


def session(path):
    """An ONNX Runtime CPU session of `path`."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # Errors only: the terminal is the user's.
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def input_contract(path):
    """`[{"name", "shape", "dtype"}]` of the file's inputs (`None` for a free dimension)."""
    return [
        {"name": i.name, "shape": [d if isinstance(d, int) else None for d in i.shape], "dtype": i.type}
        for i in session(path).get_inputs()
    ]


def onnx_predict(path, inputs, batch_size=32, runtime=None):
    """Runs an ONNX file on what the Keras model takes (an array, or a dict of arrays by input name) in
    batches with ONNX Runtime; float probabilities `(N, C)` (a multi-output file's outputs side by side,
    in the model's output order)."""
    runtime = runtime or session(path)
    names = [i.name for i in runtime.get_inputs()]
    types = {i.name: i.type for i in runtime.get_inputs()}
    if isinstance(inputs, dict):
        if set(inputs) != set(names):
            raise ExportError(f"The ONNX file takes inputs {names}. Received: {sorted(inputs)}")
        columns = inputs
    else:
        if len(names) != 1:
            raise ExportError(f"The ONNX file takes inputs {names}. Received: one array")
        columns = {names[0]: inputs}
    count = len(next(iter(columns.values())))
    results = []
    for start in range(0, count, batch_size):
        feed = {n: np.asarray(columns[n][start : start + batch_size]).astype(_numpy_type(types[n])) for n in names}
        results.append(np.concatenate([np.asarray(o, np.float32) for o in runtime.run(None, feed)], axis=-1))
    return probabilities_of(np.concatenate(results))


def _numpy_type(onnx_type):
    """`tensor(float)` -> float32, `tensor(int32)` -> int32, ..."""
    name = onnx_type[len("tensor(") : -1]
    return {"float": np.float32, "double": np.float64, "string": object}.get(name, np.dtype(name).type)


def latency_ms(path, inputs, repeats=50):
    """Median batch-1 run time of an ONNX file in ONNX Runtime on the first example of `inputs`, in ms."""
    import time

    runtime = session(path)
    first = {k: v[:1] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[:1]
    onnx_predict(path, first, runtime=runtime)  # Warm up.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        onnx_predict(path, first, runtime=runtime)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))
