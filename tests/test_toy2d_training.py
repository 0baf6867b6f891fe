"""All 2-D pairs in one compiled run: per-pair states, per-pair divergence, maps, and the Sinkhorn table."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.amos2023 import toy2d_training
from otlib.data.toy2d import Pair
from otlib.amos2023.plots2d import DualMaps
from otlib.core.train import train

NAMES = ("circles", "gauss8")
TINY = dataclasses.replace(toy2d_training.TOY2D_CONFIG, widths=(16, 16), amortizer_widths=(16, 16),
                           batch_size=32, num_steps=20, pretrain_steps=0, learning_rate=1e-3)


@pytest.fixture(scope="module")
def run():
    method = toy2d_training.w2ot_pairs(TINY, NAMES, pair_axis="loop")
    return method, train(method, jax.random.key(0), 20, chunk_size=20, progress=False)


def test_one_run_trains_a_potential_per_pair(run):
    _, result = run
    states = toy2d_training.pair_states(result)
    assert states.alive.tolist() == [True, True]
    leaves = jax.tree.leaves(states.w2ot)
    assert all(leaf.shape[0] == len(NAMES) for leaf in leaves)
    assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
    first = jax.tree.map(lambda a: a[0], states.w2ot.theta)
    second = jax.tree.map(lambda a: a[1], states.w2ot.theta)
    assert not np.allclose(first["Dense_0"]["kernel"], second["Dense_0"]["kernel"])  # separate potentials
    history = result.history
    assert {"loss", "dual_objective", "pairs_alive", "dual_objective/circles", "dual_objective/gauss8"} <= set(history)
    # the dual objective -L ~ -(E|x|^2 + E|y|^2)/2 near the identity start: about -0.6 (circles) and -12.6 (gauss8)
    assert history["dual_objective/circles"][-1, 0] > -2.0 > -8.0 > history["dual_objective/gauss8"][-1, 0]


@pytest.fixture(scope="module")
def one_step():
    """One step from the same state and key with the pairs looped and vmapped (cheap row, tiny batch).

    gauss8's loss is about 12.6 from the first step, circles' about 0.6: a divergence threshold of 5
    "diverges" gauss8 only.
    """
    config = dataclasses.replace(TINY, amortization="cycle_none", batch_size=16)
    methods = {axis: toy2d_training.w2ot_pairs(config, NAMES, pair_axis=axis, divergence_threshold=5.0)
               for axis in toy2d_training.PAIR_AXES}
    start = jax.jit(methods["loop"].init)(jax.random.key(1))
    return start, {axis: jax.jit(m.step)(start, jax.random.key(2)) for axis, m in methods.items()}


def test_the_pair_loop_and_the_pair_vmap_take_the_same_step(one_step):
    _, steps = one_step
    (after_loop, metrics_loop), (after_vmap, metrics_vmap) = steps["loop"], steps["vmap"]
    for a, b in zip(jax.tree.leaves(after_loop), jax.tree.leaves(after_vmap)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metrics_loop["loss"], metrics_vmap["loss"], rtol=1e-5)


def test_a_diverging_pair_is_frozen_and_the_others_go_on(one_step):
    start, steps = one_step
    state, metrics = steps["loop"]
    assert state.alive.tolist() == [True, False]
    gauss8 = lambda s: jax.tree.leaves(jax.tree.map(lambda a: a[1], s.w2ot.theta))
    circles = lambda s: jax.tree.leaves(jax.tree.map(lambda a: a[0], s.w2ot.theta))
    assert all(np.array_equal(a, b) for a, b in zip(gauss8(state), gauss8(start)))
    assert not all(np.array_equal(a, b) for a, b in zip(circles(state), circles(start)))
    assert float(metrics["pairs_alive"]) == 1.0 and np.isnan(metrics["dual_objective/gauss8"])
    assert abs(float(metrics["loss"])) < 5.0  # the mean over the live pairs only


def test_dual_maps_solve_the_conjugate_and_name_their_pairs(run):
    _, result = run
    maps = toy2d_training.dual_maps(toy2d_training.pair_states(result), NAMES)
    assert [m.pair.name for m in maps] == list(NAMES)
    for m in maps:
        y = m.pair.target(jax.random.key(5), 64)
        x_hat = m.inverse(y)
        residual = np.max(np.abs(m.forward(x_hat) - y), axis=-1)  # ||grad J(x_hat; y)||_inf = ||grad f(x_hat) - y||
        assert np.mean(residual < 0.1) > 0.9 and residual.max() < 0.5  # gtol 0.1, or a failed line search
        # f*(y) = <x_hat, y> - f(x_hat) (the value at the argmin) and Fenchel-Young f(x) + f*(y) >= <x, y>
        np.testing.assert_allclose(m.conjugate(y), jnp.sum(x_hat * y, -1) - m.potential(x_hat), rtol=1e-5, atol=1e-5)
        x = m.pair.source(jax.random.key(6), 64)
        assert bool(jnp.all(m.potential(x) + m.conjugate(y) >= jnp.sum(x * y, -1) - 1e-3))
    with pytest.raises(ValueError, match="holds 2 pairs but 1"):
        toy2d_training.dual_maps(toy2d_training.pair_states(result), NAMES[:1])


def test_restart_reaches_only_the_named_pairs(run):
    """``restart`` solves the named pairs' conjugates from y as well: in training (the flag travels with the
    state) and in their maps, where f*(y) is never below the warm start's alone."""
    cheap = dataclasses.replace(TINY, amortization="regression_adam", batch_size=8)  # a quick compile
    named = toy2d_training.w2ot_pairs(cheap, NAMES, pair_axis="loop", restart=["gauss8"])
    state, metrics = jax.jit(named.step)(jax.jit(named.init)(jax.random.key(1)), jax.random.key(2))
    assert state.restart.tolist() == [False, True] and state.alive.tolist() == [True, True]
    assert np.isfinite(metrics["loss"])
    states = toy2d_training.pair_states(run[1])
    maps = toy2d_training.dual_maps(dataclasses.replace(states, restart=jnp.array([False, True])), NAMES)
    maps_plain = toy2d_training.dual_maps(states, NAMES)
    y = maps[1].pair.target(jax.random.key(3), 64)
    assert bool(jnp.all(maps[1].conjugate(y) >= maps_plain[1].conjugate(y) - 1e-6))
    np.testing.assert_array_equal(maps[0].conjugate(y), maps_plain[0].conjugate(y))  # circles: not restarted
    with pytest.raises(ValueError, match="not trained"):
        toy2d_training.w2ot_pairs(TINY, NAMES, restart=["moons"])


