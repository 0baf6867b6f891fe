"""The benchmark's figures: L2-UVP against the dimension D (Korotin et al. 2021, arXiv:2106.01954, Fig. 5),
ours next to the published values, and training curves (loss and L2-UVP against the step)."""

from __future__ import annotations

from typing import Optional

import matplotlib.ticker
import numpy as np

__all__ = ["uvp_against_dim", "training_curve", "plain_log_axis", "DIVERGED_UVP"]

DIVERGED_UVP = 100.0
"""A mean forward L2-UVP (%) above this is reported as diverged (">100", Amos 2023's rule): the map is then
no better than a random guess of the scale of the identity's error."""


class _PlainMinorLogFormatter(matplotlib.ticker.LogFormatter):
    """LogFormatter's choice of the minor ticks to label, written as plain numbers (0.6, not 6e-01)."""

    def __call__(self, x, pos=None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def plain_log_axis(axis) -> None:
    """Plain numbers on a log axis (20, not 2x10^1; 0.6, not 6e-01); minor ticks labelled only when it spans
    few decades."""
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(_PlainMinorLogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6)))


def uvp_against_dim(ax, dims, mean, std=None, *, label: str, published: Optional[dict] = None, color=None,
                    marker: str = "o", published_label: Optional[str] = None,
                    worse_than: Optional[dict] = None) -> list[int]:
    """L2-UVP (%) against D on log-log axes: ours as a line with error bars, the paper's as hollow markers.

    A point that diverged (NaN, or a mean above :data:`DIVERGED_UVP`) or is worse than ``worse_than[D]``
    (the identity map's L2-UVP, say) is drawn as a large red-edged cross on a dotted line and the legend
    entry says so; a NaN (every seed diverged) sits at the top of the axes. Returns the flagged dimensions.
    """
    dims = [int(d) for d in dims]
    mean = np.asarray(mean, dtype=float)
    std = None if std is None else np.asarray(std, dtype=float)
    bad = ~np.isfinite(mean) | (mean > DIVERGED_UVP)
    if worse_than:
        bad |= np.array([np.isfinite(m) and d in worse_than and m > worse_than[d] for d, m in zip(dims, mean)])
    flagged = [d for d, b in zip(dims, bad) if b]
    if flagged:
        reasons = []
        if any(not np.isfinite(m) or m > DIVERGED_UVP for m, b in zip(mean, bad) if b):
            reasons.append(f"> {DIVERGED_UVP:g} %: diverged")
        if worse_than and any(np.isfinite(m) and m <= DIVERGED_UVP for m, b in zip(mean, bad) if b):
            reasons.append("worse than identity")
        label = f"{label} (× = {', '.join(reasons)})"
    shown = np.where(np.isfinite(mean), mean, np.nan)
    line = ax.errorbar(dims, shown, yerr=std, marker=marker, ms=4, capsize=2, label=label, color=color,
                       ls=":" if flagged else "-")
    color = line.lines[0].get_color()
    if flagged:
        top = np.nanmax(np.r_[shown, DIVERGED_UVP]) * 1.6
        y = [m if np.isfinite(m) else top for m, b in zip(mean, bad) if b]
        ax.plot(flagged, y, ls="none", marker="X", ms=9, mfc=color, mec="#d62728", mew=1.2, zorder=5)
        for d, m, v in zip(flagged, [m for m, b in zip(mean, bad) if b], y):
            ax.annotate("all seeds\ndiverged" if not np.isfinite(m) else f"{m:.0f} %", (d, v), xytext=(6, 0),
                        textcoords="offset points", fontsize=6, color="#d62728", va="center")
    if published:
        d_pub = [d for d in dims if d in published]
        ax.plot(d_pub, [published[d] for d in d_pub], ls="none", marker="D", ms=6, mfc="none",
                color=color, label=published_label or f"{label.split(' (×')[0]} (published)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(dims), [str(d) for d in dims])
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("dimension D")
    ax.set_ylabel("forward L2-UVP (%)")
    return flagged


def training_curve(ax, steps, values, *, label: str, color=None, log: bool = False, band: bool = True) -> None:
    """A training curve: the mean over seeds of ``values`` (steps x seeds, or steps) against ``steps``, with
    the seeds' range as a band; NaN entries (diverged seeds) are left out of the mean."""
    steps = np.asarray(steps)
    values = np.asarray(values, dtype=float)
    values = values.reshape(len(steps), -1)
    finite = np.isfinite(values)
    counts = finite.sum(axis=1)
    total = np.where(finite, values, 0.0).sum(axis=1)
    mean = np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
    (line,) = ax.plot(steps, mean, label=label, color=color, lw=1.2)
    if band and values.shape[1] > 1:
        lo = np.where(counts > 0, np.where(finite, values, np.inf).min(axis=1), np.nan)
        hi = np.where(counts > 0, np.where(finite, values, -np.inf).max(axis=1), np.nan)
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    if log:
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
    ax.set_xlabel("training step")
