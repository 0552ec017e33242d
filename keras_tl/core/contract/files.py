"""Checks of the paths a config names, before anything is read or written: data that exists, a
weights file that is one (raising the contract's errors, one line each)."""

import os

from keras_tl.core.contract.errors import ConfigError, DataError, RunExistsError, WeightsError

CSV_FIELD_LIMIT = 64 << 20  # Characters in one CSV cell (a long text); Python's csv allows 131,072 by default.


def check_data_path(data, *, expected, files=(".csv",), schemes=("tfds:",)):
    """Raises `DataError` unless `data` names something that exists: a folder, a file ending in one of
    `files`, or a name starting with one of `schemes` (resolved when read).

    Args:
        data: str. A config's `data`.
        expected: str. What the modality reads, for the message ("a folder of class folders, ...").
    """
    if data is None:
        raise DataError(f"No data: set `data` to {expected}, or pass a source.")
    if not isinstance(data, str) or not data:
        raise DataError(f"`data` must be a path. Expected {expected}. Received: data={data!r}")
    if data.startswith(tuple(schemes)):
        return
    if data.lower().endswith(tuple(files)):
        if not os.path.isfile(data):
            raise DataError(f"Data file not found: {data!r}. Expected {expected}.")
    elif not os.path.isdir(data):
        raise DataError(f"Data not found: {data!r}. Expected {expected}.")


def check_weights_file(path, *, suffixes=(".weights.h5", ".h5")):
    """Raises unless `path` is an existing, readable Keras HDF5 weights file (whether it fits an
    architecture is checked when it is loaded): `ConfigError` for a missing file or another
    extension, `WeightsError` for a corrupt or truncated one."""
    if not isinstance(path, str) or not os.path.isfile(path):
        raise ConfigError(f"No weights file exists at {path!r}. Received: weights={path!r}")
    if not path.endswith(tuple(suffixes)):
        raise ConfigError(
            f"`weights` must be a Keras weights file ending in {' or '.join(suffixes)}. Received: weights={path!r}"
        )
    import h5py

    try:
        with h5py.File(path, "r") as f:
            f.visit(lambda name: None)  # Walks the file's index: a truncated file fails here.
    except (OSError, RuntimeError, ValueError) as error:
        raise WeightsError(
            f"{path!r} is not a readable HDF5 weights file ({str(error)[:120]}): corrupt, truncated "
            "or another format. Expected a file written by `save_weights` or a Keras Applications "
            ".h5 download."
        ) from None


def load_weights_file(network, path, backbone, *, expected):
    """`network.load_weights(path)`; a file of another architecture or a damaged one is one
    `WeightsError` line naming the file, the backbone and what was `expected` (Keras' warnings about
    the layers it skipped stay off the terminal)."""
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            network.load_weights(path)
    except (ValueError, OSError, KeyError) as error:
        raise WeightsError(
            f"{path!r} cannot be loaded into backbone {backbone!r}: {str(error).strip().splitlines()[0][:200]}. "
            f"Expected {expected}."
        ) from None
    skipped = [
        str(w.message) for w in caught if "Skipping" in str(w.message) or "could not be loaded" in str(w.message)
    ]
    if skipped:  # Keras loaded part of the file and left the rest at random values.
        raise WeightsError(
            f"{path!r} fits backbone {backbone!r} only in part: {skipped[0].strip().splitlines()[0][:200]}. "
            f"Expected {expected}."
        )
    for warning in caught:  # Any other warning, as Keras gave it.
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def allow_long_csv_fields():
    """Lets Python's csv read cells of up to `CSV_FIELD_LIMIT` characters."""
    import csv

    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)


def check_own_folder(path, marker, lock=".lock"):
    """Raises unless `path` is missing, empty (but for `lock`), or a folder keras-tl made: it holds `marker`
    (config.yaml for a training run, auto.json for an `auto` run). keras-free, for the CLI's early checks."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunExistsError(f"`out` must be a directory. Received: out={path!r}, which is a file.")
    entries = sorted(e for e in os.listdir(path) if e != lock) if os.path.isdir(path) else []
    if entries and marker not in entries:
        raise RunExistsError(
            f"{path!r} is not empty and is not a keras-tl run directory (no {marker}; it holds "
            f"{entries[:5]}). keras-tl never writes into or deletes a folder it did not create: choose another `out`."
        )
