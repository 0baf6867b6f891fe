"""Read PyTorch zip state dicts without PyTorch and without executing code.

A ``torch.save`` file of the "new" (zip, torch >= 1.6) format holds ``<prefix>/data.pkl`` (a pickle of
the state dict whose tensors refer to storages through persistent ids), one ``<prefix>/data/<key>``
entry of raw bytes per storage, ``<prefix>/version`` and, since torch 2.1, ``<prefix>/byteorder``.

The pickle is never given to :mod:`pickle`. :func:`_unpickle` runs its opcodes (decoded by
:func:`pickletools.genops`) on a small stack machine that knows only the data opcodes a state dict
needs, and resolves only the globals it needs (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2``, ``torch._utils._rebuild_parameter`` and the typed storage
classes) to markers created afresh for each load. So:

- any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) and any opcode that
  builds arbitrary objects (``INST``, ``OBJ``, ``NEWOBJ``, ``EXT*``) raise :class:`UnsafePickleError`
  before anything is called, so a hostile file cannot run code;
- ``BUILD`` (set an object's state) is accepted only on a state dict made by this load (torch stores the
  ``_metadata`` attribute that way); nothing one load sees is shared with the next, so a refused file
  cannot change how later files load;
- nothing is allocated from a declared size before it is checked: every member must be stored
  uncompressed (as ``torch.save`` writes them) and the storages' bytes may not exceed the file's size,
  a storage key must be a string, a tensor's strides may not alias (each element is read at most once)
  and must stay inside its storage, and the returned tensors may total at most ``max_bytes``. The peak
  memory of a load is therefore about ``2 x`` the file's size plus ``max_bytes``, plus at most
  :data:`MAX_PICKLE_BYTES` of pickle and the Python objects it describes.
"""

from __future__ import annotations

import math
import os
import pickle
import pickletools
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["load_state_dict", "UnsafePickleError", "CorruptCheckpointError", "UnsupportedCheckpointError",
           "STORAGE_DTYPES", "MAX_PICKLE_BYTES", "default_max_bytes"]


class UnsafePickleError(ValueError):
    """The checkpoint's pickle references a global or an operation that a tensor state dict never needs."""


class CorruptCheckpointError(ValueError):
    """The checkpoint is truncated, damaged or inconsistent."""


class UnsupportedCheckpointError(ValueError):
    """The checkpoint is in a serialisation format this reader does not implement."""


#: Typed storage class name -> NumPy dtype (little-endian base; byte order fixed at read time).
STORAGE_DTYPES: Mapping[str, np.dtype] = types.MappingProxyType({
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
})

#: Largest ``data.pkl`` accepted (a state dict's pickle takes about 120 bytes per tensor).
MAX_PICKLE_BYTES = 8 << 20

_FUNCTIONS = {("collections", "OrderedDict"): "OrderedDict",
              ("torch._utils", "_rebuild_tensor_v2"): "rebuild_tensor_v2",
              ("torch._utils", "_rebuild_parameter"): "rebuild_parameter"}
_ALLOWED_NAMES = tuple(sorted([f"{m}.{n}" for m, n in _FUNCTIONS] + [f"torch.{n}" for n in STORAGE_DTYPES]))


def default_max_bytes(file_size: int) -> int:
    """The default limit on the returned tensors' bytes: twice the file's size plus 16 MiB."""
    return 2 * file_size + (16 << 20)


class _Global:
    """A resolved global, made afresh by each load: what the pickle may call or name (no ``__dict__``)."""

    __slots__ = ("kind", "storage")

    def __init__(self, kind: str, storage: str | None = None) -> None:
        self.kind = kind
        self.storage = storage


class _StateDict(dict):
    """The ``OrderedDict`` of one load (insertion-ordered like a dict; no ``__dict__`` to write into)."""

    __slots__ = ()


@dataclass(frozen=True, eq=False, slots=True)
class _Storage:
    """A decoded storage of one load: a flat array of ``numel`` elements."""

    data: np.ndarray
    type_name: str


def _kind(obj: Any) -> str:
    """A short description of a pickled object for messages (never its repr, which can be huge)."""
    if isinstance(obj, _Global):
        return f"the global {obj.storage or obj.kind}"
    return type(obj).__name__


