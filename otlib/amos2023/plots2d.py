"""The 2-D figures of Amos (2023, arXiv:2210.12153), after his w2ot code's ``scripts/vis-2d-*.py``.

A learned dual potential f on a pair μ → ν is drawn through four functions of the plane, gathered in
:class:`DualMaps`: f, the forward map ∇f (μ → ν), the inverse map ∇f* (ν → μ, the conjugate's argmin)
and the conjugate f*. The figures are method-agnostic: any solver that provides these four maps can be
drawn (W2OT's come from :func:`otlib.amos2023.toy2d_training.dual_maps`).

* :func:`overview`: one row per pair: samples of μ and ν, X → ∇f(X), Y → ∇f*(Y), contours of f and f*
  (``vis-transport.png``, 4 panels, with the samples added in front);
* :func:`grid_warp`: a 30 x 30 grid on the pair's box moved along (1 - t) p + t ∇f*(p),
  t ∈ linspace(0, 1, 7) (``grid-warp.png``: the *conjugate* map, as in the reference script);
* :func:`interpolation_strip`: (1 - γ) y + γ ∇f*(y), γ ∈ linspace(0, 1, 7), y ~ ν
  (``conj-transport-samples.png``);
* :func:`training_curves`: the dual objective of each pair against the training step;
* :func:`conjugate_landscape`: the conjugate objective J(x; y_i) = f(x) - <x, y_i> for five targets,
  clipped above J(y_i; y_i) + 1, with y_i (dot) and the solver's argmin ∇f*(y_i) (star) (``conj.png``).

Every function returns a Matplotlib figure and draws nothing else; save it with
``otlib.report.notebook.Notebook.savefig``. Colours: μ and its images are C0, ν and its images C1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import jax
import numpy as np

from otlib.data.toy2d import Pair

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "OVERVIEW_COLUMNS",
    "transport_arrows",
    "DualMaps",
    "conjugate_landscape",
    "grid_points",
    "grid_warp",
    "interpolation_strip",
    "overview",
    "training_curves",
]

Map = Callable[[jax.Array], jax.Array]

OVERVIEW_COLUMNS = (r"$\mu$ and $\nu$", r"$\nabla f:\ \mu \to \nu$", r"$\nabla f^*:\ \nu \to \mu$", "$f$", "$f^*$")
"""Column titles of :func:`overview`."""
_PANEL = 1.75
"""Side of a square panel, in inches."""


@dataclasses.dataclass(frozen=True)
class DualMaps:
    """A learned transport on a 2-D pair, as the figures need it (each map acts on a batch ``(n, 2)``).

    Attributes:
      pair: the measures μ → ν and their plotting box.
      potential: f, ``(n, 2) -> (n,)``.
      forward: ∇f, the map μ → ν, ``(n, 2) -> (n, 2)``.
      inverse: ∇f*, the map ν → μ (the argmin of J(.; y)), ``(n, 2) -> (n, 2)``.
      conjugate: f*(y) = -min_x J(x; y), ``(n, 2) -> (n,)``.
    """

    pair: Pair
    potential: Map
    forward: Map
    inverse: Map
    conjugate: Map


def grid_points(bounds: Sequence[tuple[float, float]], resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``resolution x resolution`` grid on the box ``((x_lo, x_hi), (y_lo, y_hi))``.

    Returns ``(xx, yy)``, each ``(resolution, resolution)``, row i at height ``yy[i, 0]``; stack them
    with ``np.stack([xx, yy], -1).reshape(-1, 2)`` for the points.
    """
    if resolution < 2:
        raise ValueError(f"a grid needs resolution >= 2, got {resolution}")
    (x_lo, x_hi), (y_lo, y_hi) = bounds
    return np.meshgrid(np.linspace(x_lo, x_hi, resolution, dtype=np.float32),
                       np.linspace(y_lo, y_hi, resolution, dtype=np.float32))


