"""One figure style and one way to save figures.

:func:`style` sets seaborn's *paper* context with the colour-blind palette and embedded TrueType fonts;
:func:`savefig` writes ``figures/<profile>/<notebook>/<name>.pdf`` and ``.png`` atomically with every
varying metadata field stripped (creation date, producer, software), so saving the same figure twice
gives identical bytes and re-running a notebook leaves ``git status`` clean.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Optional

import matplotlib
import matplotlib.ticker

from otlib.io import atomic_write_bytes
from otlib.paths import figures_dir

__all__ = ["style", "savefig", "figure_paths", "uvp_against_dim", "transport_arrows"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
_PNG_METADATA = {"Software": None}
PNG_DPI = 200


def style() -> None:
    """Seaborn paper style, colour-blind palette, constrained layout, embedded TrueType fonts."""
    import seaborn as sns

    sns.set_theme(context="paper", style="ticks", palette="colorblind", font_scale=1.1)
    matplotlib.rcParams.update({
        "figure.constrained_layout.use": True,
        "figure.dpi": 110,
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "svg.hashsalt": "otlib",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "image.cmap": "viridis",
    })


def figure_paths(name: str, *, notebook: str, profile: str) -> tuple[Path, Path]:
    """The PDF and PNG paths of figure ``name`` of ``notebook`` in ``profile``."""
    for label, value in (("figure name", name), ("notebook", notebook), ("profile", profile)):
        if not _NAME.match(value):
            raise ValueError(f"{label} {value!r} must be letters, digits, '_', '-' or '.', without '/' or spaces")
    folder = figures_dir(profile, notebook)
    return folder / f"{name}.pdf", folder / f"{name}.png"


def savefig(fig, name: str, *, notebook: Optional[str] = None, profile: Optional[str] = None) -> tuple[Path, Path]:
    """Save ``fig`` as PDF and PNG under ``figures/<profile>/<notebook>/`` with byte-stable metadata.

    ``notebook`` and ``profile`` default to those given to :func:`otlib.notebook.start`.
    """
    if notebook is None or profile is None:
        from otlib import notebook as nb

        current = nb.current()
        notebook = notebook or current.name
        profile = profile or current.profile
    pdf, png = figure_paths(name, notebook=notebook, profile=profile)
    for path, kwargs in ((pdf, {"format": "pdf", "metadata": _PDF_METADATA}),
                         (png, {"format": "png", "metadata": _PNG_METADATA, "dpi": PNG_DPI})):
        buffer = io.BytesIO()
        fig.savefig(buffer, **kwargs)
        atomic_write_bytes(path, buffer.getvalue())
    return pdf, png


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


def transport_arrows(ax, x, y, *, source_label: str = "source", target_label: str = "pushed",
                     max_arrows: int = 200, s: float = 3.0) -> None:
    """2D samples ``x`` and their images ``y``, joined by thin lines for the first ``max_arrows`` pairs."""
    import numpy as np
    from matplotlib.collections import LineCollection

    x, y = np.asarray(x), np.asarray(y)
    k = min(max_arrows, len(x))
    ax.add_collection(LineCollection(np.stack([x[:k], y[:k]], axis=1), colors="0.6", linewidths=0.4, zorder=1))
    ax.scatter(*x.T, s=s, label=source_label, zorder=2)
    ax.scatter(*y.T, s=s, label=target_label, zorder=2)
    ax.set_aspect("equal")
