"""The benchmark's figure: L2-UVP against the dimension D (Korotin et al. 2021, arXiv:2106.01954, Fig. 5),
ours next to the published values."""

from __future__ import annotations

from typing import Optional

import matplotlib.ticker

__all__ = ["uvp_against_dim"]


def uvp_against_dim(ax, dims, mean, std=None, *, label: str, published: Optional[dict] = None, color=None,
                    marker: str = "o", published_label: Optional[str] = None) -> None:
    """L2-UVP (%) against D on log-log axes: ours as a line with error bars, the paper's as hollow markers."""
    line = ax.errorbar(dims, mean, yerr=std, marker=marker, ms=4, capsize=2, label=label, color=color)
    if published:
        d_pub = [d for d in dims if d in published]
        ax.plot(d_pub, [published[d] for d in d_pub], ls="none", marker="D", ms=6, mfc="none",
                color=line.lines[0].get_color(), label=published_label or f"{label} (published)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(dims), [str(d) for d in dims])
    # plain numbers (20, not 2x10^1); minor ticks labelled only when the axis spans few decades
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6)))
    ax.set_xlabel("dimension D")
    ax.set_ylabel("L2-UVP (%)")
