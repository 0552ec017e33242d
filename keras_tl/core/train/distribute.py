"""One option, a standard distribution: `tf.distribute` on TensorFlow, `keras.distribution` on JAX.

`config.batch_size` is the global batch: each of R replicas gets `batch_size / R` examples a step.
"""

import contextlib
import json
import os
import sys

from keras_tl.core.contract.choices import DISTRIBUTIONS as CHOICES
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.utils.paths import keras_home
from keras_tl.core.utils.log import log


def backend_name():
    """The Keras backend this process runs (or will run: `KERAS_BACKEND`, else `keras.json`, else
    TensorFlow), told without importing Keras when it is not imported yet."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    try:
        with open(os.path.join(keras_home(), "keras.json"), encoding="utf-8") as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def check(name):
    """Raises `ConfigError` before any work if `name` cannot run on this backend or environment."""
    if name not in CHOICES:
        raise ConfigError(f"`distribute` must be one of {list(CHOICES)}. Received: distribute={name!r}")
    backend = backend_name()
    if name == "data_parallel" and backend != "jax":
        raise ConfigError(
            "distribute='data_parallel' is the Keras distribution API, which needs KERAS_BACKEND=jax. "
            f"Received backend {backend!r}; on TensorFlow use distribute='mirrored'."
        )
    if name in ("mirrored", "multi_worker") and backend != "tensorflow":
        raise ConfigError(
            f"distribute={name!r} uses tf.distribute, which needs KERAS_BACKEND=tensorflow. "
            f"Received backend {backend!r}; on JAX use distribute='data_parallel'."
        )
    if name == "multi_worker" and "TF_CONFIG" not in os.environ:
        raise ConfigError(
            "distribute='multi_worker' reads the cluster from the TF_CONFIG environment variable, "
            "which is not set. Expected e.g. TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", "
            "\"host2:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}'."
        )


def scope(name):
    """The context in which the model is built, compiled and trained.

    Args:
        name: str. "none", "mirrored" (`tf.distribute.MirroredStrategy` over the local devices),
            "multi_worker" (`tf.distribute.MultiWorkerMirroredStrategy`, cluster from `TF_CONFIG`)
            or "data_parallel" (JAX: `keras.distribution.DataParallel` over all devices).

    Example:
    >>> with keras_tl.core.train.distribute.scope("mirrored"):
    ...     classifier = keras_tl.build_classifier("mobilenet_v2", num_classes=3, weights="none")
    """
    check(name)
    if name == "none":
        return contextlib.nullcontext()
    if name == "data_parallel":
        return _data_parallel()
    import tensorflow as tf  # Only on the TensorFlow backend (checked above).

    if name == "mirrored":
        # All GPUs; without GPUs, all logical CPU devices (a machine's one CPU unless it was split).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    log.info(f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replicas")
    return strategy.scope()


@contextlib.contextmanager
def _data_parallel():
    import keras

    previous = keras.distribution.distribution()
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    log.info(f"keras.distribution.DataParallel: {len(devices)} devices")
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def determinism(enabled):
    """Turns on TensorFlow's op determinism (bit-identical reruns on one machine) when asked.

    It lasts for the process. On JAX, CPU runs are deterministic already; nothing to do.
    """
    if enabled and backend_name() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


@contextlib.contextmanager
def precision(mixed):
    """The dtype policy of a run: mixed float16 on GPUs, mixed bfloat16 on CPUs, or float32.

    The previous global policy is restored on exit.
    """
    import keras

    previous = keras.config.dtype_policy().name
    if mixed:
        gpu = _has_gpu()
        keras.config.set_dtype_policy("mixed_float16" if gpu else "mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _has_gpu():
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return any(d.startswith(("gpu", "cuda")) for d in keras.distribution.list_devices())
