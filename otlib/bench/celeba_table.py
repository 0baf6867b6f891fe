"""The Wasserstein-2 benchmark CelebA64 table of Amos (2023) and Buzun et al. (2024), as resumable cells.

Rows (the papers' names):

* ``W2OT Conv: <amortization> & <solver>``: Amos (2023), arXiv:2210.12153, with his conv potential for f
  and H and the amortization rows of his tables, at his CelebA settings
  (:func:`otlib.amos2023.w2ot.celeba_config`);
* ``ENOT``: Buzun et al. (2024), arXiv:2403.03777, at their CelebA settings
  (:func:`otlib.enot2024.enot.paper_celeba_config`);
* the baseline ``identity`` (no training).

Columns are the pairs ``Early``, ``Mid``, ``Late`` of Korotin et al. (2021), arXiv:2106.01954, §4
(:mod:`otlib.w2bench.celeba`), or any other pair given by name (a synthetic pair, a :class:`SamplePool`).
Each (row, pair) cell trains all its seeds at once with the driver and is stored by :mod:`otlib.bench.cells`
(as the row ``"<row> | <pair>"`` at D = 12288) as soon as it finishes, with the forward L2-UVP and cos of
every seed and, beside it, the first seed's images of the figure inputs (``<cell>.figure.npz``).

Published values carry a provenance tag: ``[S]`` second-hand (quoted by a later paper, not checked against
the original PDF). Amos's per-row CelebA cells are not available to this project: every W2OT row is compared
with the best W2OT row as ENOT reprints it.
"""

from __future__ import annotations

import dataclasses
import io
import zlib
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from otlib.amos2023 import amortization
from otlib.amos2023 import w2ot as w2ot_method
from otlib.bench import cells
from otlib.core.files import atomic_write_bytes
from otlib.core.method import Method
from otlib.core.progress import progress_bar
from otlib.enot2024 import enot as enot_method
from otlib.w2bench import celeba
from otlib.w2bench.conv_icnn64 import as_images

__all__ = ["Budget", "ROWS", "BASELINE_ROWS", "PUBLISHED", "w2ot_row_name", "run_table", "table_cell",
           "l2_uvp_table", "cos_table", "runtime_table", "published_table", "plot_maps"]

