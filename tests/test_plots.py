"""The figure helper: fixed paths, byte-identical files when the same figure is saved twice."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from otlib.report import plots  # noqa: E402


@pytest.fixture
def figures(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "figures_dir", lambda *p: tmp_path.joinpath(*p))
    return tmp_path


def draw():
    plots.style()
    fig, ax = plt.subplots(figsize=(3, 2))
    x = np.linspace(0, 1, 50)
    ax.plot(x, x ** 2, label="$x^2$")
    ax.scatter(x[::5], x[::5], s=4)
    ax.legend()
    return fig


def test_savefig_is_byte_stable(figures):
    pdf, png = plots.savefig(draw(), "curve", notebook="demo", profile="quick")
    assert pdf == figures / "quick" / "demo" / "curve.pdf" and png.suffix == ".png"
    first = pdf.read_bytes(), png.read_bytes()
    plots.savefig(draw(), "curve", notebook="demo", profile="quick")
    assert (pdf.read_bytes(), png.read_bytes()) == first
    assert b"CreationDate" not in first[0] and b"Matplotlib" not in first[1]
    plt.close("all")


def test_savefig_rejects_path_like_names(figures):
    with pytest.raises(ValueError, match="figure name"):
        plots.savefig(draw(), "../escape", notebook="demo", profile="quick")
    plt.close("all")


def test_savefig_needs_explicit_names(figures):
    with pytest.raises(TypeError, match="notebook"):
        plots.savefig(draw(), "curve")
    plt.close("all")
