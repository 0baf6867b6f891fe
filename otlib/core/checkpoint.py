"""Checkpoints of training runs: one ``.npz`` file, written atomically, checksummed, read without pickle.

A checkpoint holds the leaves of a pytree (arrays only; typed PRNG keys are stored as their key data)
and a JSON record (step, logs, and a *fingerprint* of the run: method, configuration, steps, seeds,
key), plus a SHA-256 of every other member's bytes (``__sha256__``). :func:`restore` checks, in order:
that the file is a readable zip of ``.npy`` members, its checksum (any truncation, bit flip or edit of
the record), the fingerprint (so a run never resumes from the state of another configuration), the
number and shapes of the arrays against a template of the same structure (a freshly initialised state;
checked from the ``.npy`` headers before any array is read, so a file cannot make it allocate more than
the template), and the record's ``step`` (an integer in ``0..num_steps``). A damaged file raises one
:class:`CheckpointCorruptError` naming the file and what to do (delete it: the run restarts from step 0).
``allow_pickle=False`` throughout: nothing in the file is ever executed.

Files written before the checksum existed (no ``__sha256__`` member) are still read, with every other
check.

Why not Orbax: its checkpoints are directories written asynchronously, made for sharded multi-host
arrays; a training state here is a few MB on one host, and one atomic ``os.replace`` of one file is
simpler to reason about and to test.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import IO, Any, Optional

import jax
import numpy as np

from otlib.core.files import atomic_write

__all__ = ["save", "restore", "peek", "CheckpointMismatchError", "CheckpointCorruptError"]

FORMAT = 2
"""Version of the layout written by :func:`save` (1: no checksum)."""

_META = "__meta__.npy"
_SHA = "__sha256__.npy"


class CheckpointMismatchError(ValueError):
    """The checkpoint belongs to another run (configuration, seeds, steps or key differ)."""


class CheckpointCorruptError(ValueError):
    """The checkpoint is truncated, damaged, edited, or holds an impossible record."""


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        return {"__array__": np.asarray(value).tolist(), "dtype": str(np.asarray(value).dtype)}
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "__array__" in value:
            return np.asarray(value["__array__"], dtype=value["dtype"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _is_key(leaf: Any) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


class _Hashing:
    """A writable file that also feeds what is written to a hash."""

    def __init__(self, f: IO[bytes], hasher: Any) -> None:
        self.f, self.hasher = f, hasher

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        return self.f.write(data)


def save(path: str | os.PathLike, tree: Any, fingerprint: str, **extra: Any) -> None:
    """Write ``tree``'s leaves and ``extra`` (JSON-able, arrays allowed) to ``path`` atomically, checksummed.

    The ``__sha256__`` member is the SHA-256 of the bytes of all the members before it, in file order.
    """
    leaves = jax.tree.leaves(jax.device_get(tree))
    meta = json.dumps({"format": FORMAT, "fingerprint": fingerprint, "num_leaves": len(leaves),
                       "extra": _to_json(extra)})
    members = [(_META, np.array(meta))]
    members += [(f"leaf_{i:05d}.npy", np.asarray(jax.random.key_data(x) if _is_key(x) else x))
                for i, x in enumerate(leaves)]
    hasher = hashlib.sha256()
    with atomic_write(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        for name, array in members:
            with z.open(name, "w", force_zip64=True) as member:
                np.lib.format.write_array(_Hashing(member, hasher), array, allow_pickle=False)
        with z.open(_SHA, "w") as member:
            np.lib.format.write_array(member, np.array(hasher.hexdigest()), allow_pickle=False)


def _header(z: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` member's header, without reading its data."""
    with z.open(name) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"member {name} has .npy format {version}")
    if dtype.hasobject:
        raise ValueError(f"member {name} holds Python objects")
    return tuple(shape), dtype


def _array(z: zipfile.ZipFile, name: str) -> np.ndarray:
    with z.open(name) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _text(z: zipfile.ZipFile, name: str) -> str:
    shape, dtype = _header(z, name)
    if shape != () or dtype.kind != "U":
        raise ValueError(f"member {name} is not a string")
    return str(_array(z, name))


def _step_bound(fingerprint: str, max_step: Optional[int]) -> Optional[int]:
    """``max_step``, else the ``num_steps`` of a JSON fingerprint (as :func:`otlib.core.train.train` writes)."""
    if max_step is not None:
        return int(max_step)
    try:
        record = json.loads(fingerprint)
    except (ValueError, TypeError):
        return None
    steps = record.get("num_steps") if isinstance(record, dict) else None
    return steps if type(steps) is int else None


