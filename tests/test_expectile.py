"""The expectile loss and ENOT's loss terms: values, and which network each term's gradient reaches."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from otlib.ot.costs import SqEuclidean
from otlib.enot2024.expectile import (
    ENOTLoss,
    enot_loss,
    expectile_loss,
    expectile_regulariser,
    fit_expectile_regression,
)
from otlib.nn.nets import MLP

D, N = 3, 64
NET = MLP((16, 16, 1))
COST = SqEuclidean()


def test_expectile_loss_matches_its_definition():
    u = jax.random.normal(jax.random.key(0), (1000,))
    for tau in (0.01, 0.3, 0.9, 0.99):
        expected = np.abs(tau - (np.asarray(u) <= 0)) * np.asarray(u) ** 2          # paper Eq. 13
        np.testing.assert_allclose(expectile_loss(u, tau), expected, rtol=1e-6)
    np.testing.assert_allclose(expectile_loss(u, 0.5), 0.5 * u ** 2, rtol=1e-6)      # half the squared error
    assert float(expectile_loss(jnp.zeros(()), 0.9)) == 0.0


def test_minimiser_is_the_expectile_and_tends_to_the_max():
    # argmin_m E L_tau(y - m) solves tau E(y - m)+ = (1 - tau) E(m - y)+; it rises to max(y) as tau -> 1.
    y = np.asarray(jax.random.exponential(jax.random.key(1), (2000,)))
    fitted = []
    for tau in (0.5, 0.9, 0.999):
        m = scipy.optimize.minimize_scalar(lambda m, tau=tau: float(jnp.mean(expectile_loss(y - m, tau))),
                                           bounds=(0, y.max()), method="bounded", options={"xatol": 1e-7}).x
        balance = tau * np.maximum(y - m, 0).mean() - (1 - tau) * np.maximum(m - y, 0).mean()
        assert abs(balance) < 1e-3
        fitted.append(m)
    assert fitted[0] == pytest.approx(y.mean(), abs=1e-3)
    assert fitted[0] < fitted[1] < fitted[2] < y.max() and fitted[2] > np.quantile(y, 0.97)


def test_regulariser_is_the_expectile_of_the_binding_gap():
    gt, gy, cxy = (jax.random.normal(k, (N,)) for k in jax.random.split(jax.random.key(2), 3))
    np.testing.assert_allclose(expectile_regulariser(gt, gy, cxy, 0.9), expectile_loss(gt - cxy + gy, 0.9))


def _setup():
    k1, k2, k3, k4 = jax.random.split(jax.random.key(3), 4)
    x, y = jax.random.normal(k1, (N, D)), 1.0 + 0.5 * jax.random.normal(k2, (N, D))
    dummy = jnp.zeros((1, D))
    pf, pg = NET.init(k3, dummy)["params"], NET.init(k4, dummy)["params"]
    transport = lambda p, x: COST.twist(x, jax.grad(lambda z: jnp.sum(NET.apply({"params": p}, z)))(x))
    potential = lambda p, y: NET.apply({"params": p}, y)
    return transport, potential, pf, pg, x, y


def _norm(tree) -> float:
    return float(sum(jnp.sum(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree)))


# Which parameters each term trains (OTT-JAX 0.6.0's stop-gradients in expectile_neural_dual.py).
ROUTING = {"dual": (False, True), "amortization": (True, False), "reg_potential": (False, True),
           "reg_transform": (False, True)}


@pytest.mark.parametrize("term", sorted(ROUTING))
def test_each_term_reaches_only_its_network(term):
    transport, potential, pf, pg, x, y = _setup()
    loss = lambda a, b: getattr(enot_loss(transport, potential, COST, a, b, x, y, tau=0.9, lam=0.5), term)
    grad_map, grad_potential = jax.grad(loss, argnums=(0, 1))(pf, pg)
    reaches_map, reaches_potential = ROUTING[term]
    assert (_norm(grad_map) > 0) == reaches_map
    assert (_norm(grad_potential) > 0) == reaches_potential


def _reference_loss(transport, potential, pf, pg, x, y, tau, lam):
    """The loss written as in OTT-JAX, with g evaluated twice at T(x) (once per stop-gradient)."""
    sg = jax.lax.stop_gradient
    t = transport(pf, x)
    g_y = potential(pg, y)
    g_transform = COST(x, sg(t)) - potential(pg, sg(t))
    c_xy = COST(x, y)
    reg = (jnp.mean(expectile_loss(sg(g_transform - c_xy) + g_y, tau))
           + jnp.mean(expectile_loss(sg(g_y - c_xy) + g_transform, tau)))
    return lam * reg - jnp.mean(g_y + g_transform) + jnp.mean(COST(x, t) - potential(sg(pg), t))


def test_one_forward_pass_gives_the_reference_values_and_gradients():
    transport, potential, pf, pg, x, y = _setup()
    ours = lambda a, b: enot_loss(transport, potential, COST, a, b, x, y, tau=0.95, lam=0.7).total
    ref = lambda a, b: _reference_loss(transport, potential, a, b, x, y, 0.95, 0.7)
    v1, g1 = jax.value_and_grad(ours, argnums=(0, 1))(pf, pg)
    v2, g2 = jax.value_and_grad(ref, argnums=(0, 1))(pf, pg)
    np.testing.assert_allclose(v1, v2, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g1, g2)


def test_matches_ott_jax_expectile_neural_dual():
    """Same value and gradients as OTT-JAX 0.6.0's own loss, written in its ‖x − y‖² convention."""
    pytest.importorskip("ott.neural.methods.expectile_neural_dual")
    from ott.geometry import costs as ott_costs
    from ott.neural.methods.expectile_neural_dual import ExpectileNeuralDual
    from ott.neural.networks import potentials

    _, _, pf, pg, x, y = _setup()
    solver = ExpectileNeuralDual(dim_data=D, neural_f=potentials.MLP(dim_hidden=[16, 16, 1]),
                                 neural_g=potentials.MLP(dim_hidden=[16, 16, 1]), expectile=0.95,
                                 expectile_loss_coef=0.7, rng=jax.random.key(0))
    batch = {"source": x, "target": y}

    def ott_loss(a, b):  # OTT wraps the MLP's parameters as {"model": ...}; the layers are named alike
        return solver._loss_fn({"model": a}, {"model": b}, solver.state_f.potential_gradient_fn,
                               solver.state_g.potential_value_fn, batch)

    # OTT's SqEuclidean is h = ‖z‖², h* = ‖z‖²/4: T(x) = x − ½∇f(x).
    ott_cost = lambda a, b: jax.vmap(ott_costs.SqEuclidean())(a, b)
    transport = lambda p, x: x - 0.5 * jax.grad(lambda z: jnp.sum(NET.apply({"params": p}, z)))(x)
    potential = lambda p, y: NET.apply({"params": p}, y)

    def ours(a, b):
        terms = enot_loss(transport, potential, ott_cost, a, b, x, y, tau=0.95, lam=0.7)
        return terms.total, terms

    (v1, terms), g1 = jax.value_and_grad(ours, argnums=(0, 1), has_aux=True)(pf, pg)
    (v2, (loss_f, loss_g, w_dist)), g2 = jax.value_and_grad(ott_loss, argnums=(0, 1), has_aux=True)(pf, pg)
    assert isinstance(terms, ENOTLoss)
    np.testing.assert_allclose([v1, terms.transport_loss, terms.potential_loss, terms.w_dist],
                               [v2, loss_f, loss_g, w_dist], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g1, g2)


