"""Reads PyTorch `.pth` state dicts into numpy arrays, without PyTorch.

Both of `torch.save`'s formats are read: the legacy one (PyTorch < 1.6: a sequence of pickles
followed by the raw storages) and the zip one (`archive/data.pkl` + `archive/data/<key>`). The
unpickler only builds what a state dict contains (tensors, `OrderedDict`) and what training
scripts commonly save beside it (numpy scalars in a metadata dict, rebuilt from their raw bytes);
any other class or function in the file is refused, so reading a checkpoint cannot run code from it.
A checkpoint saved as a tuple `(state_dict, metadata)` is unwrapped to its state dict.
"""

import collections
import os
import pickle
import struct
import zipfile

import numpy as np

from keras_tl.core.contract.errors import WeightsError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,  # Raw bits; converted in _materialize.
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _TensorRef:
    def __init__(self, storage_key, offset, size, stride):
        self.storage_key, self.offset, self.size, self.stride = storage_key, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage, offset, size, stride, *unused):
    if not isinstance(storage, str) or not isinstance(size, tuple) or not isinstance(stride, tuple):
        raise pickle.UnpicklingError("A tensor in a weights file must refer to a storage by its key.")
    return _TensorRef(storage, offset, size, stride)


def _rebuild_parameter(tensor, *unused):
    return tensor


def _numpy_scalar(dtype, raw=None):
    """`numpy.core.multiarray.scalar(dtype, bytes)`: a numpy scalar from its raw bytes (plain data)."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(raw, bytes):
        raise pickle.UnpicklingError("A numpy scalar in a weights file must be plain data.")
    return np.frombuffer(raw, dtype=dtype)[0]


def _numpy_dtype(name, align=False, copy=True):
    dtype = np.dtype(str(name))
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"Object dtypes are not read from a weights file. Received: {name!r}")
    return dtype


def _encode(text, encoding="utf-8"):
    """`_codecs.encode`, which pickle protocol 2 uses to store bytes; only text encodings."""
    if encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"Refused _codecs.encode({type(text).__name__}, {encoding!r}) in a weights file.")
    return text.encode(encoding)


_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
    ("_codecs", "encode"): _encode,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file, encoding="latin1")
        self.storage_types = {}

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[module, name]
        raise pickle.UnpicklingError(
            f"A weights file should hold only tensors; it refers to {module}.{name}, which is not read."
        )

    def persistent_load(self, pid):
        # ("storage", storage_type, key, location, numel[, view_metadata])
        if not (
            isinstance(pid, tuple)
            and len(pid) >= 3
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
            and isinstance(pid[2], (str, int))
        ):
            raise pickle.UnpicklingError(f"A weights file may refer only to tensor storages. Received: {pid!r:.80}")
        key = str(pid[2])
        self.storage_types[key] = pid[1].dtype
        return key


def load_state_dict(path):
    """Reads a PyTorch checkpoint file into `{name: numpy array}`.

    Args:
        path: str. A `.pth`/`.pt` file saved by `torch.save(state_dict)` (either format). A dict
            holding the state dict under "state_dict" or "model" is unwrapped.

    Returns:
        dict str -> numpy array, in the file's order.

    Example:
    >>> weights = keras_tl.weights.torch_weights.load_state_dict("mobilenet_v2-b0353104.pth")
    >>> weights["features.0.0.weight"].shape
    (32, 3, 3, 3)
    """
    if not os.path.isfile(path):
        raise WeightsError(f"Checkpoint not found: {path!r}. Expected a PyTorch .pth/.pt file.")
    if zipfile.is_zipfile(path):
        tree, storages = _load_zip(path)
    else:
        tree, storages = _load_legacy(path)
    state = _unwrap(tree)
    return collections.OrderedDict(
        (k, _materialize(v, storages)) for k, v in state.items() if isinstance(v, _TensorRef)
    )


def _load_legacy(path):
    """The legacy format: five pickles (magic number, protocol, sys info, the tree, the storage keys),
    each read by the restricted unpickler, then each storage's element count and raw bytes."""
    with open(path, "rb") as f:
        magic = _restricted_load(f, path)
        if magic != _LEGACY_MAGIC:
            raise WeightsError(
                f"{path!r} is not a PyTorch checkpoint: expected a zip archive or the legacy format's magic number."
            )
        _restricted_load(f, path)  # protocol version
        _restricted_load(f, path)  # sys info
        unpickler = _Unpickler(f)
        tree = _load(unpickler, path)
        keys = _restricted_load(f, path)
        if not isinstance(keys, list) or not all(isinstance(k, (str, int)) for k in keys):
            raise WeightsError(
                f"{path!r}: the legacy checkpoint's storage keys must be a list of names. "
                f"Received: {type(keys).__name__}"
            )
        storages = {}
        for key in keys:
            dtype = unpickler.storage_types.get(str(key))
            header = f.read(8)
            if dtype is None or len(header) != 8:
                raise WeightsError(
                    f"{path!r}: storage {key!r} is "
                    + ("not described by the checkpoint." if dtype is None else "cut short (the file is truncated).")
                )
            (count,) = struct.unpack("<q", header)
            raw = f.read(max(count, 0) * dtype.itemsize)
            if count < 0 or len(raw) != count * dtype.itemsize:
                raise WeightsError(
                    f"{path!r}: storage {key!r} should hold {count} values; the file is truncated or corrupt."
                )
            storages[str(key)] = np.frombuffer(raw, dtype=dtype)
    return tree, storages


