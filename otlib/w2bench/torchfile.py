"""Read PyTorch zip state dicts without PyTorch and without executing code (digest §7).

A ``torch.save`` file of the "new" (zip, torch >= 1.6) format holds ``<prefix>/data.pkl`` (a pickle of
the state dict whose tensors refer to storages through persistent ids), one ``<prefix>/data/<key>``
entry of raw bytes per storage, ``<prefix>/version`` and, since torch 2.1, ``<prefix>/byteorder``.

The pickle is read by :class:`_StateDictUnpickler`, whose ``find_class`` resolves **only** the handful
of globals a tensor state dict needs (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter`` and the typed storage classes, all mapped to local stand-ins).
Every other global (``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) raises
:class:`UnsafePickleError` before anything is called, so a hostile file cannot run code.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_state_dict", "UnsafePickleError", "CorruptCheckpointError", "UnsupportedCheckpointError",
           "STORAGE_DTYPES"]


class UnsafePickleError(ValueError):
    """The checkpoint's pickle references a global that a plain tensor state dict never needs."""


class CorruptCheckpointError(ValueError):
    """The checkpoint is truncated, damaged or inconsistent."""


class UnsupportedCheckpointError(ValueError):
    """The checkpoint is in a serialisation format this reader does not implement."""


#: Typed storage class name -> NumPy dtype (little-endian base; byte order fixed at read time).
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # converted to float32 after reading
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.<Name>Storage``: only its name and element dtype are used."""

    name: str
    dtype: np.dtype


@dataclass(frozen=True)
class _Storage:
    """A decoded storage: a flat array of ``numel`` elements."""

    data: np.ndarray
    bfloat16: bool


def _rebuild_tensor_v2(storage: _Storage, storage_offset: int, size: tuple, stride: tuple,
                       requires_grad: bool = False, backward_hooks: Any = None,
                       metadata: Any = None) -> np.ndarray:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: a strided view of the storage, copied."""
    if not isinstance(storage, _Storage):
        raise CorruptCheckpointError(f"tensor record refers to {type(storage).__name__}, not a storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    offset = int(storage_offset)
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise CorruptCheckpointError(f"bad tensor geometry: offset {offset}, size {size}, stride {stride}")
    flat = storage.data
    if 0 in size:
        out = np.empty(size, dtype=flat.dtype)
    else:
        last = offset + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= flat.size:
            raise CorruptCheckpointError(
                f"tensor of size {size}, stride {stride}, offset {offset} reaches element {last} of a "
                f"storage of only {flat.size} elements")
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                               strides=tuple(st * item for st in stride), writeable=False)
        out = np.array(view, copy=True)
    if storage.bfloat16:  # bfloat16 = the upper 16 bits of a float32
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _rebuild_parameter(data: np.ndarray, requires_grad: bool = False, backward_hooks: Any = None) -> np.ndarray:
    """Stand-in for ``torch._utils._rebuild_parameter``: a parameter is just its tensor here."""
    return data


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }
    for name, dtype in STORAGE_DTYPES.items():
        allowed[("torch", name)] = _StorageType(name, dtype)
    return allowed


_ALLOWED = _allowed_globals()


