"""W2OT (Amos 2023): the amortization losses' stop-gradients, a Gaussian pair, divergence, the HD evaluation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.amos2023 import amortization
from otlib.amos2023.w2ot import W2OTConfig, W2OTState, inverse, networks, transport, transport_map, w2_estimate, w2ot
from otlib.core.train import train

# ----------------------------------------------------------------------------------------------------
# Amortization losses: which parameters each one trains (as Amos's w2ot/dual_trainer.py).


def _terms(dim: int = 3):
    config = W2OTConfig(widths=(8,), amortizer_widths=(8,))
    f_net, h_net = networks(config, dim)
    x = jax.random.normal(jax.random.key(0), (16, dim))
    y = 1.0 + jax.random.normal(jax.random.key(1), (16, dim))
    theta = f_net.init(jax.random.key(2), x)["params"]
    phi = h_net.init(jax.random.key(3), y)["params"]
    phi = jax.tree.map(lambda p: p + 0.1, phi)  # move H off the identity so every term is non-zero
    f = lambda t, z: f_net.apply({"params": t}, z)  # noqa: E731
    h = lambda p, z: h_net.apply({"params": p}, z)  # noqa: E731
    x_hat = y - 0.3  # a stand-in for the solver's output
    return lambda theta, phi: amortization.Terms(f, theta, h, phi, x, y, h(phi, y), x_hat, float(dim)), theta, phi


def _norm(tree) -> float:
    return float(sum(jnp.sum(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree)))


@pytest.mark.parametrize("name, potential_learns", [
    ("objective_lbfgs", False), ("objective_none", False), ("regression_lbfgs", False),
    ("cycle_lbfgs", False), ("cycle_none", True), ("none_lbfgs", False)])
def test_amortization_losses_train_only_what_the_paper_says(name, potential_learns):
    make, theta, phi = _terms()
    row = amortization.row(name)
    grad_theta, grad_phi = jax.grad(lambda t, p: row(make(t, p)), argnums=(0, 1))(theta, phi)
    assert (_norm(grad_theta) > 0) == potential_learns
    assert (_norm(grad_phi) > 0) == (row.loss != "none")


def test_amortization_loss_values():
    make, theta, phi = _terms()
    t = make(theta, phi)
    assert float(amortization.regression_loss(t)) == pytest.approx(float(jnp.mean((t.x_init - t.x_hat) ** 2)))
    grad_f = jax.vmap(jax.grad(lambda z: t.potential(theta, z)))
    cycle = t.cycle_weight * jnp.mean((grad_f(t.x_init) - t.y) ** 2)
    assert float(amortization.cycle_loss(t, cycle_trains_potential=False)) == pytest.approx(float(cycle), rel=1e-6)
    assert amortization.ROWS["regression_lbfgs"].label == "Regression & L-BFGS"
    with pytest.raises(ValueError, match="fine-tuning solver"):
        amortization.Amortization("regression", None, "Regression & None")
    with pytest.raises(ValueError, match="regression_lbfgs"):
        W2OTConfig(amortization="regression")


# ----------------------------------------------------------------------------------------------------
# Training.

DIM = 2
MEAN = jnp.array([-0.5, 1.5])
CHOL = jnp.array([[0.7, 0.0], [0.4, 1.5]])
SIGMA = CHOL @ CHOL.T


def sample_source(key, n):
    return jax.random.normal(key, (n, DIM))


def sample_target(key, n):
    return MEAN + jax.random.normal(key, (n, DIM)) @ CHOL.T


def _bures() -> jax.Array:
    """The OT map from N(0, I) to N(m, Sigma) is x -> m + Sigma^{1/2} x."""
    w, v = np.linalg.eigh(np.asarray(SIGMA, np.float64))
    return jnp.asarray(v @ np.diag(np.sqrt(w)) @ v.T, jnp.float32)


def gaussian_l2_uvp(state: W2OTState, key: jax.Array) -> dict[str, jax.Array]:
    """Forward and inverse L2-UVP % against the closed-form maps."""
    root = _bures()
    x = sample_source(key, 4096)
    forward = 100 * jnp.mean(jnp.sum((transport(state, x) - (MEAN + x @ root)) ** 2, -1)) / jnp.trace(SIGMA)
    y = sample_target(key, 1024)
    x_of_y = jnp.linalg.solve(root, (y - MEAN).T).T
    backward = 100 * jnp.mean(jnp.sum((inverse(state, y).x - x_of_y) ** 2, -1)) / DIM
    identity = 100 * jnp.mean(jnp.sum((x - (MEAN + x @ root)) ** 2, -1)) / jnp.trace(SIGMA)
    return {"l2_uvp": forward, "l2_uvp_inverse": backward, "identity_l2_uvp": identity}


SMALL = W2OTConfig(widths=(32, 32), amortizer_widths=(32, 32), batch_size=256, num_steps=1000, pretrain_steps=200)


def test_gaussian_pair_recovers_the_bures_map():
    method = w2ot(SMALL, sample_source, sample_target, dim=DIM, eval_fn=gaussian_l2_uvp)
    result = train(method, jax.random.key(0), SMALL.num_steps, chunk_size=500, progress=False)
    assert not result.diverged.any()
    # From ~60% (the identity) to under 5% in 1000 steps (about 1.7% forward, 1.9% inverse when written).
    assert result.final("identity_l2_uvp")[0] > 50
    assert result.final("l2_uvp")[0] < 5.0
    assert result.final("l2_uvp_inverse")[0] < 5.0
    history = result.history
    assert history["dual_objective"][-1, 0] > history["dual_objective"][0, 0]  # the dual objective rises
    assert 1.0 <= history["solver_iterations"][-1, 0] < 10.0  # warm starts keep the solves short
    assert history["solver_converged"][-1, 0] > 0.99  # and they meet the tolerance
    # The dual W2 estimate against the closed form: 1/2 W2^2(N(0, I), N(m, S)) = 1/2 (|m|^2 + tr(I + S - 2 S^1/2)).
    closed = 0.5 * float(MEAN @ MEAN + jnp.trace(jnp.eye(DIM) + SIGMA - 2 * _bures()))
    x, y = sample_source(jax.random.key(7), 8192), sample_target(jax.random.key(8), 8192)
    trained = transport_map(result.seed(0))
    estimate = float(trained.transport_cost(x, y))
    assert estimate == pytest.approx(closed, rel=0.03)
    assert estimate == pytest.approx(float(w2_estimate(result.seed(0), x, y)))
    np.testing.assert_allclose(trained.inverse(y[:64]), inverse(result.seed(0), y[:64]).x)


def test_interrupted_and_resumed_run_ends_with_the_same_parameters(tmp_path):
    """A W2OT run (potential, amortizer, both optimizers and the L-BFGS warm starts) stopped after 60 of 100
    steps and resumed from its checkpoint ends bit-identical to the run that was never interrupted."""
    config = dataclasses.replace(SMALL, widths=(16,), amortizer_widths=(16,), batch_size=64, num_steps=100,
                                 pretrain_steps=20)
    method = w2ot(config, sample_source, sample_target, dim=DIM)
    key, path = jax.random.key(3), tmp_path / "w2ot.ckpt"
    full = train(method, key, config.num_steps, chunk_size=20, progress=False)
    first = train(method, key, config.num_steps, chunk_size=20, checkpoint=path, until=60, progress=False)
    assert first.steps == 60
    resumed = train(method, key, config.num_steps, chunk_size=20, checkpoint=path, progress=False)
    assert resumed.steps == config.num_steps
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(full.state), jax.device_get(resumed.state))
    np.testing.assert_array_equal(full.history["loss"], resumed.history["loss"])


def test_absurd_learning_rate_is_reported_as_diverged():
    config = dataclasses.replace(SMALL, amortization="objective_none", learning_rate=1e4, pretrain_steps=0,
                                 num_steps=40)
    result = train(w2ot(config, sample_source, sample_target, dim=DIM), jax.random.key(0), config.num_steps,
                   chunk_size=20, progress=False)
    assert result.diverged.all() and 0 <= result.diverged_at[0] < config.num_steps
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(result.state.theta))


def test_pretrained_map_is_the_identity_and_the_evaluator_is_the_benchmark_l2_uvp(w2bench_data):
    from otlib import w2bench

    bench = w2bench.hd(2)
    config = dataclasses.replace(SMALL, batch_size=64, pretrain_steps=400)
    method = w2ot(config, bench.sample_source, bench.sample_target, dim=2,
                  eval_fn=w2bench.evaluator(bench, transport, inverse, n=2048))
    state = jax.jit(method.init)(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (512, 2), minval=-5.0, maxval=5.0)  # the pretraining box
    assert float(jnp.mean(jnp.sum((transport(state, x) - x) ** 2, -1))) < 1e-3  # E||x||^2 = 16.7 here
    key = jax.random.key(1)
    ours = jax.jit(method.evaluate)(state, key)  # the rows l2_uvp scores for the same key
    forward, backward = jax.jit(lambda x: transport(state, x)), jax.jit(lambda y: inverse(state, y).x)
    assert float(ours["l2_uvp"]) == pytest.approx(w2bench.l2_uvp(forward, bench, key, n=2048), rel=1e-4)
    assert float(ours["l2_uvp_inverse"]) == pytest.approx(w2bench.l2_uvp_inverse(backward, bench, key, n=2048),
                                                          rel=1e-4)
    # So it scores the published identity row (32.7% at D = 2).
    assert float(ours["l2_uvp"]) == pytest.approx(w2bench.PUBLISHED[2]["identity"], rel=0.1)
