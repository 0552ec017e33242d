"""One option, a standard distribution: `tf.distribute` on TensorFlow, `keras.distribution` on JAX.

`config.batch_size` is the global batch: each of R replicas gets `batch_size / R` examples a step.
"""

import contextlib
import json
import os
import sys

from keras_tl.core.contract.choices import DISTRIBUTIONS as CHOICES
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.utils.log import log
from keras_tl.core.utils.paths import keras_home


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
    if name == "multi_worker":
        cluster_task()  # Raises unless TF_CONFIG names a cluster and this process's task in it.


EXAMPLE_TF_CONFIG = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


def cluster_task():
    """`(cluster, task type, task index)` from `TF_CONFIG`; `ConfigError` when it is missing or malformed."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ConfigError(
            "distribute='multi_worker' reads the cluster from the TF_CONFIG environment variable, which is "
            f"not set. Expected e.g. TF_CONFIG='{EXAMPLE_TF_CONFIG}'."
        )
    try:
        parsed = json.loads(text)
        cluster, task = parsed["cluster"], parsed["task"]
        kind, index = str(task["type"]), int(task["index"])
        if not isinstance(cluster, dict) or not 0 <= index < len(cluster[kind]):
            raise ValueError
    except (ValueError, KeyError, TypeError, IndexError):
        raise ConfigError(
            "TF_CONFIG must be JSON naming the cluster and this process's task in it, e.g. "
            f"'{EXAMPLE_TF_CONFIG}'. Received: TF_CONFIG={text[:200]!r}"
        ) from None
    return cluster, kind, index


def writes_run_directory(name):
    """Whether this process writes the run directory: always, except on a multi-worker cluster, where
    only the chief does (the task "chief", or worker 0 when the cluster has no chief). The other workers
    train in step with it and write into a private temporary folder, as Keras' multi-worker guide says."""
    if name != "multi_worker":
        return True
    cluster, kind, index = cluster_task()
    return kind == "chief" if "chief" in cluster else (kind == "worker" and index == 0)


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
        strategy = start(name)
    log.info(f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replicas")
    return strategy.scope()


def _keras_multi_worker_strategy(tf):
    """`tf.distribute.MultiWorkerMirroredStrategy` with `reduce` mended for what Keras 3 (3.15) asks of it
    on a cluster of two or more workers, where `fit` otherwise fails at its first step:

    - to build the model symbolically, Keras reduces a whole batch, a tuple of per-replica values,
      which the collective reduce cannot take ("Attempt to convert a value (PerReplica...)"); only the
      batch's shapes matter there, so this returns the local replica's batch;
    - it reduces each scalar log with `axis=0` ("Invalid reduction dimension 0 for input with 0
      dimensions"); a scalar is reduced across replicas with no axis.
    """

    class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            leaves = tf.nest.flatten(value)
            if isinstance(value, (tuple, list, dict)):
                if axis is None and all(isinstance(v, tf.distribute.DistributedValues) for v in leaves):
                    # Keras' symbolic build of a batch: the local replica's batch has its shapes.
                    return tf.nest.map_structure(lambda v: self.experimental_local_results(v)[0], value)
                return tf.nest.map_structure(lambda v: self.reduce(reduce_op, v, axis), value)
            if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
                axis = None
            return super().reduce(reduce_op, value, axis)

    return KerasMultiWorkerMirroredStrategy


_MULTI_WORKER = []  # [strategy, its TF_CONFIG]: TensorFlow allows one per process, made first.


def start(name):
    """Makes the process's `MultiWorkerMirroredStrategy` now, for `name="multi_worker"` (else does
    nothing): TensorFlow requires it before any op runs, so `train` calls this before reading data.
    Returns the strategy, or None."""
    if name != "multi_worker":
        return None
    if _MULTI_WORKER and _MULTI_WORKER[1] != os.environ.get("TF_CONFIG"):
        raise ConfigError(
            "This process's multi-worker strategy was made for another TF_CONFIG; TensorFlow allows one "
            f"per process. Start a new process. Received: TF_CONFIG={os.environ.get('TF_CONFIG', '')[:200]!r}"
        )
    if not _MULTI_WORKER:
        check(name)
        import tensorflow as tf

        try:
            _MULTI_WORKER[:] = [_keras_multi_worker_strategy(tf)(), os.environ.get("TF_CONFIG")]
        except RuntimeError as error:  # "Collective ops must be configured at program startup"
            raise ConfigError(
                "distribute='multi_worker' must start before TensorFlow runs anything in this process. "
                "Run the training as its own process (`keras-tl train`, or a script whose first TensorFlow "
                f"work is `keras_tl.train`). Received: {error}"
            ) from None
    return _MULTI_WORKER[0]


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
