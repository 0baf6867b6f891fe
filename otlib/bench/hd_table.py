"""The Wasserstein-2 benchmark HD table of Amos (2023) and Buzun et al. (2024), as resumable cells.

Rows (the papers' names):

* ``W2OT <potential>: <amortization> & <solver>``: Amos (2023), for the ICNN and the non-convex MLP
  ("NN") potential and the five amortization rows of his tables (:data:`otlib.amos2023.amortization.ROWS`),
  at his HD settings (:class:`otlib.amos2023.w2ot.W2OTConfig` defaults, widths [2b, 2b, b]);
* ``ENOT``: Buzun et al. (2024) at their HD settings (:func:`otlib.enot2024.enot.paper_hd_config`);
* ``ENOT (OTT-JAX 0.6.0)``: the peer, OTT-JAX's ``ExpectileNeuralDual`` with its defaults, when the
  ``peers`` extra is installed (trained seed after seed by its own loop);
* the baselines ``identity`` and ``linear`` (no training).

Columns are dimensions D. Each (row, D) cell trains all its seeds at once with the driver and is stored
by :mod:`otlib.bench.cells` as soon as it finishes, so a re-run skips finished cells and resumes an
interrupted one from its checkpoint. :func:`l2_uvp_table`, :func:`runtime_table` and
:func:`published_table` turn the stored records into the papers' tables.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path
from typing import Callable, Iterable

import jax
import numpy as np
import pandas as pd

from otlib import w2bench
from otlib.amos2023 import amortization
from otlib.bench import cells
from otlib.w2bench import baselines as w2bench_baselines
from otlib.core.method import Method
from otlib.enot2024 import enot as enot_method
from otlib.amos2023 import w2ot as w2ot_method
from otlib.core.progress import progress_bar

__all__ = ["Budget", "ROWS", "PEER_ROW", "BASELINE_ROWS", "w2ot_row_name", "run_table", "table_cell",
           "cell_signature", "l2_uvp_table", "runtime_table", "published_table", "peer_available", "plot_l2_uvp"]

PEER_ROW = "ENOT (OTT-JAX 0.6.0)"
BASELINE_ROWS = ("linear", "identity")
CURVE_POINTS = 10
"""Evaluations per trained cell (the L2-UVP training curve); the last one is the cell's value."""


@dataclasses.dataclass(frozen=True)
class Budget:
    """Training budgets, seeds and evaluation size of a table run; defaults are the papers'.

    W2OT: 250k steps after 10k identity-pretraining steps, 10 seeds (Amos 2023). ENOT: 200k steps, 5
    seeds, MLP [512]*3 (Buzun et al. 2024, Table 4: that width is given for D >= 64; smaller ones for
    lower D are not reproduced here, so one width serves every D). Batch 1024 for both.
    """

    w2ot_steps: int = 250_000
    w2ot_pretrain_steps: int = 10_001
    w2ot_seeds: int = 10
    enot_steps: int = 200_000
    enot_seeds: int = 5
    batch_size: int = 1024
    enot_hidden: tuple[int, ...] = (512, 512, 512)
    n_eval: int = 2 ** 14
    chunk_size: int = 1000


def w2ot_row_name(potential: str, amortization_row: str) -> str:
    """``"W2OT NN: Regression & L-BFGS"`` for (``"nn"``, ``"regression_lbfgs"``)."""
    return f"W2OT {potential.upper()}: {amortization.row(amortization_row).label}"


def _w2ot_builder(potential: str, row: str) -> Callable[[object, Budget], Method]:
    def build(bench, budget: Budget) -> Method:
        config = w2ot_method.for_device(w2ot_method.W2OTConfig(
            potential=potential, amortization=row, num_steps=budget.w2ot_steps,
            pretrain_steps=budget.w2ot_pretrain_steps, batch_size=budget.batch_size))
        return w2ot_method.w2ot(config, bench.sample_source, bench.sample_target, dim=bench.dim,
                                eval_fn=w2bench.evaluator(bench, w2ot_method.transport, w2ot_method.inverse,
                                                          n=budget.n_eval, n_inverse=1024))
    return build


def _enot_builder(bench, budget: Budget) -> Method:
    config = enot_method.paper_hd_config(num_steps=budget.enot_steps, hidden=tuple(budget.enot_hidden),
                                         batch_size=budget.batch_size)
    return enot_method.enot(config, bench.sample_source, bench.sample_target, dim=bench.dim,
                            eval_fn=w2bench.evaluator(bench, enot_method.transport, enot_method.inverse, n=budget.n_eval))


