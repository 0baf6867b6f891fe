"""The papers' tables as resumable cells: run each (row, D) once, store it, format mean ± std.

A *cell* is one configuration (a table row) at one dimension, trained for all its seeds at once by the
driver (seeds vmapped). :func:`run_cell` stores each finished cell as JSON under the notebook's results
folder and checkpoints an unfinished one, so a re-run after an interruption skips finished cells and
resumes the unfinished one from its last chunk. :func:`format_cell` prints a cell the way the papers do:
``mean ± std`` of the final forward L2-UVP over seeds, ">100" for a diverged run (Amos 2023's rule).

Published values carry their provenance tag from the digests: ``[poster]`` read from the official
poster, ``[S]`` second-hand (quoted by a later paper, not checked against the original PDF).
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import jax
import numpy as np

from otlib.core.files import atomic_write_text
from otlib.core.method import Method
from otlib.core.train import train

__all__ = ["run_cell", "store_cell", "cell_matches", "load_cell", "cell_path", "format_cell", "mean_std", "PUBLISHED_HD"]

PUBLISHED_HD: dict[str, dict] = {
    "ENOT": {"source": "Buzun et al. (2024), Table 2 [S]",
             "values": {2: 0.02, 4: 0.03, 8: 0.14, 16: 0.24, 32: 0.67, 64: 0.56, 128: 0.30, 256: 0.51}},
    "W2OT best": {"source": "Amos (2023) best row, as reprinted by Buzun et al. (2024) [S]",
                  "values": {2: 0.03, 4: 0.22, 8: 0.60, 16: 0.80, 32: 2.09, 64: 2.08, 128: 0.67, 256: 0.65}},
    "W2GN (Korotin)": {"source": "Korotin et al. (2021) row ⌊W2⌉ [poster]",
                       "values": {2: 0.1, 4: 0.7, 8: 2.6, 16: 3.3, 32: 6.0, 64: 7.2, 128: 2.0, 256: 2.7}},
    "MM (Korotin)": {"source": "Korotin et al. (2021) row ⌊MM⌉ [poster]",
                     "values": {2: 0.1, 4: 0.3, 8: 0.9, 16: 2.2, 32: 4.2, 64: 3.2, 128: 3.1, 256: 4.1}},
    "linear": {"source": "Korotin et al. (2021) row ⌊L⌉ [poster]",
               "values": {2: 14.1, 4: 14.9, 8: 27.3, 16: 41.6, 32: 55.3, 64: 63.9, 128: 63.6, 256: 67.4}},
    "identity": {"source": "Korotin et al. (2021) row ⌊ID⌉ [poster]",
                 "values": {2: 32.7, 4: 42.0, 8: 58.6, 16: 87.0, 32: 121.0, 64: 137.0, 128: 145.0, 256: 153.0}},
}
"""HD benchmark forward L2-UVP (%) published per row and D (digests w2bench §5.1, enot §5.1).

Amos (2023)'s own per-row cells are not in the digests (marked [U] there): the notebook shows the best
W2OT row as ENOT reprints it, and says so.
"""

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def cell_path(folder: Path, row: str, dim: int) -> Path:
    """``folder/<row>__D<dim>.json``, the row name made file-safe."""
    return Path(folder) / f"{_SAFE.sub('_', row).strip('_')}__D{dim}.json"


def load_cell(folder: Path, row: str, dim: int) -> Optional[dict]:
    """The stored record of a finished cell, or ``None``."""
    path = cell_path(folder, row, dim)
    return json.loads(path.read_text()) if path.exists() else None


def store_cell(folder: Path, row: str, dim: int, record: dict) -> dict:
    """Write a finished cell's record (``row``, ``dim``, ``steps``, ``seeds``, ``values`` per seed, times)."""
    record = {"row": row, "dim": dim, **record}
    atomic_write_text(cell_path(folder, row, dim), json.dumps(record, indent=1) + "\n")
    return record


def cell_matches(stored: Optional[dict], steps: int, seeds: int, tag: str) -> bool:
    """Whether a stored record was made with these steps, seeds and configuration tag."""
    return (stored is not None and stored["steps"] == steps and stored["seeds"] == seeds
            and stored.get("tag", "") == tag)


def run_cell(folder: Path, row: str, dim: int, build: Callable[[], Method], *, steps: int, seeds: int,
             key: jax.Array, metric: str = "l2_uvp", chunk_size: int = 1000, eval_every: Optional[int] = None,
             tag: str = "", progress: bool = True) -> dict:
    """Train one table cell (all seeds at once) unless it is already stored; return its record.

    ``build()`` makes the method (only called when the cell must run). The run checkpoints after every
    chunk to ``<cell>.ckpt.npz``; the finished record (final ``metric`` per seed, NaN for diverged seeds,
    times) is written atomically to ``<cell>.json`` and the checkpoint removed. A stored record made with
    other ``steps``, ``seeds`` or ``tag`` (a description of everything else the cell depends on, such as
    its budget) is recomputed, never silently reused.
    """
    stored = load_cell(folder, row, dim)
    if cell_matches(stored, steps, seeds, tag):
        return stored
    path = cell_path(folder, row, dim)
    ckpt = path.with_suffix(".ckpt.npz")
    if stored is not None and ckpt.exists():
        ckpt.unlink()  # the stored record and its checkpoint belong to another budget
    method = build()
    start = time.perf_counter()
    result = train(method, key, steps, num_seeds=seeds, chunk_size=chunk_size, eval_every=eval_every,
                   checkpoint=ckpt, progress=progress)
    values = result.final(metric)
    record = store_cell(folder, row, dim, {
        "steps": steps, "seeds": seeds, "tag": tag, "metric": metric,
        "values": [None if math.isnan(v) else float(v) for v in values],
        "diverged": result.diverged.tolist(),
        "train_s": result.train_s, "compile_s": result.compile_s, "wall_s": time.perf_counter() - start,
        "steps_per_s": result.steps_per_s, "ms_per_step": 1e3 * result.train_s / max(result.steps, 1),
        "evals": {k: np.asarray(v).tolist() for k, v in result.evals.items()},
    })
    ckpt.unlink(missing_ok=True)
    return record


def mean_std(values: Sequence[Optional[float]]) -> tuple[float, float, int]:
    """Mean and population std (numpy's default, as Amos's analysis script) of the non-diverged values."""
    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if finite.size == 0:
        return math.nan, math.nan, 0
    return float(finite.mean()), float(finite.std()), int(finite.size)


def format_cell(values: Sequence[Optional[float]], *, digits: int = 2) -> str:
    """``"mean ± std"`` over seeds; ``">100"`` when every seed diverged or the mean exceeds 100 (Amos 2023);
    a trailing ``"†k"`` counts seeds that diverged while others did not."""
    mean, std, ok = mean_std(values)
    if ok == 0 or mean > 100:
        return ">100"
    text = f"{mean:.{digits}f} ± {std:.{digits}f}"
    lost = len(values) - ok
    return text + (f" †{lost}" if lost else "")