def peek(path: str | os.PathLike, fingerprint: str) -> dict[str, Any]:
    """The JSON record (``extra``) of the checkpoint at ``path`` without reading its arrays or checksum:
    enough to tell how far a run got (a sweep's status). :func:`restore` checks everything else.

    Raises :class:`CheckpointMismatchError` when another run wrote it, :class:`CheckpointCorruptError` when
    its record cannot be read.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(_text(z, _META))
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise CheckpointCorruptError(f"checkpoint {path} is damaged ({type(err).__name__}: {str(err)[:200]}); "
                                     f"delete it to start this run afresh from step 0") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("extra"), dict):
        raise CheckpointCorruptError(f"checkpoint {path} has no record; delete it to start afresh from step 0")
    if meta.get("fingerprint") != fingerprint:
        raise CheckpointMismatchError(f"checkpoint {path} was written by another run (other method, "
                                      f"configuration, seeds, steps or key)")
    extra = meta["extra"]
    return {k: v for k, v in extra.items() if k in ("step", "finished")}


def restore(path: str | os.PathLike, template: Any, fingerprint: str, *,
            max_step: Optional[int] = None) -> tuple[Any, dict[str, Any]]:
    """Read ``path`` into the structure of ``template``; return ``(tree, extra)``.

    ``extra["step"]``, where the record has one, must be an integer in ``0..max_step`` (by default the
    ``num_steps`` of a JSON ``fingerprint``; a record without ``step`` is refused when a bound applies).

    Raises:
      CheckpointCorruptError: the file is empty, truncated, bit-flipped, edited (checksum), or its record
        is impossible; the message names the file and says to delete it (the run restarts from step 0).
      CheckpointMismatchError: the file was written by another run, or its tree has another shape.
    """
    path = Path(path)

    def corrupt(why: str) -> CheckpointCorruptError:
        return CheckpointCorruptError(
            f"checkpoint {path} is damaged ({why}); delete it to start this run afresh from step 0 (a table "
            f"cell is then recomputed from its first step)")

    leaves, treedef = jax.tree.flatten(template)
    try:
        if path.stat().st_size == 0:
            raise corrupt("the file is empty")
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if _META not in names:
                raise corrupt("no __meta__ record: not a checkpoint written by otlib")
            if _SHA in names:  # checksum first: nothing below reads bytes that were not checked
                hasher = hashlib.sha256()
                for name in [n for n in z.namelist() if n != _SHA]:
                    with z.open(name) as f:
                        for block in iter(lambda: f.read(1 << 20), b""):
                            hasher.update(block)
                if hasher.hexdigest() != _text(z, _SHA):
                    raise corrupt("its checksum does not match its contents: bit-flipped, truncated or edited")
            meta = json.loads(_text(z, _META))
            if not (isinstance(meta, dict) and isinstance(meta.get("fingerprint"), str)
                    and type(meta.get("num_leaves")) is int and isinstance(meta.get("extra"), dict)):
                raise corrupt("its record lacks fingerprint, num_leaves or extra")
            if meta.get("format", 1) >= 2 and _SHA not in names:
                raise corrupt("its checksum is missing")
            if meta["fingerprint"] != fingerprint:
                raise CheckpointMismatchError(
                    f"checkpoint {path} was written by another run (other method, configuration, seeds, steps "
                    f"or key); delete it or choose another checkpoint path")
            if meta["num_leaves"] != len(leaves):
                raise CheckpointMismatchError(f"checkpoint {path} holds {meta['num_leaves']} arrays, the run "
                                              f"has {len(leaves)}")
            arrays = []
            for i, want in enumerate(leaves):
                name = f"leaf_{i:05d}.npy"
                if name not in names:
                    raise corrupt(f"array {i} is missing")
                shape, _ = _header(z, name)
                want_shape = np.shape(jax.random.key_data(want)) if _is_key(want) else np.shape(want)
                if shape != tuple(want_shape):
                    raise CheckpointMismatchError(f"checkpoint {path}: an array of shape {shape} where the run "
                                                  f"has {tuple(want_shape)}")
                arrays.append(_array(z, name))
    except (CheckpointCorruptError, CheckpointMismatchError):
        raise
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zipfile.LargeZipFile,
            NotImplementedError, RuntimeError) as err:
        raise corrupt(f"{type(err).__name__}: {str(err)[:200]}") from err
    extra = meta["extra"]
    bound = _step_bound(fingerprint, max_step)
    if "step" in extra or bound is not None:
        step = extra.get("step")
        if type(step) is not int or step < 0 or (bound is not None and step > bound):
            allowed = f"an integer in 0..{bound}" if bound is not None else "a non-negative integer"
            raise corrupt(f"its step {str(step)[:40]} is not {allowed}")
    try:
        extra = _from_json(extra)
    except (ValueError, TypeError, KeyError) as err:
        raise corrupt(f"its record holds a bad array ({type(err).__name__})") from err
    restored = []
    for want, got in zip(leaves, arrays):
        if _is_key(want):
            got = jax.random.wrap_key_data(got, impl=jax.random.key_impl(want))
        restored.append(jax.numpy.asarray(got))
    return jax.tree.unflatten(treedef, restored), extra