def test_unknown_choices_are_named():
    with pytest.raises(ValueError, match="pair_axis"):
        toy2d_training.w2ot_pairs(TINY, NAMES, pair_axis="pmap")
    with pytest.raises(ValueError, match="unknown 2-D pair"):
        toy2d_training.w2ot_pairs(TINY, ("circles", "circle"))
    with pytest.raises(ValueError, match="distinct"):
        toy2d_training.w2ot_pairs(TINY, ("circles", "circles"))


def shifted_gaussians() -> Pair:
    """N(0, 0.5² I) -> N((1, 0), 0.5² I): the OT map is the shift, W2² = 1."""
    source = lambda key, n: 0.5 * jax.random.normal(key, (n, 2))
    target = lambda key, n: source(key, n) + jnp.array([1.0, 0.0])
    return Pair("shift", source, target, "a shift by (1, 0)", ((-2.0, 3.0), (-2.0, 2.0)))


def test_sinkhorn_table_scores_the_exact_map_near_zero_and_the_identity_near_w2():
    a = jnp.array([1.0, 0.0])
    exact = DualMaps(shifted_gaussians(), potential=lambda x: 0.5 * jnp.sum(x * x, -1) + x @ a,
                     forward=lambda x: x + a, inverse=lambda y: y - a,
                     conjugate=lambda y: 0.5 * jnp.sum((y - a) ** 2, -1))
    identity = dataclasses.replace(exact, forward=lambda x: x, inverse=lambda y: y)
    table = toy2d_training.sinkhorn_table([exact], jax.random.key(6), n=256, epsilon=0.1,
                                          epsilon_scale="target_variance")
    row = table.loc["shift"]
    assert row.epsilon == pytest.approx(0.1 * 0.25, rel=0.2)
    assert 0.8 < row.source_target < 1.2  # S(X, Y) ~ W2² = 1
    assert row.forward < 0.1 and row.inverse < 0.1  # only the sampling noise of two independent clouds
    identity_row = toy2d_training.sinkhorn_table([identity], jax.random.key(6), n=256, epsilon=0.1).loc["shift"]
    assert identity_row.forward == pytest.approx(identity_row.source_target, rel=1e-3)
    with pytest.raises(ValueError, match="epsilon_scale"):
        toy2d_training.sinkhorn_table([exact], jax.random.key(6), epsilon_scale="relative")


def test_duality_table_certifies_exact_conjugates_and_flags_a_solver_that_misses():
    a = jnp.array([1.0, 0.0])
    exact = DualMaps(shifted_gaussians(), potential=lambda x: 0.5 * jnp.sum(x * x, -1) + x @ a,
                     forward=lambda x: x + a, inverse=lambda y: y - a,
                     conjugate=lambda y: 0.5 * jnp.sum((y - a) ** 2, -1))
    identity = dataclasses.replace(exact, potential=lambda x: 0.5 * jnp.sum(x * x, -1),
                                   conjugate=lambda y: 0.5 * jnp.sum(y * y, -1))
    # a conjugate "solver" that stops 0.5 short of the maximum of <x, y> - f(x) for every target
    fooled = dataclasses.replace(exact, conjugate=lambda y: 0.5 * jnp.sum((y - a) ** 2, -1) - 0.5)
    key = jax.random.key(6)
    rows = [toy2d_training.duality_table([m], key, n=256).loc["shift"] for m in (exact, identity, fooled)]
    exact_row, identity_row, fooled_row = rows
    assert exact_row.gap == pytest.approx(exact_row.bound - exact_row.dual_objective)
    # weak duality: >= 0 for every exact conjugate; the OT potential is within sampling noise of the bound
    assert 0.0 <= exact_row.gap < 0.1
    # f = ½||x||² (the identity map): -L = -½ mean||x||² - ½ mean||y||², so the gap is ½W₂²(X, Y) ≈ ½||a||²
    assert identity_row.gap == pytest.approx(0.5, abs=0.1)
    assert fooled_row.gap == pytest.approx(exact_row.gap - 0.5, abs=1e-4) and fooled_row.gap < 0