def _restricted_load(file, path):
    """One pickle read by the restricted unpickler (plain values only: it refuses every global)."""
    return _load(_Unpickler(file), path)


def _load(unpickler, path):
    """`unpickler.load()`, its refusals and malformed data reported as `WeightsError`s naming the file."""
    try:
        return unpickler.load()
    except pickle.UnpicklingError as error:
        raise WeightsError(f"{path!r} was not read: {error}") from None
    except (
        EOFError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        struct.error,
        ValueError,
        UnicodeDecodeError,
    ) as error:
        if isinstance(error, WeightsError):
            raise
        raise WeightsError(
            f"{path!r} is not a readable PyTorch checkpoint (corrupt or truncated: "
            f"{type(error).__name__}: {str(error)[:120]})."
        ) from None


def _load_zip(path):
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise WeightsError(f"{path!r} is not a readable PyTorch checkpoint: {error}") from None
    with archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("data.pkl")), None)
        if pkl is None:
            raise WeightsError(f"{path!r} is a zip file but not a PyTorch checkpoint (no data.pkl).")
        prefix = pkl[: -len("data.pkl")]
        with archive.open(pkl) as f:
            unpickler = _Unpickler(f)
            tree = _load(unpickler, path)
        storages = {}
        for key, dtype in unpickler.storage_types.items():
            try:
                raw = archive.read(f"{prefix}data/{key}")
            except (KeyError, zipfile.BadZipFile, OSError) as error:
                raise WeightsError(f"{path!r}: storage {key!r} is missing or corrupt ({error}).") from None
            if len(raw) % dtype.itemsize:
                raise WeightsError(
                    f"{path!r}: storage {key!r} holds {len(raw)} bytes, not a whole number of {dtype.name} values."
                )
            storages[key] = np.frombuffer(raw, dtype=dtype)
    return tree, storages


def _unwrap(tree):
    if isinstance(tree, (tuple, list)):  # (state_dict, metadata), as some training scripts save
        states = [
            part for part in tree if isinstance(part, dict) and any(isinstance(v, _TensorRef) for v in part.values())
        ]
        if len(states) != 1:
            raise WeightsError(f"Expected one state dict in the saved {type(tree).__name__}. Found {len(states)}.")
        tree = states[0]
    for key in ("state_dict", "model"):
        if isinstance(tree, dict) and isinstance(tree.get(key), dict):
            return tree[key]
    if not isinstance(tree, dict):
        raise WeightsError(f"Expected a state dict (a mapping of names to tensors). Received: {type(tree).__name__}")
    return tree


def _materialize(ref, storages):
    """The tensor `ref` describes, copied out of its storage once its view is checked to lie inside it."""
    storage = storages.get(ref.storage_key)
    if storage is None:
        raise WeightsError(f"A tensor refers to storage {ref.storage_key!r}, which the checkpoint does not hold.")
    _check_view(ref, len(storage))
    itemsize = storage.dtype.itemsize
    array = np.lib.stride_tricks.as_strided(
        storage[ref.offset :], shape=ref.size, strides=[s * itemsize for s in ref.stride]
    ).copy()
    if storage.dtype == np.uint16:  # bfloat16 bits -> float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _check_view(ref, length):
    """Raises `WeightsError` unless offset, sizes and strides are non-negative integers whose every
    element lies inside a storage of `length` values (as_strided would otherwise read other memory)."""
    numbers = (ref.offset, *ref.size, *ref.stride)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers) or (
        len(ref.size) != len(ref.stride)
    ):
        raise WeightsError(
            f"A tensor's view must be non-negative integers with one stride per dimension. "
            f"Received: offset={ref.offset!r}, size={ref.size!r}, stride={ref.stride!r}"
        )
    if 0 in ref.size:
        return
    last = ref.offset + sum((size - 1) * stride for size, stride in zip(ref.size, ref.stride))
    if ref.offset >= length or last >= length:
        raise WeightsError(
            f"A tensor's view (offset {ref.offset}, size {ref.size}, stride {ref.stride}) reaches "
            f"element {last} of a storage of {length}: the checkpoint is corrupt."
        )