class _Load:
    """The state of one load: the archive, its members, the storages read and the bytes spent."""

    def __init__(self, path: Path, archive: zipfile.ZipFile, prefix: str, byteorder: str, file_size: int,
                 max_bytes: int) -> None:
        self.path = path
        self.archive = archive
        self.prefix = prefix
        self.byteorder = byteorder
        self.file_size = file_size
        self.max_bytes = max_bytes
        self.members = {info.filename: info for info in archive.infolist()}
        self.storages: dict[str, _Storage] = {}
        self.storage_ids: set[int] = set()
        self.storage_bytes = 0
        self.tensor_bytes = 0

    # -- errors ---------------------------------------------------------------------------------------
    def unsafe(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(
            f"{self.path}: {what}, which a tensor state dict never needs; refusing to load it (nothing was "
            f"executed). Only the globals {', '.join(_ALLOWED_NAMES)} are allowed. Do not trust this file; "
            f"if it is yours, re-save it as a plain state dict of tensors.")

    def corrupt(self, what: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(f"{self.path}: {what}; the file is damaged or not a torch state dict, "
                                      f"delete it and fetch it again")

    # -- globals --------------------------------------------------------------------------------------
    def find_class(self, module: Any, name: Any) -> _Global:
        if not (isinstance(module, str) and isinstance(name, str)):
            raise self.corrupt("a global named by non-strings")
        if (module, name) in _FUNCTIONS:
            return _Global(_FUNCTIONS[(module, name)])
        if module == "torch" and name in STORAGE_DTYPES:
            return _Global("storage_type", name)
        raise self.unsafe(f"the pickle references the global {module[:100]}.{name[:100]}")

    def call(self, func: Any, args: Any) -> Any:
        if not isinstance(func, _Global):
            raise self.unsafe(f"the pickle calls {_kind(func)}")
        if type(args) is not tuple:
            raise self.corrupt(f"{func.kind} called with {_kind(args)} instead of an argument tuple")
        if func.kind == "OrderedDict":
            if args:
                raise self.unsafe("the pickle builds an OrderedDict from arguments")
            return _StateDict()
        if func.kind == "rebuild_tensor_v2":
            if not 4 <= len(args) <= 7:
                raise self.corrupt(f"_rebuild_tensor_v2 called with {len(args)} arguments")
            return self.rebuild_tensor(*args[:4])
        if func.kind == "rebuild_parameter":
            if not 1 <= len(args) <= 3 or type(args[0]) is not np.ndarray:
                raise self.corrupt("_rebuild_parameter called without a tensor")
            return args[0]
        raise self.unsafe(f"the pickle calls {_kind(func)}")

    def build(self, inst: Any, state: Any) -> None:
        """``BUILD``: only torch's ``_metadata`` attribute of a state dict of this load, which is dropped."""
        if type(inst) is not _StateDict or type(state) is not dict or not all(type(k) is str for k in state):
            raise self.unsafe(f"the pickle sets the state of {_kind(inst)} (BUILD with {_kind(state)})")

    # -- storages and tensors -------------------------------------------------------------------------
    def persistent_load(self, pid: Any) -> _Storage:
        if not (type(pid) is tuple and len(pid) == 5 and type(pid[0]) is str and pid[0] == "storage"
                and isinstance(pid[1], _Global) and pid[1].kind == "storage_type"):
            raise self.unsafe(f"the pickle holds an unsupported persistent id ({_kind(pid)}; expected "
                              f"('storage', <typed storage>, key, location, numel))")
        _, stype, key, location, numel = pid  # the location ('cpu', 'cuda:0') is irrelevant here
        if type(key) is not str or type(location) is not str:
            raise self.corrupt(f"a storage key or location is a {_kind(key)}/{_kind(location)}, not a string")
        if type(numel) is not int or numel < 0:
            raise self.corrupt(f"storage {key[:64]} has a bad element count ({_kind(numel)})")
        known = self.storages.get(key)
        if known is not None:
            if known.type_name != stype.storage or known.data.size != numel:
                raise self.corrupt(f"storage {key[:64]} is declared twice with different types or sizes")
            return known
        entry = f"{self.prefix}/data/{key}"
        info = self.members.get(entry)
        if info is None:
            raise self.corrupt(f"storage entry {entry[:100]} is missing")
        self.check_member(info)
        dtype = STORAGE_DTYPES[stype.storage].newbyteorder("<" if self.byteorder == "little" else ">")
        need = numel * dtype.itemsize
        if info.file_size < need:
            raise self.corrupt(f"storage {entry} has {info.file_size} bytes, {need} expected "
                               f"({numel} x {stype.storage})")
        self.storage_bytes += info.file_size
        if self.storage_bytes > self.file_size:
            raise self.corrupt(f"the storages hold more bytes ({self.storage_bytes}) than the file "
                               f"({self.file_size}); its members overlap")
        raw = self.archive.read(info)  # checks the CRC
        if len(raw) < need:
            raise self.corrupt(f"storage {entry} has {len(raw)} bytes, {need} expected")
        data = np.frombuffer(raw, dtype=dtype, count=numel)
        if not dtype.isnative:
            data = data.astype(dtype.newbyteorder("="))
        storage = _Storage(data, stype.storage)
        self.storages[key] = storage
        self.storage_ids.add(id(storage))
        return storage

    def check_member(self, info: zipfile.ZipInfo) -> None:
        """Refuse compressed or encrypted members and sizes the file cannot hold, before reading."""
        if info.flag_bits & 0x1:
            raise UnsupportedCheckpointError(f"{self.path}: member {info.filename[:100]} is encrypted; "
                                             f"torch.save never encrypts, so this is not a torch checkpoint")
        if info.compress_type != zipfile.ZIP_STORED:
            raise UnsupportedCheckpointError(
                f"{self.path}: member {info.filename[:100]} is compressed (zip method {info.compress_type}); "
                f"torch.save stores every member uncompressed and this reader refuses compressed ones "
                f"(they can inflate to far more than the file's size). Re-save it with torch.save.")
        if info.file_size != info.compress_size or info.file_size > self.file_size:
            raise self.corrupt(f"member {info.filename[:100]} declares {info.file_size} bytes "
                               f"({info.compress_size} stored) in a file of {self.file_size}")

    def rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any) -> np.ndarray:
        """``torch._utils._rebuild_tensor_v2``: a strided view of the storage, copied, strides checked."""
        if not (type(storage) is _Storage and id(storage) in self.storage_ids):
            raise self.corrupt(f"a tensor record refers to {_kind(storage)}, not a storage of this file")
        if not (type(offset) is int and type(size) is tuple and type(stride) is tuple
                and all(type(s) is int for s in size) and all(type(s) is int for s in stride)):
            raise self.corrupt("a tensor record's offset, size or stride is not made of integers")
        if (len(size) != len(stride) or len(size) > 32 or offset < 0 or any(s < 0 for s in size)
                or any(s < 0 for s in stride)):
            raise self.corrupt(f"bad tensor geometry: offset {offset}, size {size}, stride {stride}")
        flat = storage.data
        numel = math.prod(size)
        if numel == 0:
            if any(s > flat.size for s in size):
                raise self.corrupt(f"an empty tensor of size {size} in a storage of {flat.size} elements")
            return np.empty(size, dtype=np.float32 if storage.type_name == "BFloat16Storage" else flat.dtype)
        extent = 1  # the dims of size > 1 by increasing stride must not overlap (no element read twice)
        for n, st in sorted(((n, st) for n, st in zip(size, stride) if n > 1), key=lambda p: p[1]):
            if st < extent:
                raise self.corrupt(f"tensor of size {size} has aliasing strides {stride} (elements would "
                                   f"be read more than once)")
            extent += (n - 1) * st
        last = offset + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= flat.size:
            raise self.corrupt(f"tensor of size {size}, stride {stride}, offset {offset} reaches element "
                               f"{last} of a storage of only {flat.size} elements")
        out_item = 4 if storage.type_name == "BFloat16Storage" else flat.dtype.itemsize
        self.tensor_bytes += numel * out_item
        if self.tensor_bytes > self.max_bytes:
            raise self.corrupt(f"the tensors would take more than the limit of {self.max_bytes} bytes "
                               f"(max_bytes); a state dict's tensors are about the size of its file")
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                               strides=tuple(st * item for st in stride), writeable=False)
        out = np.array(view, copy=True)
        if storage.type_name == "BFloat16Storage":  # bfloat16 = the upper 16 bits of a float32
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


