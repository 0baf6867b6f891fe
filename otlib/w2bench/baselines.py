"""The benchmark's baseline rows: identity and linear (Bures) maps, forward L2-UVP per D over seeds.

Korotin et al. (2021, arXiv:2106.01954), HD table rows ⌊ID⌉ and ⌊L⌉ (``score_baseline_maps`` in the official
``src/metrics.py``). One function serves the
``python -m otlib.w2bench baselines`` command and the ``w2_benchmark_baselines`` notebook.
"""

from __future__ import annotations

from typing import Iterable, Optional

import jax
import numpy as np
import pandas as pd

from otlib.core.progress import progress_bar
from otlib.w2bench.hd import hd
from otlib.w2bench.metrics import DEFAULT_N, PUBLISHED, identity_l2_uvp, linear_l2_uvp

__all__ = ["baseline_values", "baseline_table"]


def baseline_values(bench, *, seeds: int, n: int, key: jax.Array) -> dict[str, list[float]]:
    """Forward L2-UVP % of the identity and the linear map on ``bench``, one value per seed.

    Seed ``i`` uses ``fold_in(key, i)`` for both the moment fit of the linear map and the ``n``
    evaluation samples.
    """
    values: dict[str, list[float]] = {"identity": [], "linear": []}
    for seed in range(seeds):
        key_id, key_lin = jax.random.split(jax.random.fold_in(key, seed))
        values["identity"].append(identity_l2_uvp(bench, key_id, n))
        values["linear"].append(linear_l2_uvp(bench, key_lin, n, n_fit=n))
    return values


def baseline_table(dims: Iterable[int], *, seeds: int = 3, n: int = DEFAULT_N, key: Optional[jax.Array] = None,
                   data_dir: Optional[str] = None, progress: bool = True) -> pd.DataFrame:
    """Identity and linear forward L2-UVP % per D: mean and std over ``seeds`` keys, next to the paper.

    Seeds as in :func:`baseline_values` (``key`` defaults to ``jax.random.key(0)``). Returns one row per
    D with columns
    ``identity``, ``identity_std``, ``identity_paper``, ``linear``, ``linear_std``, ``linear_paper``.
    """
    key = jax.random.key(0) if key is None else key
    dims = list(dims)
    rows = []
    with progress_bar(total=len(dims), desc="baselines", disable=not progress) as bar:
        for d in dims:
            values = baseline_values(hd(d, data_dir=data_dir), seeds=seeds, n=n, key=key)
            ident, lin = values["identity"], values["linear"]
            bar.update()
            rows.append({"D": d, "identity": np.mean(ident), "identity_std": np.std(ident),
                         "identity_paper": PUBLISHED[d]["identity"], "linear": np.mean(lin),
                         "linear_std": np.std(lin), "linear_paper": PUBLISHED[d]["linear"]})
    return pd.DataFrame(rows).set_index("D")