_AMOS_ROWS = ("cycle_none", "objective_none", "cycle_lbfgs", "objective_lbfgs", "regression_lbfgs")
ROWS: dict[str, Callable[[object, Budget], Method]] = {
    **{w2ot_row_name(p, r): _w2ot_builder(p, r) for p in ("icnn", "nn") for r in _AMOS_ROWS},
    "ENOT": _enot_builder,
}
"""Trainable rows by name: the ten W2OT rows of Amos (2023) and ENOT."""


def _steps_and_seeds(row: str, budget: Budget) -> tuple[int, int]:
    if row.startswith("ENOT"):
        return budget.enot_steps, budget.enot_seeds
    return budget.w2ot_steps, budget.w2ot_seeds


def cell_signature(row: str, budget: Budget) -> dict:
    """What a stored cell of ``row`` must have been made with: ``steps``, ``seeds`` and ``tag``."""
    steps, seeds = _steps_and_seeds(row, budget)
    return {"steps": steps, "seeds": seeds, "tag": repr(budget)}


def peer_available() -> bool:
    """Whether OTT-JAX's neural solvers import (the ``peers`` extra)."""
    try:
        from ott.neural.methods.expectile_neural_dual import ExpectileNeuralDual  # noqa: F401
    except ImportError:
        return False
    return True


def _run_peer(folder: Path, dim: int, bench, budget: Budget) -> dict:
    from otlib.bench.enot import race_peer

    seeds = budget.enot_seeds
    with cells.cell_lock(folder, PEER_ROW, dim):  # one writer per cell, as run_cell
        stored = cells.load_cell(folder, PEER_ROW, dim)
        if cells.cell_matches(stored, budget.enot_steps, seeds, repr(budget)):
            return stored
        runs = [race_peer(bench, budget.enot_steps, seed, batch_size=budget.batch_size) for seed in range(seeds)]
        return cells.store_cell(folder, PEER_ROW, dim, {
            "steps": budget.enot_steps, "seeds": seeds, "tag": repr(budget), "metric": "l2_uvp",
            "values": [r["l2_uvp"] for r in runs], "diverged": [False] * seeds,
            "train_s": sum(r["train_s"] for r in runs), "compile_s": None,
            "wall_s": sum(r["train_s"] for r in runs), "steps_per_s": statistics.median(r["steps_per_s"] for r in runs),
            "ms_per_step": 1e3 / statistics.median(r["steps_per_s"] for r in runs)})


def _baseline_records(dim: int, bench, seeds: int, n: int, key: jax.Array) -> list[dict]:
    values = w2bench_baselines.baseline_values(bench, seeds=seeds, n=n, key=key)
    return [{"row": name, "dim": dim, "steps": 0, "seeds": seeds, "values": values[name],
             "diverged": [False] * seeds, "train_s": 0.0, "wall_s": 0.0, "ms_per_step": None, "steps_per_s": None}
            for name in BASELINE_ROWS]