_VALUES = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
           "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
           "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


def _unpickle(data: bytes, load: _Load) -> Any:
    """Run a pickle's data opcodes; globals, calls, persistent ids and BUILD go through ``load``."""
    stack: list[Any] = []
    marks: list[list[Any]] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        nonlocal stack
        items, stack = stack, marks.pop()
        return items

    def key_ok(k: Any) -> Any:
        if type(k) not in (str, int, bool):  # hashing nested tuples of shared references is exponential
            raise load.corrupt(f"a dict key is a {_kind(k)}, not a string or integer")
        return k

    for op, arg, _pos in pickletools.genops(data):
        name = op.name
        if name in _VALUES:
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            if int(arg) not in memo:
                raise load.corrupt(f"the pickle reads memo entry {int(arg)}, which was never written")
            stack.append(memo[int(arg)])
        elif name == "MARK":
            marks.append(stack)
            stack = []
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                raise load.corrupt("the pickle's stack underflows")
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name == "TUPLE":
            members = tuple(pop_mark())  # not stack.append(...): pop_mark rebinds stack
            stack.append(members)
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "LIST":
            items = pop_mark()
            stack.append(items)
        elif name == "APPEND":
            value = stack.pop()
            if type(stack[-1]) is not list:
                raise load.corrupt(f"APPEND to a {_kind(stack[-1])}")
            stack[-1].append(value)
        elif name == "APPENDS":
            items = pop_mark()
            if type(stack[-1]) is not list:
                raise load.corrupt(f"APPENDS to a {_kind(stack[-1])}")
            stack[-1].extend(items)
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name in ("DICT", "SETITEMS"):
            items = pop_mark()
            if len(items) % 2:
                raise load.corrupt(f"{name} with an odd number of items")
            target: Any = {} if name == "DICT" else stack[-1]
            if not isinstance(target, dict):
                raise load.corrupt(f"SETITEMS on a {_kind(target)}")
            for i in range(0, len(items), 2):
                target[key_ok(items[i])] = items[i + 1]
            if name == "DICT":
                stack.append(target)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            if not isinstance(stack[-1], dict):
                raise load.corrupt(f"SETITEM on a {_kind(stack[-1])}")
            stack[-1][key_ok(key)] = value
        elif name == "GLOBAL":
            module, _, qualname = arg.partition(" ")
            stack.append(load.find_class(module, qualname))
        elif name == "STACK_GLOBAL":
            qualname, module = stack.pop(), stack.pop()
            stack.append(load.find_class(module, qualname))
        elif name == "REDUCE":
            args = stack.pop()
            stack[-1] = load.call(stack[-1], args)
        elif name == "BUILD":
            state = stack.pop()
            load.build(stack[-1], state)
        elif name == "BINPERSID":
            stack.append(load.persistent_load(stack.pop()))
        elif name == "PERSID":
            stack.append(load.persistent_load(arg))
        elif name == "POP":
            if stack:
                stack.pop()
            else:
                pop_mark()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name == "PROTO":
            if not 0 <= arg <= pickle.HIGHEST_PROTOCOL:
                raise load.corrupt(f"unknown pickle protocol {arg}")
        elif name == "FRAME":
            pass
        elif name == "STOP":
            if len(stack) != 1:
                raise load.corrupt("the pickle ends with a malformed stack")
            return stack[0]
        else:  # INST, OBJ, NEWOBJ(_EX), EXT1/2/4, sets, out-of-band buffers
            raise load.unsafe(f"the pickle uses the opcode {name}")
    raise load.corrupt("the pickle ends without STOP")


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