class _StateDictUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the whitelisted globals and reads storages from the archive."""

    def __init__(self, file: io.BytesIO, archive: zipfile.ZipFile, prefix: str, byteorder: str,
                 source: Path) -> None:
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._byteorder = byteorder
        self._source = source
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: the pickle references the global {module}.{name}, which a tensor state "
                f"dict never needs; refusing to load it (nothing was executed). Only "
                f"{', '.join(sorted(f'{m}.{n}' for m, n in _ALLOWED))} are allowed. Do not trust this "
                f"file; if it is yours, re-save it as a plain state dict of tensors.") from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(f"{self._source}: unsupported persistent id {pid!r} (expected "
                                    f"('storage', <typed storage>, key, location, numel))")
        _, stype, key, _location, numel = pid  # the location ('cpu', 'cuda:0') is irrelevant here
        key, numel = str(key), int(numel)
        if key in self._storages:
            return self._storages[key]
        entry = f"{self._prefix}/data/{key}"
        try:
            raw = self._archive.read(entry)
        except KeyError:
            raise CorruptCheckpointError(f"{self._source}: storage entry {entry} is missing") from None
        dtype = stype.dtype.newbyteorder("<" if self._byteorder == "little" else ">")
        need = numel * dtype.itemsize
        if len(raw) < need:
            raise CorruptCheckpointError(f"{self._source}: storage {entry} has {len(raw)} bytes, "
                                         f"{need} expected ({numel} x {stype.name})")
        data = np.frombuffer(raw, dtype=dtype, count=numel).astype(dtype.newbyteorder("="))
        storage = _Storage(data, bfloat16=stype.name == "BFloat16Storage")
        self._storages[key] = storage
        return storage


def _find_prefix(names: list[str], source: Path) -> str:
    """The archive prefix: the folder holding ``data.pkl`` (``archive`` or the file stem)."""
    found = [n[: -len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(found) != 1:
        raise CorruptCheckpointError(f"{source}: expected exactly one '<prefix>/data.pkl' in the zip archive, "
                                     f"found {len(found)}; this is not a torch.save checkpoint")
    return found[0]


def _is_tar(path: Path) -> bool:
    """The oldest torch format was a tar archive (``ustar`` magic at byte 257)."""
    with open(path, "rb") as f:
        f.seek(257)
        return f.read(5) == b"ustar"


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a PyTorch zip-format state dict as ``{name: np.ndarray}`` (no torch, no code execution).

    Raises :class:`UnsafePickleError` for any non-whitelisted global, :class:`CorruptCheckpointError`
    for a truncated/damaged file and :class:`UnsupportedCheckpointError` for the legacy (pre-1.6)
    torch format; every message names the file.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) < 4:
        raise CorruptCheckpointError(f"{path}: file is empty or truncated ({len(head)} bytes); "
                                     f"delete it and fetch it again")
    if head != b"PK\x03\x04":
        if head[:1] == b"\x80" or _is_tar(path):
            raise UnsupportedCheckpointError(
                f"{path}: this is the legacy (pre-1.6, non-zip) torch.save format, which is not supported. "
                f"Re-save the state dict with torch >= 1.6 (torch.save(state_dict, path) writes the zip "
                f"format).")
        raise CorruptCheckpointError(f"{path}: not a torch zip checkpoint (starts with {head!r}); the file "
                                     f"is corrupt or of another kind; delete it and fetch it again")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            prefix = _find_prefix(names, path)
            byteorder = "little"
            if f"{prefix}/byteorder" in names:
                byteorder = archive.read(f"{prefix}/byteorder").decode("ascii").strip()
                if byteorder not in ("little", "big"):
                    raise CorruptCheckpointError(f"{path}: unknown byteorder record {byteorder!r}")
            pkl = archive.read(f"{prefix}/data.pkl")
            result = _StateDictUnpickler(io.BytesIO(pkl), archive, prefix, byteorder, path).load()
    except (UnsafePickleError, UnsupportedCheckpointError):
        raise
    except CorruptCheckpointError as e:
        if str(path) in str(e):
            raise
        raise CorruptCheckpointError(f"{path}: {e}; the file is damaged, delete it and fetch it again") from e
    except (zipfile.BadZipFile, zipfile.LargeZipFile, pickle.UnpicklingError, EOFError, OSError,
            ValueError, TypeError, IndexError, KeyError, AttributeError, UnicodeDecodeError) as e:
        raise CorruptCheckpointError(f"{path}: corrupt or truncated checkpoint ({type(e).__name__}: {e}); "
                                     f"delete it and fetch it again") from e
    if not isinstance(result, dict) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in result.items()):
        raise CorruptCheckpointError(f"{path}: the pickle is not a state dict of tensors "
                                     f"(got {type(result).__name__})")
    return dict(result)
