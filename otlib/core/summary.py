"""Summaries over seeds, the one rule every table uses: mean and population std of the finite values
(numpy's default std, as Amos's analysis script), printed as "mean ± std"."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

__all__ = ["mean_std", "format_mean_std"]


def mean_std(values: Sequence[Optional[float]]) -> tuple[float, float, int]:
    """(mean, population std, count) of the finite values; None and NaN (diverged seeds) are left out."""
    finite = np.asarray([v for v in np.ravel(np.asarray(values, dtype=object))
                         if v is not None and math.isfinite(float(v))], dtype=float)
    if finite.size == 0:
        return math.nan, math.nan, 0
    return float(finite.mean()), float(finite.std()), int(finite.size)


def format_mean_std(values: Sequence[Optional[float]], *, fmt: str = ".2f", std_fmt: Optional[str] = None) -> str:
    """``"mean ± std"`` of the finite values with format spec ``fmt`` (``std_fmt`` for the std, default the
    same); a single value prints alone and no finite value prints ``"nan"``."""
    mean, std, count = mean_std(values)
    if count == 0:
        return "nan"
    if len(np.ravel(np.asarray(values, dtype=object))) == 1:
        return format(mean, fmt)
    return f"{format(mean, fmt)} ± {format(std, std_fmt or fmt)}"