def test_expectile_regression_solves_its_first_order_condition():
    # y = x + (0.2 + 0.5 x) eps on x in [0, 1]: fitted lines rise with tau, tau = 0.5 is least squares,
    # and the minimiser's gradient (the weighted residuals' moments) vanishes.
    kx, ke = jax.random.split(jax.random.key(4))
    x = jax.random.uniform(kx, (4000,))
    y = x + (0.2 + 0.5 * x) * jax.random.normal(ke, (4000,))
    features = jnp.stack([jnp.ones_like(x), x], -1)
    ols = jnp.linalg.lstsq(features, y)[0]
    np.testing.assert_allclose(fit_expectile_regression(features, y, 0.5), ols, rtol=1e-4, atol=1e-5)
    slopes = []
    for tau in (0.1, 0.5, 0.9, 0.99):
        coef = fit_expectile_regression(features, y, tau)
        r = y - features @ coef
        gradient = features.T @ (jnp.where(r > 0, tau, 1 - tau) * r) / len(y)
        np.testing.assert_allclose(gradient, 0.0, atol=1e-5)
        slopes.append(float(coef[1]))
    assert slopes == sorted(slopes) and slopes[-1] > 1.5   # the noise grows with x: upper expectiles steepen


def test_expectile_regression_is_accurate_on_an_ill_conditioned_design():
    # Degree-5 polynomial features on [0, 1] (the notebook's figure): the normal equations square the
    # design's condition number past float32's reach; the fit must agree with a float64 IRLS.
    kx, ke = jax.random.split(jax.random.key(5))
    x = jnp.sort(jax.random.uniform(kx, (600,)))
    y = 0.5 * jnp.sin(2 * jnp.pi * x) + (0.05 + 0.4 * x) * jax.random.normal(ke, (600,))
    features = jnp.stack([x ** k for k in range(6)], axis=-1)
    design, target = np.asarray(features, np.float64), np.asarray(y, np.float64)
    for tau in (0.01, 0.5, 0.9, 0.99):
        coef = np.linalg.lstsq(design, target, rcond=None)[0]
        for _ in range(50):
            root = np.sqrt(np.where(target - design @ coef > 0, tau, 1 - tau))
            coef = np.linalg.lstsq(root[:, None] * design, root * target, rcond=None)[0]
        np.testing.assert_allclose(features @ fit_expectile_regression(features, y, tau), design @ coef, atol=1e-3)


