"""The papers' tables as resumable cells: run each (row, D) once, store it, format mean ± std.

A *cell* is one configuration (a table row) at one dimension, trained for all its seeds at once by the
driver (seeds vmapped). :func:`run_cell` stores each finished cell as JSON under the notebook's results
folder and checkpoints an unfinished one, so a re-run after an interruption skips finished cells and
resumes the unfinished one from its last chunk. :func:`format_cell` prints a cell the way the papers do:
``mean ± std`` of the final forward L2-UVP over seeds, ">100" for a diverged run (Amos 2023's rule).

A stored record carries a SHA-256 of its contents and is validated on load (:func:`cell_problem`: the
checksum, the row and D it belongs to, and the type of every field); an invalid one (truncated, edited,
written by hand or by an older otlib without a checksum) is reported by name with an
:class:`InvalidCellWarning` and recomputed, never reused. Each cell has a lock (``<cell>.lock``, an
``fcntl.flock`` that the system releases when its process ends, even by SIGKILL): a second run reaching a
cell that another run is computing stops at once with :class:`CellBusyError` naming the cell and the
other process (or, with ``wait=True``, waits for it), so two runs never write one cell or its checkpoint
at once. The lock files stay (removing one while another process waits on it would let two hold it).

Published values carry a provenance tag: ``[poster]`` read from the official poster of Korotin et al.
(2021) (``poster/W2B_poster.svg`` in ``iamalexkorotin/Wasserstein2Benchmark``), ``[S]``
second-hand (quoted by a later paper, not checked against the original PDF).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import jax
import numpy as np

from otlib.core.checkpoint import CheckpointMismatchError
from otlib.core.files import atomic_write_text
from otlib.core.method import Method
from otlib.core.summary import format_mean_std, mean_std
from otlib.core.train import train
from otlib.w2bench.published import PUBLISHED_HD

__all__ = ["run_cell", "store_cell", "cell_matches", "load_cell", "cell_path", "cell_problem", "cell_lock",
           "CellBusyError", "InvalidCellWarning", "format_cell", "mean_std", "PUBLISHED_HD"]


class CellBusyError(RuntimeError):
    """Another run holds the cell's lock (it is computing or storing that cell now)."""


class InvalidCellWarning(UserWarning):
    """A stored cell record failed validation; it is not used and the cell is recomputed."""


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def cell_path(folder: Path, row: str, dim: int) -> Path:
    """``folder/<row>__D<dim>.json``, the row name made file-safe."""
    return Path(folder) / f"{_SAFE.sub('_', row).strip('_')}__D{dim}.json"


_CHECKSUM = "sha256"
_OPTIONAL_NUMBERS = ("train_s", "compile_s", "wall_s", "steps_per_s", "ms_per_step")


