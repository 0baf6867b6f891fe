"""ENOT as a method: Gaussian maps recovered, roles alternate, parameterisations agree, the sphere."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from otlib.ot.costs import Euclidean, PNormP, SphereGeodesic, SqEuclidean
from otlib.enot2024.enot import (
    ENOTConfig,
    ENOTState,
    enot,
    enot_grid,
    inverse,
    transport,
    w2_estimate,
)
from otlib.core.train import train

# A Gaussian pair in D = 2 with its closed-form (Bures) OT map T*(x) = m + A x.
D = 2
COV_A = np.array([[1.0, 0.6], [0.6, 1.0]])
COV_B = np.array([[0.5, -0.2], [-0.2, 1.5]])
MEAN_B = np.array([1.0, -0.5])
_ROOT_A = scipy.linalg.sqrtm(COV_A).real
_CROSS = scipy.linalg.sqrtm(_ROOT_A @ COV_B @ _ROOT_A).real
BURES = np.linalg.inv(_ROOT_A) @ _CROSS @ np.linalg.inv(_ROOT_A)
HALF_W2_SQ = 0.5 * (MEAN_B @ MEAN_B + np.trace(COV_A) + np.trace(COV_B) - 2 * np.trace(_CROSS))


def gaussian_a(key, n):
    return jax.random.normal(key, (n, D)) @ jnp.asarray(np.linalg.cholesky(COV_A).T, jnp.float32)


def gaussian_b(key, n):
    return (jax.random.normal(key, (n, D)) @ jnp.asarray(np.linalg.cholesky(COV_B).T, jnp.float32)
            + jnp.asarray(MEAN_B, jnp.float32))


def l2_uvp(mapped, truth, var) -> float:
    return float(100 * np.mean(np.sum((np.asarray(mapped) - truth) ** 2, -1)) / var)


@pytest.mark.parametrize("form", ["distance", "correlation"])
def test_gaussian_map_is_recovered_both_ways(form):
    # 800 steps, two seeds at once: both directions within 1.5% L2-UVP of the Bures map (about 0.4-0.6%
    # seen), and Eq. 19's dual estimate within 2% of ½W₂².
    cfg = ENOTConfig(parameterisation=form, hidden=(64, 64), batch_size=256, num_steps=800, learning_rate=3e-3,
                     b2=0.99, schedule="cosine", tau=0.9, lam=0.3)
    result = train(enot(cfg, gaussian_a, gaussian_b, dim=D), jax.random.key(0), cfg.num_steps, num_seeds=2,
                   chunk_size=400, progress=False)
    assert not result.diverged.any()
    x = np.asarray(gaussian_a(jax.random.key(1), 4096), np.float64)
    y = x @ BURES.T + MEAN_B
    for seed in range(2):
        state = jax.tree.map(lambda a, i=seed: a[i], result.state)
        assert l2_uvp(transport(state, x), y, np.trace(COV_B)) < 1.5
        assert l2_uvp(inverse(state, y), x, np.trace(COV_A)) < 1.5
        estimate = w2_estimate(state, gaussian_a(jax.random.key(2), 8192), gaussian_b(jax.random.key(3), 8192))
        assert float(estimate) == pytest.approx(HALF_W2_SQ, rel=0.02)


def _fixed(batch):
    return lambda key, n: batch


def test_odd_steps_swap_the_roles_of_the_two_networks():
    # Step 1 of (f, g) on α → β is step 0 of (g, f) on β → α: the same update, roles exchanged.
    x = jax.random.normal(jax.random.key(0), (32, D))
    y = 1.0 + jax.random.normal(jax.random.key(1), (32, D))
    cfg = ENOTConfig(hidden=(8,), batch_size=32)
    forward, backward = enot(cfg, _fixed(x), _fixed(y), dim=D), enot(cfg, _fixed(y), _fixed(x), dim=D)
    state = forward.step(forward.init(jax.random.key(2)), jax.random.key(3))[0]       # now at step 1
    swapped = ENOTState(f=state.g, g=state.f, opt_f=state.opt_g, opt_g=state.opt_f, step=state.step - 1,
                        config=cfg)
    after, _ = forward.step(state, jax.random.key(4))
    after_swapped, _ = backward.step(swapped, jax.random.key(4))
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    jax.tree.map(close, after.f, after_swapped.g)
    jax.tree.map(close, after.g, after_swapped.f)


def _negate_last_layer(params):
    last = max(params, key=lambda name: int(name.split("_")[1]))
    return {**params, last: jax.tree.map(jnp.negative, params[last])}


def test_correlation_form_is_the_distance_form_with_a_negated_network():
    # F = ½‖x‖² + MLP with cost −<x, y> is f = −MLP with cost ½‖x − y‖²: same maps, and (Adam being odd
    # in the gradient) the same trajectory, parameters related by the last layer's sign.
    cfg_d = ENOTConfig(parameterisation="distance", hidden=(16, 16), batch_size=128, learning_rate=1e-2)
    cfg_c = ENOTConfig(parameterisation="correlation", hidden=(16, 16), batch_size=128, learning_rate=1e-2)
    dist, corr = enot(cfg_d, gaussian_a, gaussian_b, dim=D), enot(cfg_c, gaussian_a, gaussian_b, dim=D)
    s_c = corr.init(jax.random.key(0))
    s_d = ENOTState(f=_negate_last_layer(s_c.f), g=_negate_last_layer(s_c.g), opt_f=s_c.opt_f, opt_g=s_c.opt_g,
                    step=s_c.step, config=cfg_d)
    for t in range(3):
        s_c, m_c = corr.step(s_c, jax.random.key(t))
        s_d, m_d = dist.step(s_d, jax.random.key(t))
        np.testing.assert_allclose(m_c["w_dist"], m_d["w_dist"], rtol=1e-4)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    jax.tree.map(close, s_d.f, _negate_last_layer(s_c.f))
    x = gaussian_a(jax.random.key(9), 64)
    close(transport(s_c, x), transport(s_d, x))
    close(inverse(s_c, x), inverse(s_d, x))


def _on_sphere(centre):
    def sample(key, n):
        z = 0.5 * jax.random.normal(key, (n, 3)) + jnp.asarray(centre, jnp.float32)
        return z / jnp.linalg.norm(z, axis=-1, keepdims=True)
    return sample


def test_sphere_maps_stay_on_the_sphere():
    cfg = ENOTConfig(cost=SphereGeodesic(), parameterisation="map", hidden=(32, 32), batch_size=128,
                     num_steps=100, learning_rate=1e-3)
    result = train(enot(cfg, _on_sphere([1.0, 0, 0]), _on_sphere([0, 0, 1.0]), dim=3), jax.random.key(0),
                   cfg.num_steps, chunk_size=100, progress=False)
    state = result.seed(0)
    mapped = transport(state, _on_sphere([1.0, 0, 0])(jax.random.key(1), 1000))
    np.testing.assert_allclose(jnp.linalg.norm(mapped, axis=-1), 1.0, atol=1e-5)
    assert np.isfinite(result.history["loss"]).all()
    with pytest.raises(ValueError, match="unidirectional"):
        inverse(state, mapped)


@pytest.mark.parametrize("cost, form, match", [
    (Euclidean(), "distance", "parameterisation='map'"),
    (SphereGeodesic(), "correlation", "cost=SqEuclidean"),
    (PNormP(1.5), "correlation", "cost=SqEuclidean"),
    (SqEuclidean(), "potential", "choose one of"),
])
def test_configurations_that_cannot_work_are_refused(cost, form, match):
    with pytest.raises(ValueError, match=match):
        ENOTConfig(cost=cost, parameterisation=form)


def test_configurations_are_hashable_records():
    assert hash(ENOTConfig()) == hash(ENOTConfig()) and ENOTConfig(tau=0.9) != ENOTConfig()


W2BENCH = Path(os.environ.get("OTLIB_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/w2bench/Mix3toMix10"))


@pytest.mark.skipif(not (W2BENCH / "2_v1.pt").exists(), reason="W2 benchmark files not available offline")
def test_the_benchmark_evaluator_is_the_benchmark_l2_uvp(monkeypatch):
    monkeypatch.setenv("OTLIB_DATA_DIR", str(W2BENCH))
    from otlib import w2bench
    bench = w2bench.hd(2)
    method = enot(ENOTConfig(hidden=(8,), batch_size=64), bench.sample_source, bench.sample_target, dim=2,
                  eval_fn=w2bench.evaluator(bench, transport, inverse, n=2048))
    state = method.init(jax.random.key(0))
    key = jax.random.key(1)
    ours = jax.jit(method.evaluate)(state, key)                     # the same rows as l2_uvp for the same key
    reference = w2bench.l2_uvp(lambda x: transport(state, x), bench, key, n=2048)
    assert float(ours["l2_uvp"]) == pytest.approx(reference, rel=1e-4)
    assert float(ours["l2_uvp_inverse"]) == pytest.approx(
        w2bench.l2_uvp_inverse(lambda y: inverse(state, y), bench, key, n=2048), rel=1e-4)


def test_grid_cells_share_batches_and_diverge_alone():
    # λ = 0 switches the regulariser off, so its cells are one run whatever tau; λ = 1e9 makes the loss exceed the
    # divergence threshold at once: that cell freezes and evaluates to NaN while the others train on.
    cfg = ENOTConfig(hidden=(16,), batch_size=64, learning_rate=1e-3)
    eval_fn = lambda state, key: {"w": w2_estimate(state, gaussian_a(key, 256), gaussian_b(key, 256))}
    method = enot_grid(cfg, [0.5, 0.99], [0.0, 1e9], gaussian_a, gaussian_b, dim=D, eval_fn=eval_fn)
    result = train(method, jax.random.key(0), 40, num_seeds=2, chunk_size=40, progress=False)
    assert not result.diverged.any()
    alive = np.asarray(result.state["alive"])                      # (seeds, cells), cells tau-major
    np.testing.assert_array_equal(alive, [[True, False, True, False]] * 2)
    w = result.final("w")
    assert np.isnan(w[:, [1, 3]]).all() and np.isfinite(w[:, [0, 2]]).all()
    cells = result.state["cells"]
    jax.tree.map(lambda a: np.testing.assert_array_equal(a[:, 0], a[:, 2]), (cells.f, cells.g))
    assert int(cells.step[0, 1]) == 0 and int(cells.step[0, 0]) == 40  # the diverged cell froze at its start
