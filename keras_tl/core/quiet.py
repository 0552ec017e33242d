"""The terminal is the user's: TensorFlow's native start-up lines stay out of it unless asked for.

`TF_CPP_MIN_LOG_LEVEL=3` silences TensorFlow's own logging, but the lines absl prints before its
logging is initialized (`cudart_stub`, `cpu_feature_guard`, `cuInit`) and LiteRT's "Created
TensorFlow Lite XNNPACK delegate" are written straight to the process's stderr and ignore it. The
CLI therefore points the native stderr at /dev/null while TensorFlow imports and finds its
devices, and while a LiteRT interpreter is created. Python's own errors are printed after it is
restored. `keras-tl --verbose` skips all of this; the library alone changes nothing unless asked.
"""

import contextlib
import io
import os
import sys

QUIET_ENV = "KERAS_TL_QUIET"


@contextlib.contextmanager
def native_stderr_silenced(enabled=True):
    """Points file descriptor 2 at /dev/null for the block (a no-op when stderr is not a real file)."""
    try:
        fd = sys.stderr.fileno() if enabled else None
    except (AttributeError, ValueError, io.UnsupportedOperation):
        fd = None  # Captured in a test or a notebook: nothing native reaches the terminal anyway.
    if fd is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def is_quiet():
    return os.environ.get(QUIET_ENV) == "1"


def quiet_tensorflow():
    """Imports TensorFlow (and starts its devices) silently; later native lines are silenced where
    keras-tl knows they come (`keras_tl.core.export.tflite_interpreter`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ[QUIET_ENV] = "1"
    with native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_logical_devices()  # Device start-up logs here.
    tf.get_logger().setLevel("ERROR")  # Python-side retracing warnings.