def _record_hash(record: dict) -> str:
    """SHA-256 of a record without its checksum field (canonical JSON: sorted keys, no spaces)."""
    body = {k: v for k, v in record.items() if k != _CHECKSUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _is_int(x: Any) -> bool:
    return type(x) is int


def _is_number(x: Any) -> bool:
    return type(x) in (int, float)


def cell_problem(record: Any, row: str, dim: int) -> Optional[str]:
    """Why ``record`` (as read from ``row``'s file at ``dim``) is not a valid stored cell, or ``None``."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    missing = [k for k in ("row", "dim", "steps", "seeds", "values", _CHECKSUM) if k not in record]
    if missing:
        return (f"no {_CHECKSUM} (written by hand or by an older otlib)" if missing == [_CHECKSUM]
                else f"missing {', '.join(missing)}")
    if record[_CHECKSUM] != _record_hash(record):
        return "its checksum does not match its contents (edited or damaged)"
    if record["row"] != row or record["dim"] != dim or not _is_int(record["dim"]):
        return f"it is the record of row {str(record['row'])[:80]!r}, D={str(record['dim'])[:20]}"
    if not (_is_int(record["steps"]) and record["steps"] >= 0 and _is_int(record["seeds"]) and record["seeds"] >= 1):
        return "steps or seeds is not a non-negative integer"
    values = record["values"]
    if not (isinstance(values, list) and len(values) == record["seeds"]
            and all(v is None or _is_number(v) for v in values)):
        return f"values is not a list of {record['seeds']} numbers or nulls"
    diverged = record.get("diverged", [False] * record["seeds"])
    if not (isinstance(diverged, list) and len(diverged) == record["seeds"] and all(type(d) is bool for d in diverged)):
        return f"diverged is not a list of {record['seeds']} booleans"
    for name in ("tag", "metric"):
        if name in record and not isinstance(record[name], str):
            return f"{name} is not a string"
    for name in _OPTIONAL_NUMBERS:
        if record.get(name) is not None and not (_is_number(record[name]) and not record[name] < 0):
            return f"{name} is not a non-negative number"
    for name in ("evals", "history"):
        if name in record and not isinstance(record[name], dict):
            return f"{name} is not an object"
    return None


def load_cell(folder: Path, row: str, dim: int) -> Optional[dict]:
    """The stored, valid record of a finished cell, or ``None``.

    A record that fails :func:`cell_problem` (or is not JSON) gives an :class:`InvalidCellWarning`
    naming the file and the reason, and ``None``: the caller recomputes the cell.
    """
    path = cell_path(folder, row, dim)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        problem = cell_problem(record, row, dim)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        problem = f"unreadable: {type(err).__name__}: {str(err)[:120]}"
    if problem is not None:
        warnings.warn(f"{path}: invalid cell record ({problem}); it is not used and the cell is recomputed",
                      InvalidCellWarning, stacklevel=2)
        return None
    return {k: v for k, v in record.items() if k != _CHECKSUM}


def store_cell(folder: Path, row: str, dim: int, record: dict) -> dict:
    """Write a finished cell's record (``row``, ``dim``, ``steps``, ``seeds``, ``values`` per seed, times).

    The file gets a checksum; it is written atomically under the cell's lock (waiting for another
    writer), and the record is returned as :func:`load_cell` will read it.
    """
    record = {"row": row, "dim": dim, **{k: v for k, v in record.items() if k != _CHECKSUM}}
    with cell_lock(folder, row, dim, wait=True):
        atomic_write_text(cell_path(folder, row, dim),
                          json.dumps({**record, _CHECKSUM: _record_hash(record)}, indent=1) + "\n")
    return record


_HELD: dict[tuple[Path, int], int] = {}  # (lock file, thread) -> depth: the locks this process holds
_HELD_GUARD = threading.Lock()


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {int(info['pid'])} on {str(info['host'])[:64]}, since {str(info['since'])[:32]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def cell_lock(folder: Path, row: str, dim: int, *, wait: bool = False) -> Iterator[None]:
    """Hold the cell's lock (``<cell>.lock``, ``fcntl.flock``) for the block; re-entrant in one thread.

    If another process (or thread) holds it: raise :class:`CellBusyError` naming the cell and the holder,
    or with ``wait=True`` wait for it (saying so on stderr).
    """
    path = cell_path(folder, row, dim).with_suffix(".lock")
    key = (path.absolute(), threading.get_ident())
    with _HELD_GUARD:
        if key in _HELD:
            _HELD[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise CellBusyError(
                    f"cell {row!r} D={dim} ({cell_path(folder, row, dim)}) is being computed by another run "
                    f"({holder}); two runs never write one cell at once. Wait for that run to finish, or give "
                    f"this one another results folder.") from None
            print(f"cell {row!r} D={dim}: waiting for the run that holds {path} ({holder})", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
        with _HELD_GUARD:
            _HELD[key] = 1
        try:
            yield
        finally:
            with _HELD_GUARD:
                del _HELD[key]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def cell_matches(stored: Optional[dict], steps: int, seeds: int, tag: str) -> bool:
    """Whether a stored record was made with these steps, seeds and configuration tag."""
    return (stored is not None and stored["steps"] == steps and stored["seeds"] == seeds
            and stored.get("tag", "") == tag)


def run_cell(folder: Path, row: str, dim: int, build: Callable[[], Method], *, steps: int, seeds: int,
             key: jax.Array, metric: str = "l2_uvp", chunk_size: int = 1000, eval_every: Optional[int] = None,
             tag: str = "", progress: bool = True, wait: bool = False) -> dict:
    """Train one table cell (all seeds at once) unless it is already stored; return its record.

    ``build()`` makes the method (only called when the cell must run). The run checkpoints after every
    chunk to ``<cell>.ckpt.npz``; the finished record (final ``metric`` per seed, NaN for diverged seeds,
    times, and the training curves: ``history``, the loss per chunk, and ``evals``) is written atomically to ``<cell>.json`` and the checkpoint removed. A stored record made with
    other ``steps``, ``seeds`` or ``tag`` (a description of everything else the cell depends on, such as
    its budget), or an invalid one, is recomputed, never silently reused; so is a checkpoint of another
    configuration of the cell. The whole call holds the cell's lock (:func:`cell_lock`): if another run
    holds it, :class:`CellBusyError` at once, or with ``wait=True`` wait for it.
    """
    with cell_lock(folder, row, dim, wait=wait):
        return _run_cell_locked(folder, row, dim, build, steps=steps, seeds=seeds, key=key, metric=metric,
                                chunk_size=chunk_size, eval_every=eval_every, tag=tag, progress=progress)


def _run_cell_locked(folder: Path, row: str, dim: int, build: Callable[[], Method], *, steps: int, seeds: int,
                     key: jax.Array, metric: str, chunk_size: int, eval_every: Optional[int], tag: str,
                     progress: bool) -> dict:
    stored = load_cell(folder, row, dim)
    path = cell_path(folder, row, dim)
    ckpt = path.with_suffix(".ckpt.npz")
    if cell_matches(stored, steps, seeds, tag):
        ckpt.unlink(missing_ok=True)  # left by a run stopped between storing the cell and removing it
        return stored
    if stored is not None and ckpt.exists():
        ckpt.unlink()  # the stored record and its checkpoint belong to another budget
    method = build()
    start = time.perf_counter()

    def run():
        return train(method, key, steps, num_seeds=seeds, chunk_size=chunk_size, eval_every=eval_every,
                     checkpoint=ckpt, progress=progress)

    try:
        result = run()
    except CheckpointMismatchError as err:
        warnings.warn(f"{err}: it is another configuration of cell {row!r} D={dim}; discarding it and "
                      f"computing the cell from step 0", InvalidCellWarning, stacklevel=3)
        ckpt.unlink(missing_ok=True)
        result = run()
    values = result.final(metric)
    record = store_cell(folder, row, dim, {
        "steps": steps, "seeds": seeds, "tag": tag, "metric": metric,
        "values": [None if math.isnan(v) else float(v) for v in values],
        "diverged": result.diverged.tolist(),
        "train_s": result.train_s, "compile_s": result.compile_s, "wall_s": time.perf_counter() - start,
        "steps_per_s": result.steps_per_s, "ms_per_step": 1e3 * result.train_s / max(result.steps, 1),
        "evals": {k: np.asarray(v).tolist() for k, v in result.evals.items()},
        "history": {k: np.asarray(v).tolist() for k, v in result.history.items()},
    })
    ckpt.unlink(missing_ok=True)
    return record


def format_cell(values: Sequence[Optional[float]], *, digits: int = 2) -> str:
    """``"mean ± std"`` over seeds; ``">100"`` when every seed diverged or the mean exceeds 100 (Amos 2023);
    a trailing ``"†k"`` counts seeds that diverged while others did not."""
    mean, _, ok = mean_std(values)
    if ok == 0 or mean > 100:
        return ">100"
    text = format_mean_std(values, fmt=f".{digits}f")
    lost = len(values) - ok
    return text + (f" †{lost}" if lost else "")
