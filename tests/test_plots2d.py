"""The 2-D figures on an analytic potential whose maps are known exactly.

f(x) = ½‖x‖² + <a, x> has the forward map ∇f(x) = x + a, the inverse map ∇f*(y) = y - a and the
conjugate f*(y) = ½‖y - a‖², so every point a figure draws can be checked, not just counted.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest

from otlib.report import plots
from otlib.amos2023 import plots2d
from otlib.data import toy2d

SHIFT = np.array([0.3, -0.2], dtype=np.float32)


def translation(name: str, shift: np.ndarray = SHIFT) -> plots2d.DualMaps:
    a = jnp.asarray(shift)
    return plots2d.DualMaps(
        pair=toy2d.pair(name),
        potential=lambda x: 0.5 * jnp.sum(x * x, axis=-1) + x @ a,
        forward=lambda x: x + a,
        inverse=lambda y: y - a,
        conjugate=lambda y: 0.5 * jnp.sum((y - a) ** 2, axis=-1),
    )


@pytest.fixture(autouse=True)
def style_and_close():
    plots.style()
    yield
    plt.close("all")


def scatter_offsets(ax) -> list[np.ndarray]:
    return [np.asarray(c.get_offsets()) for c in ax.collections if hasattr(c, "get_sizes") and len(c.get_sizes())]


def test_grid_points_span_the_box():
    xx, yy = plots2d.grid_points(((-1.0, 2.0), (0.0, 4.0)), 5)
    assert xx.shape == yy.shape == (5, 5)
    assert (xx.min(), xx.max(), yy.min(), yy.max()) == (-1.0, 2.0, 0.0, 4.0)
    assert np.all(xx[:, 0] == -1.0) and np.all(yy[0] == 0.0)
    with pytest.raises(ValueError, match="resolution"):
        plots2d.grid_points(((0, 1), (0, 1)), 1)


def test_overview_has_a_row_of_five_panels_per_pair_and_draws_the_maps():
    maps = [translation("circles"), translation("gauss8")]
    fig = plots2d.overview(maps, jax.random.key(0), n=64, resolution=12, levels=5)
    assert len(fig.axes) == 2 * len(plots2d.OVERVIEW_COLUMNS)
    assert [ax.get_title() for ax in fig.axes[:5]] == list(plots2d.OVERVIEW_COLUMNS)
    assert [fig.axes[0].get_ylabel(), fig.axes[5].get_ylabel()] == ["circles", "gauss8"]
    forward_panel, inverse_panel = fig.axes[1], fig.axes[2]
    x, pushed = scatter_offsets(forward_panel)
    np.testing.assert_allclose(pushed, x + SHIFT, atol=1e-6)
    y, pulled = scatter_offsets(inverse_panel)
    np.testing.assert_allclose(pulled, y - SHIFT, atol=1e-6)
    for ax in fig.axes:
        for offsets in scatter_offsets(ax):
            assert np.all(np.isfinite(offsets))


def test_grid_warp_ends_on_the_inverse_image_of_the_grid():
    fig = plots2d.grid_warp([translation("gauss8")], steps=7, resolution=6)
    assert len(fig.axes) == 7
    assert fig.axes[0].get_title() == "$t = 0$" and fig.axes[-1].get_title() == "$t = 1$"
    first = np.asarray(fig.axes[0].collections[0].get_segments())
    last = np.asarray(fig.axes[-1].collections[0].get_segments())
    assert first.shape == (12, 6, 2)  # 6 rows and 6 columns of 6 points
    np.testing.assert_allclose(last, first - SHIFT, atol=1e-5)
    (low, high), _ = toy2d.pair("gauss8").bounds
    assert first[..., 0].min() == low and first[..., 0].max() == high


def test_interpolation_strip_moves_samples_of_nu_to_their_inverse_images():
    maps = [translation("moons"), translation("rings")]
    fig = plots2d.interpolation_strip(maps, jax.random.key(1), n=100, steps=4)
    assert len(fig.axes) == 8
    (start,), (middle,), (end,) = (scatter_offsets(fig.axes[i]) for i in (0, 1, 3))
    np.testing.assert_allclose(middle, start - SHIFT / 3, atol=1e-5)
    np.testing.assert_allclose(end, start - SHIFT, atol=1e-5)


def test_conjugate_landscape_marks_the_solvers_argmin_at_the_bottom_of_the_basin():
    fig = plots2d.conjugate_landscape(translation("gauss8"), jax.random.key(2), num_targets=5, n=50,
                                      resolution=40)
    assert len(fig.axes) == 5
    for ax in fig.axes:
        *_, target, star = scatter_offsets(ax)
        np.testing.assert_allclose(star, target - SHIFT, atol=1e-5)  # argmin of J(.; y) = y - a
        levels = ax.collections[0].levels  # filled contours, clipped above J(y; y) + 1
        assert np.all(np.isfinite(levels)) and len(levels) > 2


def test_a_diverged_map_is_named_in_the_error():
    broken = translation("circles")
    broken = plots2d.DualMaps(broken.pair, broken.potential, broken.forward, lambda y: y * jnp.nan,
                              broken.conjugate)
    with pytest.raises(ValueError, match=r"circles: grad f\*\(grid\) has \d+ non-finite"):
        plots2d.grid_warp([broken], resolution=4)


@pytest.mark.parametrize("draw", [lambda: plots2d.overview([], jax.random.key(0)),
                                  lambda: plots2d.grid_warp([]),
                                  lambda: plots2d.interpolation_strip([], jax.random.key(0))])
def test_figures_need_a_pair(draw):
    with pytest.raises(ValueError, match="at least one pair"):
        draw()


def test_training_curves_draw_one_panel_per_pair_and_hide_the_rest():
    history = {"step": np.array([10, 20, 30]), "dual_objective/a": np.ones((3, 1)),
               "dual_objective/b": np.arange(6.0).reshape(3, 2)}
    fig = plots2d.training_curves(history, ["a", "b"], columns=3)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["a", "b"]
    assert len(visible[1].lines) == 2  # one line per seed
    with pytest.raises(KeyError, match="no 'dual_objective' for \\['c'\\]"):
        plots2d.training_curves(history, ["c"])
