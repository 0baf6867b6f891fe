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
    with pytest.raises(TypeError, match="the notebook and the profile"):
        plots.savefig(draw(), "curve")
    plt.close("all")


def test_savefig_into_a_run_folder(tmp_path):
    pdf, png = plots.savefig(draw(), "curve", folder=tmp_path / "run" / "figures")
    assert pdf == tmp_path / "run" / "figures" / "curve.pdf" and png.exists()
    plt.close("all")


DRAW_IN_A_FRESH_PROCESS = """
import sys
import matplotlib
matplotlib.use("Agg")
sys.path.insert(0, sys.argv[2])
import test_plots
from otlib.report import plots
plots.savefig(test_plots.draw(), "curve", folder=sys.argv[1])
"""


def test_savefig_is_byte_stable_across_processes(tmp_path):
    """Fonts, image names and dates must not depend on the process (hash seeds, clocks)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    outputs = []
    for i, seed in enumerate(("1", "2")):
        folder = tmp_path / str(i)
        env = dict(os.environ, PYTHONHASHSEED=seed, SOURCE_DATE_EPOCH=str(1_000_000_000 + i))
        subprocess.run([sys.executable, "-c", DRAW_IN_A_FRESH_PROCESS, str(folder), str(Path(__file__).parent)],
                       check=True, env=env)
        outputs.append(((folder / "curve.pdf").read_bytes(), (folder / "curve.png").read_bytes()))
    assert outputs[0] == outputs[1]


def test_uvp_against_dim_marks_diverged_and_worse_than_identity_cells():
    from otlib.w2bench import figures

    fig, ax = plt.subplots()
    identity = {4: 42.0, 16: 87.0, 64: 137.0}
    assert figures.uvp_against_dim(ax, [4, 16, 64], [2.0, 28.0, 40.0], label="fine", worse_than=identity) == []
    flagged = figures.uvp_against_dim(ax, [4, 16, 64], [50.0, 470.0, np.nan], label="bad", worse_than=identity)
    assert flagged == [4, 16, 64]
    labels = ax.get_legend_handles_labels()[1]
    assert "bad (× = > 100 %: diverged, worse than identity)" in labels and "fine" in labels
    texts = [t.get_text() for t in ax.texts]
    assert "470 %" in texts and "all seeds\ndiverged" in texts
    plt.close(fig)


def test_training_curve_averages_live_seeds():
    from otlib.w2bench import figures

    fig, ax = plt.subplots()
    figures.training_curve(ax, [0, 10, 20], [[1.0, 3.0], [2.0, np.nan], [np.nan, np.nan]], label="loss")
    y = ax.lines[0].get_ydata()
    assert y[0] == 2.0 and y[1] == 2.0 and np.isnan(y[2]) and ax.get_xlabel() == "training step"
    plt.close(fig)


def test_log_axes_label_minor_ticks_as_plain_numbers():
    from otlib.w2bench.figures import plain_log_axis

    fig, ax = plt.subplots()
    ax.set_yscale("log")
    ax.plot([1, 2], [0.25, 6.5])
    plain_log_axis(ax.yaxis)
    fig.canvas.draw()
    minor = [t.get_text() for t in ax.yaxis.get_ticklabels(minor=True) if t.get_text()]
    plt.close(fig)
    assert "0.6" in minor and "3" in minor and not any("e" in label for label in minor), minor
