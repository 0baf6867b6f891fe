"""One figure style and one way to save figures.

:func:`style` sets seaborn's *paper* context with the colour-blind palette and embedded TrueType fonts;
:func:`savefig` writes ``<name>.pdf`` and ``.png`` atomically into a folder (a run's own folder, or
``figures/<profile>/<notebook>/`` for the committed figures) with every varying metadata field fixed or
stripped (creation date, producer, software, the PNG's time stamp), so the same figure saved twice, in
two processes, gives identical bytes.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Optional

import matplotlib

from otlib.core.files import atomic_write_bytes
from otlib.core.paths import figures_dir

__all__ = ["style", "savefig", "figure_paths"]

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


def savefig(fig, name: str, *, notebook: Optional[str] = None, profile: Optional[str] = None,
            folder: Optional[Path] = None) -> tuple[Path, Path]:
    """Save ``fig`` as ``<name>.pdf`` and ``<name>.png`` in ``folder`` (default
    ``figures/<profile>/<notebook>/``) with byte-stable metadata (a notebook calls it through
    :meth:`otlib.report.notebook.Notebook.savefig`)."""
    if folder is None:
        if notebook is None or profile is None:
            raise TypeError("savefig needs the folder, or the notebook and the profile, of the figure")
        pdf, png = figure_paths(name, notebook=notebook, profile=profile)
    else:
        if not _NAME.match(name):
            raise ValueError(f"figure name {name!r} must be letters, digits, '_', '-' or '.', without '/' or spaces")
        pdf, png = Path(folder) / f"{name}.pdf", Path(folder) / f"{name}.png"
    for path, kwargs in ((pdf, {"format": "pdf", "metadata": _PDF_METADATA}),
                         (png, {"format": "png", "metadata": _PNG_METADATA, "dpi": PNG_DPI})):
        buffer = io.BytesIO()
        fig.savefig(buffer, **kwargs)
        atomic_write_bytes(path, buffer.getvalue())
    return pdf, png
