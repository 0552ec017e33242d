"""The errors keras-tl raises on purpose; each message says what was expected and what to do.

Keras-free, so the CLI can name them without importing TensorFlow.
"""


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be fetched (usually: no network). The message says what to do."""


class DatasetUnavailableError(RuntimeError):
    """A dataset is neither on disk nor downloadable here; the message says how to supply it."""


class ExportCheckError(RuntimeError):
    """The exported artifact does not agree with the Keras model; nothing was published."""


class TFLiteConversionError(RuntimeError):
    """The TFLite converter refused the model; the message names the ops it could not convert."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the run stopped, kept its last good weights and says which rate to lower."""


class RunExistsError(ValueError):
    """The run directory already holds a run (another config, or this one finished or unfinished).

    `finished` is True when it holds a finished run of the same config (nothing to do).
    """

    def __init__(self, message, finished=False):
        super().__init__(message)
        self.finished = finished


USER_ERRORS = (ValueError, WeightsUnavailableError, DatasetUnavailableError, ExportCheckError,
               TFLiteConversionError, ConnectionError)
# Errors of a run that started well (exit status 1, not a usage error).
RUN_ERRORS = (TrainingDivergedError,)
