"""The (τ, λ) ablation of ENOT on the W2 benchmark (Buzun et al. 2024, arXiv:2403.03777, §5.4 and Fig. 4):
one :class:`~otlib.core.train.Run` per dimension, each training the whole grid at once
(:func:`otlib.enot2024.enot.enot_grid`).

``enot2024_ablation`` trains these runs, and ``python -m otlib.sweep --notebook enot2024_ablation`` submits
the same runs as batch jobs (one per D); the notebook then reads them back from their checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax

from otlib import w2bench
from otlib.core.train import Run
from otlib.enot2024.enot import enot_grid, inverse, paper_hd_config, transport

__all__ = ["grid_runs"]


def grid_runs(dims: Sequence[int], taus: Sequence[float], lams: Sequence[float], *, num_steps: int, num_seeds: int,
              batch_size: int, hidden: Sequence[int], learning_rate: float, n_eval: int,
              seed: int = 0) -> dict[int, Run]:
    """``{D: Run}``: the paper's HD settings (:func:`~otlib.enot2024.enot.paper_hd_config`) with the given width,
    batch, steps and step size, over the grid ``taus`` x ``lams`` (τ major), the forward L2-UVP of every cell
    evaluated 8 times along the run. The key of dimension D is ``fold_in(key(seed), D)``."""
    key = jax.random.key(seed)
    runs = {}
    for dim in dims:
        bench = w2bench.hd(dim)
        config = paper_hd_config(hidden=tuple(hidden), batch_size=batch_size, num_steps=num_steps,
                                 learning_rate=learning_rate)
        method = enot_grid(config, taus, lams, bench.sample_source, bench.sample_target, dim=dim,
                           eval_fn=w2bench.evaluator(bench, transport, inverse, n=n_eval))
        runs[dim] = Run(f"grid_D{dim}", method, jax.random.fold_in(key, dim), num_steps, num_seeds=num_seeds,
                        chunk_size=min(num_steps, 1000), eval_every=max(num_steps // 8, 1))
    return runs
