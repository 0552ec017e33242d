"""Reads PyTorch `.pth` state dicts into numpy arrays, without PyTorch.

Both of `torch.save`'s formats are read: the legacy one (PyTorch < 1.6: a sequence of pickles
followed by the raw storages) and the zip one (`archive/data.pkl` + `archive/data/<key>`). The
unpickler only builds what a state dict contains (tensors, `OrderedDict`) and what training
scripts commonly save beside it (numpy scalars in a metadata dict, rebuilt from their raw bytes);
any other class or function in the file is refused, so reading a checkpoint cannot run code from it.
A checkpoint saved as a tuple `(state_dict, metadata)` is unwrapped to its state dict.
"""

import collections
import pickle
import struct
import zipfile

import numpy as np

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
        _, storage_type, key = pid[0], pid[1], str(pid[2])
        self.storage_types[key] = storage_type.dtype
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
    if zipfile.is_zipfile(path):
        tree, storages = _load_zip(path)
    else:
        tree, storages = _load_legacy(path)
    state = _unwrap(tree)
    return collections.OrderedDict((k, _materialize(v, storages)) for k, v in state.items()
                                   if isinstance(v, _TensorRef))


def _load_legacy(path):
    with open(path, "rb") as f:
        magic = pickle.load(f)
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path!r} is not a PyTorch checkpoint (no legacy magic number, not a zip).")
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        unpickler = _Unpickler(f)
        tree = unpickler.load()
        keys = pickle.load(f)
        storages = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            dtype = unpickler.storage_types[str(key)]
            storages[str(key)] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    return tree, storages


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("data.pkl")), None)
        if pkl is None:
            raise ValueError(f"{path!r} is a zip file but not a PyTorch checkpoint (no data.pkl).")
        prefix = pkl[: -len("data.pkl")]
        with archive.open(pkl) as f:
            unpickler = _Unpickler(f)
            tree = unpickler.load()
        storages = {
            key: np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype=dtype)
            for key, dtype in unpickler.storage_types.items()
        }
    return tree, storages


def _unwrap(tree):
    if isinstance(tree, (tuple, list)):  # (state_dict, metadata), as some training scripts save
        states = [part for part in tree if isinstance(part, dict) and any(isinstance(v, _TensorRef) for v in part.values())]
        if len(states) != 1:
            raise ValueError(f"Expected one state dict in the saved {type(tree).__name__}. Found {len(states)}.")
        tree = states[0]
    for key in ("state_dict", "model"):
        if isinstance(tree, dict) and isinstance(tree.get(key), dict):
            return tree[key]
    if not isinstance(tree, dict):
        raise ValueError(f"Expected a state dict (a mapping of names to tensors). Received: {type(tree).__name__}")
    return tree


def _materialize(ref, storages):
    storage = storages[ref.storage_key]
    itemsize = storage.dtype.itemsize
    array = np.lib.stride_tricks.as_strided(
        storage[ref.offset:], shape=ref.size, strides=[s * itemsize for s in ref.stride]
    ).copy()
    if storage.dtype == np.uint16:  # bfloat16 bits -> float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array