def run_table(rows: Iterable[str], dims: Iterable[int], *, budget: Budget, folder: Path,
              key: jax.Array, peer: bool = True, baselines: bool = True, progress: bool = True) -> pd.DataFrame:
    """Run (or load) every cell of ``rows`` x ``dims``; return one record per cell as a DataFrame.

    Cell (row, D) uses ``fold_in(key, D)`` for its seeds, so adding rows or dimensions to a table never
    changes the cells already there.
    """
    rows, dims = list(rows), list(dims)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; choose from {list(ROWS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    peer = peer and peer_available()
    records: list[dict] = []
    total = len(dims) * (len(rows) + int(peer))
    with progress_bar(total=total, desc="table cells", disable=not progress) as bar:
        for dim in dims:
            bench = w2bench.hd(dim)
            cell_key = jax.random.fold_in(key, dim)
            if baselines:
                records += _baseline_records(dim, bench, budget.enot_seeds, budget.n_eval, cell_key)
            for row in rows + ([PEER_ROW] if peer else []):
                bar.set_postfix_str(f"{row}, D={dim}")
                records.append(table_cell(row, dim, budget=budget, folder=folder, key=key, bench=bench))
                bar.update()
    return pd.DataFrame(records)


def table_cell(row: str, dim: int, *, budget: Budget, folder: Path, key: jax.Array, bench=None,
               progress: bool = False) -> dict:
    """Run (or load) the one cell (``row``, D) of :func:`run_table` with the table's ``key``; return its record.

    The same code for the notebook and for a cell run as a batch job, so either one's stored cell is the
    other's. ``bench`` is ``w2bench.hd(dim)`` when not given.
    """
    bench = w2bench.hd(dim) if bench is None else bench
    if row == PEER_ROW:
        return _run_peer(Path(folder), dim, bench, budget)
    if row not in ROWS:
        raise ValueError(f"unknown row {row!r}; choose from {[*ROWS, PEER_ROW]}")
    steps, seeds = _steps_and_seeds(row, budget)
    return cells.run_cell(folder, row, dim, lambda: ROWS[row](bench, budget), steps=steps, seeds=seeds,
                          key=jax.random.fold_in(key, dim), chunk_size=budget.chunk_size, tag=repr(budget),
                          eval_every=max(steps // CURVE_POINTS, 1), progress=progress)


def _pivot(records: pd.DataFrame, cell: Callable[[pd.Series], object]) -> pd.DataFrame:
    out = records.assign(cell=records.apply(cell, axis=1)).pivot(index="row", columns="dim", values="cell")
    order = [r for r in records["row"].drop_duplicates()]
    out = out.loc[order]
    out.columns = [f"D={d}" for d in out.columns]
    out.index.name = None
    return out


def l2_uvp_table(records: pd.DataFrame) -> pd.DataFrame:
    """The papers' table: mean ± std of the final forward L2-UVP (%) over seeds, ">100" if diverged."""
    return _pivot(records, lambda r: cells.format_cell(r["values"]))


def runtime_table(records: pd.DataFrame) -> pd.DataFrame:
    """Wall-clock per cell (all seeds at once, s) and training time per step (ms), per row and D."""
    trained = records[~records["row"].isin(BASELINE_ROWS)]
    return _pivot(trained, lambda r: f"{r['wall_s']:.0f} s | {r['ms_per_step']:.1f} ms")


def published_table(records: pd.DataFrame) -> pd.DataFrame:
    """Ours / published per cell, for the rows with published values (``cells.PUBLISHED_HD``)."""
    pairs = {"ENOT": "ENOT", "linear": "linear", "identity": "identity"}
    best_w2ot = [r for r in records["row"].unique() if r.startswith("W2OT")]
    rows = []
    for _, r in records.iterrows():
        name = pairs.get(r["row"]) or ("W2OT best" if r["row"] in best_w2ot else None)
        published = cells.PUBLISHED_HD.get(name, {}).get("values", {}).get(int(r["dim"])) if name else None
        mean, _, ok = cells.mean_std(r["values"])
        if published is None:
            continue
        rows.append({"row": r["row"], "dim": int(r["dim"]), "ours": mean if ok else np.nan, "published": published,
                     "ratio": (mean / published) if ok else np.nan,
                     "source": cells.PUBLISHED_HD[name]["source"]})
    return pd.DataFrame(rows)


def plot_l2_uvp(ax, records: pd.DataFrame) -> dict[str, list[int]]:
    """Mean ± std of every row against D (log-log), the published values as hollow diamonds: ENOT's and
    the baselines' in their rows' colours, the best W2OT row (as ENOT reprints it) in black. A trained cell
    that diverged (">100") or is worse than the identity map is marked with a cross (returned per row)."""
    from otlib.w2bench.figures import uvp_against_dim

    dims = sorted(records["dim"].unique())
    identity = {int(r["dim"]): cells.mean_std(r["values"])[0]
                for _, r in records[records["row"] == "identity"].iterrows()}
    flagged = {}
    for i, (row, group) in enumerate(records.groupby("row", sort=False)):
        stats = [cells.mean_std(v) for v in group["values"]]
        published = cells.PUBLISHED_HD[row]["values"] if row in ("ENOT", *BASELINE_ROWS) else None
        flagged[row] = uvp_against_dim(
            ax, list(group["dim"]), [m if ok else math.nan for m, _, ok in stats], [s for _, s, _ in stats],
            label=row, published=published, color=f"C{i % 10}", marker="os^vD<>ph*"[i % 10],
            worse_than=None if row in BASELINE_ROWS else identity)
    if any(r.startswith("W2OT") for r in records["row"].unique()):
        best = cells.PUBLISHED_HD["W2OT best"]["values"]
        ax.plot([d for d in dims if d in best], [best[d] for d in dims if d in best], ls="none", marker="D", ms=6,
                mfc="none", color="k", label="W2OT, best row (published)")
    return flagged
