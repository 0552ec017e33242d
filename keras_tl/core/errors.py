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


USER_ERRORS = (ValueError, WeightsUnavailableError, DatasetUnavailableError, ExportCheckError,
               TFLiteConversionError, ConnectionError)