def test_from_ott_trains_ott_s_problem_in_our_half_scale():
    """OTT's λ on ‖x − y‖² is ENOTConfig.from_ott's 2λ on ½‖x − y‖²: with the potential halved (the same map),
    our loss is half of the loss in OTT's scale, value and gradients, so both train the same networks."""
    from otlib.enot2024.enot import ENOTConfig
    from otlib.ot.costs import PNormP

    lam_ott = 0.7
    lam = ENOTConfig.from_ott(lam=lam_ott, tau=0.95).lam
    assert lam == pytest.approx(2 * lam_ott) and ENOTConfig.from_ott(cost=PNormP(1.5), lam=lam_ott).lam == lam_ott

    _, _, pf, pg, x, y = _setup()
    net = lambda p, z: NET.apply({"params": p}, z)
    transport = lambda p, x: x - 0.5 * jax.grad(lambda z: jnp.sum(net(p, z)))(x)   # OTT's x − ½∇f = x − ∇(f/2)
    ott_scale = lambda a, b: enot_loss(transport, net, lambda u, v: 2 * COST(u, v), a, b, x, y, tau=0.95,
                                       lam=lam_ott).total
    half = lambda a, b: enot_loss(transport, lambda p, z: 0.5 * net(p, z), COST, a, b, x, y, tau=0.95, lam=lam).total
    v_ott, g_ott = jax.value_and_grad(ott_scale, argnums=(0, 1))(pf, pg)
    v_half, g_half = jax.value_and_grad(half, argnums=(0, 1))(pf, pg)
    np.testing.assert_allclose(v_ott, 2 * v_half, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, 2 * b, rtol=1e-4, atol=1e-6), g_ott, g_half)
    # With λ left unconverted the two losses differ: the conversion is needed.
    wrong = lambda a, b: enot_loss(transport, lambda p, z: 0.5 * net(p, z), COST, a, b, x, y, tau=0.95,
                                   lam=lam_ott).total
    assert abs(float(v_ott) - 2 * float(wrong(pf, pg))) > 1e-3 * abs(float(v_ott))
