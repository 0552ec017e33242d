"""The errors keras-tl raises on purpose: one hierarchy a user can catch, and the CLI can name.

Every one of them is a `KerasTLError`; the message says what was expected, what was received and
what to do. The CLI turns only these into one-line messages (`exit_code`: 2 for a request to
change, 1 for a run or a server that failed), so an error raised anywhere else (a bug, in keras-tl,
Keras or TensorFlow) keeps its traceback. Errors about user input are also `ValueError`s, as
Python code expects of a bad argument.

Keras-free, so the CLI can name them without importing TensorFlow.
"""


class KerasTLError(Exception):
    """Base class of every error keras-tl raises on purpose."""

    exit_code = 1


class ConfigError(KerasTLError, ValueError):
    """A setting, argument or flag keras-tl cannot use; the message names it and what it accepts."""

    exit_code = 2


class DataError(KerasTLError, ValueError):
    """Data keras-tl cannot read or use: a missing folder, an unreadable manifest, too few examples."""

    exit_code = 2


class DatasetUnavailableError(DataError):
    """A dataset is neither on disk nor downloadable here; the message says how to supply it."""


class WeightsError(KerasTLError, ValueError):
    """A weights file or checkpoint keras-tl cannot read (corrupt, another architecture, unsafe)."""

    exit_code = 2


class WeightsUnavailableError(WeightsError):
    """Pretrained weights could not be fetched (usually: no network). The message names the ones
    that work offline."""


class RunExistsError(ConfigError):
    """The run directory already holds a run (another config, or this one finished or unfinished),
    or another process is writing it.

    `finished` is True when it holds a finished run of the same config (nothing to do).
    """

    def __init__(self, message, finished=False):
        super().__init__(message)
        self.finished = finished


class TrainingDivergedError(KerasTLError):
    """The loss became NaN, infinite or exploded; the run stopped, kept its last good weights and
    says which rate to lower."""


class ExportError(KerasTLError):
    """An export could not be written; nothing was published."""


class ExportCheckError(ExportError):
    """The exported artifact does not agree with the Keras model; nothing was published."""


class TFLiteConversionError(ExportError):
    """The TFLite converter refused the model; the message names the ops it could not convert."""


class ServingError(KerasTLError):
    """TF Serving answered with an error, an answer too large or malformed, or not in time."""


class ServingUnavailableError(ServingError, ConnectionError):
    """TF Serving could not be reached."""