def _apply(fn: Map, points: np.ndarray) -> np.ndarray:
    return np.asarray(fn(jax.numpy.asarray(points, dtype=jax.numpy.float32)))


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} has {np.size(values) - np.isfinite(values).sum()} non-finite values: "
                         "the map or potential diverged (check the training run's loss)")
    return values


def _colors() -> tuple[str, str]:
    """The style's first two colours (μ, ν)."""
    import matplotlib

    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return cycle[0], cycle[1]


def _frame(ax, pair: Pair) -> None:
    """Equal aspect on the pair's box, a thin frame, no ticks (the panels are pictures of the plane)."""
    (x_lo, x_hi), (y_lo, y_hi) = pair.bounds
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_linewidth(0.5)
        spine.set_color("0.6")


def _arrows(ax, start: np.ndarray, end: np.ndarray, start_color: str, end_color: str, max_lines: int = 200,
            s: float = 1.5) -> None:
    """Points ``start`` and their images ``end``, joined by thin grey lines for the first ``max_lines``."""
    from matplotlib.collections import LineCollection

    k = min(max_lines, len(start))
    ax.add_collection(LineCollection(np.stack([start[:k], end[:k]], axis=1), colors="0.65", linewidths=0.3,
                                     zorder=1))
    ax.scatter(*start.T, s=s, color=start_color, linewidths=0, zorder=2)
    ax.scatter(*end.T, s=s, color=end_color, linewidths=0, zorder=3)


def _contours(ax, fn: Map, pair: Pair, resolution: int, levels: int, what: str) -> None:
    xx, yy = grid_points(pair.bounds, resolution)
    values = _finite(_apply(fn, np.stack([xx, yy], -1).reshape(-1, 2)), what).reshape(xx.shape)
    ax.contour(xx, yy, values, levels=levels, cmap="viridis", linewidths=0.6, zorder=1)


def overview(maps: Sequence[DualMaps], key: jax.Array, *, n: int = 500, resolution: int = 64,
             levels: int = 15) -> Figure:
    """One row per pair, five panels (:data:`OVERVIEW_COLUMNS`) (Amos's ``vis-transport.png``).

    Args:
      maps: the pairs and their learned maps.
      key: draws X ~ μ and Y ~ ν (``n`` each, the same key for every pair).
      n: samples per measure (500 in the reference script); lines join the first 200 to their images.
      resolution: grid side of the contour plots (f* costs one conjugate solve per grid point).
      levels: contour levels.
    """
    import matplotlib.pyplot as plt

    if not maps:
        raise ValueError("overview needs at least one pair")
    mu, nu = _colors()
    key_x, key_y = jax.random.split(key)
    fig, axes = plt.subplots(len(maps), len(OVERVIEW_COLUMNS), squeeze=False,
                             figsize=(len(OVERVIEW_COLUMNS) * _PANEL, len(maps) * _PANEL))
    for row, m in zip(axes, maps):
        x, y = np.asarray(m.pair.source(key_x, n)), np.asarray(m.pair.target(key_y, n))
        pushed = _finite(_apply(m.forward, x), f"{m.pair.name}: grad f(X)")
        pulled = _finite(_apply(m.inverse, y), f"{m.pair.name}: grad f*(Y)")
        row[0].scatter(*x.T, s=1.5, color=mu, linewidths=0)
        row[0].scatter(*y.T, s=1.5, color=nu, linewidths=0)
        _arrows(row[1], x, pushed, mu, nu)
        _arrows(row[2], y, pulled, nu, mu)
        _contours(row[3], m.potential, m.pair, resolution, levels, f"{m.pair.name}: f")
        row[3].scatter(*x.T, s=0.5, color=mu, linewidths=0, alpha=0.5, zorder=2)
        _contours(row[4], m.conjugate, m.pair, resolution, levels, f"{m.pair.name}: f*")
        row[4].scatter(*y.T, s=0.5, color=nu, linewidths=0, alpha=0.5, zorder=2)
        for ax in row:
            _frame(ax, m.pair)
        row[0].set_ylabel(m.pair.name)
    for ax, title in zip(axes[0], OVERVIEW_COLUMNS):
        ax.set_title(title)
    return fig