BASELINE_ROWS = ("identity",)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Training budgets, seeds, networks and evaluation of a table run; defaults are the papers'.

    W2OT: 50001 steps after 10001 identity-pretraining steps, 10 seeds (Amos 2023). ENOT: 80k steps, 3
    seeds (Buzun et al. 2024, Table 6). Batch 64 and Amos's conv widths for both; L2-UVP on 4096 pairs.
    ``conjugate_solver`` (a name of :data:`otlib.ot.conjugate.SOLVERS`) overrides W2OT's fine-tuning solver
    (None: the row's, with :func:`otlib.amos2023.w2ot.for_device`'s schedule).
    """

    w2ot_steps: int = 50_001
    w2ot_pretrain_steps: int = 10_001
    w2ot_seeds: int = 10
    enot_steps: int = 80_000
    enot_seeds: int = 3
    batch_size: int = 64
    conv_widths: tuple[int, ...] = (128, 128, 256, 512, 1024)
    conjugate_solver: Optional[str] = None
    n_eval: int = celeba.EVAL_N
    chunk_size: int = 1000


def w2ot_row_name(amortization_row: str) -> str:
    """``"W2OT Conv: Regression & L-BFGS"`` for ``"regression_lbfgs"``."""
    return f"W2OT Conv: {amortization.row(amortization_row).label}"


Pair = celeba.CelebA64Benchmark | celeba.SamplePool
Builder = Callable[[Pair, Budget, Optional[jax.Array]], Method]


def _w2ot_builder(row: str) -> Builder:
    def build(pair: Pair, budget: Budget, figure: Optional[jax.Array]) -> Method:
        config = w2ot_method.for_device(w2ot_method.celeba_config(
            amortization=row, num_steps=budget.w2ot_steps, pretrain_steps=budget.w2ot_pretrain_steps,
            batch_size=budget.batch_size, widths=budget.conv_widths, conjugate_solver=budget.conjugate_solver))
        return w2ot_method.w2ot(config, pair.sample_source, pair.sample_target, dim=pair.dim,
                                eval_fn=celeba.evaluator(pair, w2ot_method.transport, n=budget.n_eval, figure=figure))
    return build


def _per_pixel_loss(method: Method) -> Method:
    """``method`` with its step's ``loss`` divided by the 12288 pixels (the sum as ``loss_total``).

    The driver's divergence rule (|loss| > 1e5 or NaN, Amos 2023's) is written for the scale of a W2OT
    loss. ENOT's expectile regulariser squares residuals that are sums over all pixels: on the CelebA64
    pairs it starts near 2e5 and would end every seed at its first step, so the rule sees its per-pixel value.
    """
    def step(state, key):
        state, metrics = method.step(state, key)
        return state, {**metrics, "loss": metrics["loss"] / celeba.DIM, "loss_total": metrics["loss"]}

    return dataclasses.replace(method, step=step)


def _enot_builder(pair: Pair, budget: Budget, figure: Optional[jax.Array]) -> Method:
    config = enot_method.paper_celeba_config(num_steps=budget.enot_steps, hidden=tuple(budget.conv_widths),
                                             batch_size=budget.batch_size)
    return _per_pixel_loss(enot_method.enot(
        config, pair.sample_source, pair.sample_target, dim=pair.dim,
        eval_fn=celeba.evaluator(pair, enot_method.transport, n=budget.n_eval, figure=figure)))


_AMOS_ROWS = ("cycle_none", "objective_none", "cycle_lbfgs", "objective_lbfgs", "regression_lbfgs")
ROWS: dict[str, Builder] = {**{w2ot_row_name(r): _w2ot_builder(r) for r in _AMOS_ROWS}, "ENOT": _enot_builder}
"""Trainable rows by name: five W2OT rows of Amos (2023) (no fine-tuning, L-BFGS fine-tuning) and ENOT."""

PUBLISHED: dict[str, dict] = {
    "ENOT": {"source": "Buzun et al. (2024), Table 1 [S]", "values": {"Early": 0.32, "Mid": 0.08, "Late": 0.04}},
    "W2OT best": {"source": "Amos (2023) best row (L-BFGS fine-tuning), as reprinted by Buzun et al. (2024) [S]",
                  "values": {"Early": 0.62, "Mid": 0.20, "Late": 0.09}},
    "W2GN (Korotin)": {"source": "Korotin et al. (2021) row ⌊W2⌉, as reprinted by Buzun et al. (2024) [S]",
                       "values": {"Early": 1.7, "Mid": 0.5, "Late": 0.25}},
    "MM (Korotin)": {"source": "Korotin et al. (2021) row ⌊MM⌉, as reprinted by Buzun et al. (2024) [S]",
                     "values": {"Early": 2.2, "Mid": 0.9, "Late": 0.53}},
    "MM:R (Korotin)": {"source": "Korotin et al. (2021) row ⌊MM:R⌉, as reprinted by Buzun et al. (2024) [S]",
                       "values": {"Early": 1.4, "Mid": 0.4, "Late": 0.22}},
    "identity": {"source": "Korotin et al. (2021) row ⌊ID⌉, as reprinted by Buzun et al. (2024) [S]",
                 "values": {"Early": 31.2, "Mid": 4.26, "Late": 2.06}},
}
"""CelebA64 forward L2-UVP (%) published per row and pair."""


def _steps_and_seeds(row: str, budget: Budget) -> tuple[int, int]:
    return (budget.enot_steps, budget.enot_seeds) if row == "ENOT" else (budget.w2ot_steps, budget.w2ot_seeds)


def _cell_row(row: str, pair_name: str) -> str:
    return f"{row} | {pair_name}"


def _figure_path(folder: Path, row: str, pair_name: str) -> Path:
    return cells.cell_path(folder, _cell_row(row, pair_name), celeba.DIM).with_suffix(".figure.npz")


def table_cell(row: str, pair_name: str, pair: Pair, *, budget: Budget, folder: Path, key: jax.Array,
               figure: Optional[jax.Array] = None, progress: bool = False) -> dict:
    """Run (or load) the cell (``row``, ``pair_name``); return its record (``row`` and ``pair`` as given).

    The seeds use ``key`` as the driver's run key. ``figure`` (k, 12288): the first seed's map of these
    inputs is stored beside the cell and returned as ``record["figure"]`` (k, 3, 64, 64).
    """
    if row not in ROWS:
        raise ValueError(f"unknown row {row!r}; choose from {list(ROWS)}")
    steps, seeds = _steps_and_seeds(row, budget)
    folder = Path(folder)
    record = cells.run_cell(folder, _cell_row(row, pair_name), celeba.DIM, lambda: ROWS[row](pair, budget, figure),
                            steps=steps, seeds=seeds, key=key, chunk_size=budget.chunk_size, tag=repr(budget),
                            progress=progress)
    path = _figure_path(folder, row, pair_name)
    evals = record.get("evals", {})
    if "figure" in evals:  # move the first seed's images out of the JSON record
        images = np.asarray(evals["figure"], np.float32)[-1, 0]
        with cells.cell_lock(folder, _cell_row(row, pair_name), celeba.DIM, wait=True):
            buffer = io.BytesIO()
            np.savez(buffer, images=images)
            atomic_write_bytes(path, buffer.getvalue())
            slim = {k: v for k, v in record.items() if k not in ("row", "dim")}
            slim["evals"] = {k: v for k, v in evals.items() if k != "figure"}
            record = cells.store_cell(folder, _cell_row(row, pair_name), celeba.DIM, slim)
    out = {**record, "row": row, "pair": pair_name}
    out["cos"] = ([float(c) for c in np.asarray(record["evals"]["cos"], float)[-1]]
                  if "cos" in record.get("evals", {}) else None)
    out["figure"] = as_images(np.load(path)["images"]) if path.exists() else None
    return out


def _identity_record(pair_name: str, pair: Pair, budget: Budget, key: jax.Array) -> dict:
    pairs = (pair.x, pair.y) if isinstance(pair, celeba.SamplePool) else None
    scores = celeba.identity_scores(pair, key, n=budget.n_eval, pairs=pairs)
    return {"row": "identity", "pair": pair_name, "steps": 0, "seeds": 1, "values": [scores["l2_uvp_fwd"]],
            "cos": [scores["cos_fwd"]], "diverged": [False], "train_s": 0.0, "wall_s": 0.0, "ms_per_step": None,
            "steps_per_s": None, "figure": None}


def run_table(rows: Iterable[str], pairs: Mapping[str, Pair], *, budget: Budget, folder: Path, key: jax.Array,
              n_figure: int = 4, progress: bool = True
              ) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Run (or load) every cell of ``rows`` x ``pairs`` (name -> pair); return the records as a DataFrame and,
    per pair, the figure's inputs and their T* images, ``(x, T*(x))`` as (n_figure, 3, 64, 64).

    Pair ``name`` uses ``fold_in(key, crc32(name))``: its figure inputs (a pool's first rows), its identity
    score and every cell's seeds, so adding rows or pairs never changes the cells already there.
    """
    rows = list(rows)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; choose from {list(ROWS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    figures: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with progress_bar(total=len(pairs) * len(rows), desc="table cells", disable=not progress) as bar:
        for name, pair in pairs.items():
            pair_key = jax.random.fold_in(key, zlib.crc32(name.encode()))
            if isinstance(pair, celeba.SamplePool):  # its first rows: distinct inputs
                x_fig, y_fig = pair.x[:n_figure], pair.y[:n_figure]
            else:
                x_fig, y_fig = pair.sample_pair(jax.random.fold_in(pair_key, 0), n_figure)
            figures[name] = (np.asarray(as_images(x_fig)), np.asarray(as_images(y_fig)))
            records.append(_identity_record(name, pair, budget, jax.random.fold_in(pair_key, 1)))
            for row in rows:
                bar.set_postfix_str(f"{row}, {name}")
                records.append(table_cell(row, name, pair, budget=budget, folder=folder, key=pair_key,
                                          figure=jnp.asarray(x_fig)))
                bar.update()
    return pd.DataFrame(records), figures


def _pivot(records: pd.DataFrame, cell: Callable[[pd.Series], object]) -> pd.DataFrame:
    out = records.assign(cell=records.apply(cell, axis=1)).pivot(index="row", columns="pair", values="cell")
    out = out.loc[list(records["row"].drop_duplicates()), list(records["pair"].drop_duplicates())]
    out.columns.name = out.index.name = None
    return out


def l2_uvp_table(records: pd.DataFrame) -> pd.DataFrame:
    """The papers' table: mean ± std over seeds of the final forward L2-UVP (%), ">100" if diverged."""
    return _pivot(records, lambda r: cells.format_cell(r["values"]))


def cos_table(records: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of the final cos(T - id, T* - id) (the identity's is 0 by convention)."""
    return _pivot(records, lambda r: cells.format_cell(r["cos"], digits=3) if r["cos"] is not None else "")


def runtime_table(records: pd.DataFrame) -> pd.DataFrame:
    """Wall-clock per cell (all seeds at once) and training time per step, per row and pair."""
    trained = records[~records["row"].isin(BASELINE_ROWS)]
    return _pivot(trained, lambda r: f"{r['wall_s']:.0f} s | {r['ms_per_step']:.0f} ms")


def published_table(records: pd.DataFrame) -> pd.DataFrame:
    """Ours / published per cell, for the rows with a published value (:data:`PUBLISHED`)."""
    rows = []
    for _, r in records.iterrows():
        name = "W2OT best" if r["row"].startswith("W2OT") else r["row"]
        published = PUBLISHED.get(name, {}).get("values", {}).get(r["pair"])
        if published is None:
            continue
        mean, _, ok = cells.mean_std(r["values"])
        rows.append({"row": r["row"], "pair": r["pair"], "ours": mean if ok else np.nan, "published": published,
                     "ratio": mean / published if ok else np.nan, "source": PUBLISHED[name]["source"]})
    return pd.DataFrame(rows)


def _show(ax, image: np.ndarray) -> None:
    ax.imshow(np.clip((np.transpose(image, (1, 2, 0)) + 1.0) / 2.0, 0.0, 1.0))
    ax.set_xticks([])
    ax.set_yticks([])


def plot_maps(fig, inputs: np.ndarray, targets: np.ndarray, maps: Mapping[str, np.ndarray]) -> None:
    """One column per sample: the input x, T*(x) and each method's T(x) (rows), images (k, 3, 64, 64) in
    [-1, 1] shown as RGB."""
    rows = [("input x", inputs), ("T*(x)", targets), *maps.items()]
    k = len(inputs)
    axes = fig.subplots(len(rows), k, squeeze=False)
    for i, (label, images) in enumerate(rows):
        for j in range(k):
            _show(axes[i, j], np.asarray(images[j]))
        axes[i, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
