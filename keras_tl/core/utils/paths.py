"""Where keras-tl caches converted weights and unpacked presets: `$KERAS_HOME` (Keras' own rule)."""

import os


def keras_home():
    """`$KERAS_HOME`, or `~/.keras` as Keras defaults to."""
    return os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))


def keras_tl_cache(*parts):
    """A path under `$KERAS_HOME/keras_tl/` (converted weights, unpacked text presets)."""
    return os.path.join(keras_home(), "keras_tl", *parts)


def keras_models_cache():
    """Where `keras.utils.get_file` caches Keras Applications weights."""
    return os.path.join(keras_home(), "models") + os.sep