def grid_warp(maps: Sequence[DualMaps], *, steps: int = 7, resolution: int = 30
              ) -> Figure:
    """One row per pair: the grid p on the pair's box moved to (1 - t) p + t ∇f*(p), t ∈ linspace(0, 1, steps)
    (Amos's ``scripts/vis-2d-grid-warp.py``: 7 panels, a 30 x 30 grid, the conjugate map). The last panel
    shows samples of μ behind the warped grid: the grid should have folded onto them.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    if not maps:
        raise ValueError("grid_warp needs at least one pair")
    mu, _ = _colors()
    fig, axes = plt.subplots(len(maps), steps, squeeze=False, figsize=(steps * _PANEL, len(maps) * _PANEL))
    for row, m in zip(axes, maps):
        xx, yy = grid_points(m.pair.bounds, resolution)
        p = np.stack([xx, yy], -1)  # (r, r, 2): grid lines are its rows and its columns
        image = _finite(_apply(m.inverse, p.reshape(-1, 2)), f"{m.pair.name}: grad f*(grid)").reshape(p.shape)
        for ax, t in zip(row, np.linspace(0.0, 1.0, steps)):
            q = (1.0 - t) * p + t * image
            lines = np.concatenate([q, q.transpose(1, 0, 2)])
            ax.add_collection(LineCollection(lines, colors="0.25", linewidths=0.35))
            _frame(ax, m.pair)
            if m is maps[0]:
                ax.set_title(f"$t = {t:.2g}$")
        x = np.asarray(m.pair.source(jax.random.key(0), 1000))
        row[-1].scatter(*x.T, s=1, color=mu, linewidths=0, alpha=0.6, zorder=0)
        row[0].set_ylabel(m.pair.name)
    return fig


def interpolation_strip(maps: Sequence[DualMaps], key: jax.Array, *, n: int = 5000, steps: int = 7
                        ) -> Figure:
    """One row per pair: (1 - γ) y + γ ∇f*(y) for y ~ ν and γ ∈ linspace(0, 1, steps) (Amos's
    ``conj-transport-samples.png``: 7 panels, 5000 samples). The colour fades from ν's to μ's."""
    import matplotlib.colors
    import matplotlib.pyplot as plt

    if not maps:
        raise ValueError("interpolation_strip needs at least one pair")
    mu, nu = (np.asarray(matplotlib.colors.to_rgb(c)) for c in _colors())
    fig, axes = plt.subplots(len(maps), steps, squeeze=False, figsize=(steps * _PANEL, len(maps) * _PANEL))
    for row, m in zip(axes, maps):
        y = np.asarray(m.pair.target(key, n))
        pulled = _finite(_apply(m.inverse, y), f"{m.pair.name}: grad f*(Y)")
        for ax, gamma in zip(row, np.linspace(0.0, 1.0, steps)):
            z = (1.0 - gamma) * y + gamma * pulled
            ax.scatter(*z.T, s=0.4, color=(1.0 - gamma) * nu + gamma * mu, linewidths=0, alpha=0.7)
            _frame(ax, m.pair)
            if m is maps[0]:
                ax.set_title(rf"$\gamma = {gamma:.2g}$")
        row[0].set_ylabel(m.pair.name)
    return fig


def conjugate_landscape(m: DualMaps, key: jax.Array, *, num_targets: int = 5, n: int = 500,
                        resolution: int = 100, levels: int = 20) -> Figure:
    """The conjugate objective J(x; y_i) = f(x) - <x, y_i> for ``num_targets`` targets y_i ~ ν (Amos's
    ``conj.png``: 5 panels).

    Each panel fills the contours of J(.; y_i) clipped above J(y_i; y_i) + 1 (the basin a solver started
    at x = y_i descends), over faint samples of μ and ν, and marks y_i (dot) and the solver's argmin
    ∇f*(y_i) (star), which should sit at the bottom of the basin and on the support of μ.
    """
    import matplotlib.pyplot as plt

    if num_targets < 1:
        raise ValueError(f"num_targets must be >= 1, got {num_targets}")
    mu, nu = _colors()
    key_x, key_y = jax.random.split(key)
    x, y = np.asarray(m.pair.source(key_x, n)), np.asarray(m.pair.target(key_y, n))
    targets = y[:num_targets]
    solutions = _finite(_apply(m.inverse, y)[:num_targets], f"{m.pair.name}: grad f*(y_i)")
    xx, yy = grid_points(m.pair.bounds, resolution)
    grid = np.stack([xx, yy], -1).reshape(-1, 2)
    f_grid = _finite(_apply(m.potential, grid), f"{m.pair.name}: f(grid)")
    f_targets = _apply(m.potential, targets)
    fig, axes = plt.subplots(1, num_targets, squeeze=False, figsize=(num_targets * 1.25 * _PANEL, 1.25 * _PANEL))
    for ax, target, f_target, solution in zip(axes[0], targets, f_targets, solutions):
        J = (f_grid - grid @ target).reshape(xx.shape)
        ceiling = f_target - target @ target + 1.0
        ax.contourf(xx, yy, np.minimum(J, ceiling), levels=levels, cmap="viridis", zorder=0)
        ax.scatter(*x.T, s=0.5, color=mu, linewidths=0, alpha=0.4, zorder=1)
        ax.scatter(*y.T, s=0.5, color=nu, linewidths=0, alpha=0.4, zorder=1)
        ax.scatter(*target, s=40, color=nu, edgecolors="white", linewidths=0.8, zorder=3, label="$y_i$")
        ax.scatter(*solution, s=110, marker="*", color=mu, edgecolors="white", linewidths=0.6, zorder=3,
                   label=r"$\nabla f^*(y_i)$")
        _frame(ax, m.pair)
    axes[0, 0].legend(loc="lower left", fontsize=7, framealpha=0.8)
    fig.suptitle(rf"{m.pair.name}: $J(x; y_i) = f(x) - \langle x, y_i\rangle$ and the solver's argmin")
    return fig


def training_curves(history: dict[str, np.ndarray], names: Sequence[str], *, columns: int = 5,
                    metric: str = "dual_objective") -> Figure:
    """Small multiples of ``history[f"{metric}/{name}"]`` against ``history["step"]``, one panel per pair.

    ``history`` is :attr:`otlib.core.train.RunResult.history` of a multi-pair run (values ``(L, seeds)``, one
    line per seed). The dual objective -L(θ) rises to ½W₂²(μ, ν) - ½E‖x‖² - ½E‖y‖² (by Kantorovich
    duality): a curve that is still climbing at the end says the run was too short.
    """
    import matplotlib.pyplot as plt

    if not names:
        raise ValueError("training_curves needs at least one pair")
    missing = [name for name in names if f"{metric}/{name}" not in history]
    if missing:
        raise KeyError(f"history has no {metric!r} for {missing}; logged: {sorted(history)}")
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False, figsize=(columns * 1.6, rows * 1.35))
    for ax, name in zip(axes.flat, names):
        ax.plot(history["step"], history[f"{metric}/{name}"], lw=1)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    fig.supxlabel("step", fontsize=8)
    fig.supylabel(metric.replace("_", " "), fontsize=8)
    return fig


def transport_arrows(ax, x, y, *, source_label: str = "source", target_label: str = "pushed",
                     max_arrows: int = 200, s: float = 3.0) -> None:
    """2D samples ``x`` and their images ``y``, joined by thin lines for the first ``max_arrows`` pairs."""
    from matplotlib.collections import LineCollection

    x, y = np.asarray(x), np.asarray(y)
    k = min(max_arrows, len(x))
    ax.add_collection(LineCollection(np.stack([x[:k], y[:k]], axis=1), colors="0.6", linewidths=0.4, zorder=1))
    ax.scatter(*x.T, s=s, label=source_label, zorder=2)
    ax.scatter(*y.T, s=s, label=target_label, zorder=2)
    ax.set_aspect("equal")