def _read_member(load: _Load, name: str, limit: int) -> bytes:
    info = load.members[name]
    load.check_member(info)
    if info.file_size > limit:
        raise load.corrupt(f"member {name} has {info.file_size} bytes, more than the {limit} accepted")
    return load.archive.read(info)


def load_state_dict(path: str | os.PathLike, *, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Load a PyTorch zip-format state dict as ``{name: np.ndarray}`` (no torch, no code execution).

    ``max_bytes`` caps the returned tensors' total size (default :func:`default_max_bytes` of the file's
    size). Raises :class:`UnsafePickleError` for any global or operation a state dict does not need,
    :class:`CorruptCheckpointError` for a truncated, damaged or inconsistent file and
    :class:`UnsupportedCheckpointError` for the legacy (pre-1.6) torch format and compressed members;
    every message names the file.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
        file_size = os.fstat(f.fileno()).st_size
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
    limit = default_max_bytes(file_size) if max_bytes is None else int(max_bytes)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            prefix = _find_prefix(names, path)
            load = _Load(path, archive, prefix, "little", file_size, limit)
            if f"{prefix}/byteorder" in load.members:
                byteorder = _read_member(load, f"{prefix}/byteorder", 16).decode("ascii").strip()
                if byteorder not in ("little", "big"):
                    raise load.corrupt(f"unknown byteorder record {byteorder!r}")
                load.byteorder = byteorder
            pkl = _read_member(load, f"{prefix}/data.pkl", MAX_PICKLE_BYTES)
            result = _unpickle(pkl, load)
    except (UnsafePickleError, UnsupportedCheckpointError):
        raise
    except CorruptCheckpointError as e:
        if str(path) in str(e):
            raise
        raise CorruptCheckpointError(f"{path}: {e}; the file is damaged, delete it and fetch it again") from e
    except (zipfile.BadZipFile, zipfile.LargeZipFile, pickle.UnpicklingError, EOFError, OSError,
            ValueError, TypeError, IndexError, KeyError, AttributeError, UnicodeDecodeError,
            NotImplementedError, RuntimeError) as e:
        raise CorruptCheckpointError(f"{path}: corrupt or truncated checkpoint ({type(e).__name__}: "
                                     f"{str(e)[:300]}); delete it and fetch it again") from e
    if not isinstance(result, dict) or not all(
            type(k) is str and type(v) is np.ndarray for k, v in result.items()):
        raise CorruptCheckpointError(f"{path}: the pickle is not a state dict of tensors "
                                     f"(got {_kind(result)}); delete it and fetch it again")
    return dict(result)
