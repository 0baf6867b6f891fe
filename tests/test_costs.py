"""Costs: h and h* are a Legendre pair, twists invert, conventions, safe gradients, the sphere."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.ot.costs import (
    COSTS,
    Correlation,
    Euclidean,
    PNormP,
    SphereGeodesic,
    SqEuclidean,
)

TI_COSTS = [SqEuclidean(), PNormP(1.5), PNormP(3.0)]


@pytest.mark.parametrize("cost", TI_COSTS, ids=repr)
def test_legendre_transform_is_the_sup_over_a_grid(cost):
    # h*(y) = sup_x <x, y> - h(x), the sup taken over a fine 2-D grid holding the maximiser.
    axis = jnp.linspace(-3.0, 3.0, 601)
    grid = jnp.stack(jnp.meshgrid(axis, axis), -1).reshape(-1, 2)
    ys = jax.random.uniform(jax.random.key(0), (8, 2), minval=-1.2, maxval=1.2)
    sup = jax.vmap(lambda y: jnp.max(grid @ y - cost.h(grid)))(ys)
    np.testing.assert_allclose(sup, cost.h_legendre(ys), atol=2e-4)


@pytest.mark.parametrize("cost", TI_COSTS, ids=repr)
def test_gradients_of_h_and_h_star_are_inverse(cost):
    y = jax.random.normal(jax.random.key(1), (64, 3))
    x = cost.grad_h_legendre(y)
    np.testing.assert_allclose(cost.grad_h(x), y, rtol=1e-4, atol=1e-5)
    # Fenchel-Young holds with equality at the maximiser x = grad h*(y).
    np.testing.assert_allclose(jnp.sum(x * y, -1) - cost.h(x), cost.h_legendre(y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cost", TI_COSTS, ids=repr)
def test_twist_recovers_the_target_of_a_translation(cost):
    # f(x) = <x, v> has grad f = v, so T(x) = x - grad h*(v) = x - u with u = grad h*(v): a translation,
    # and c(x, T(x)) = h(u), as the twist formula (paper Eq. 11) says.
    x = jax.random.normal(jax.random.key(2), (16, 2))
    u = jnp.array([0.7, -0.4])
    v = cost.grad_h(u)
    np.testing.assert_allclose(cost.twist(x, jnp.broadcast_to(v, x.shape)), x - u, atol=1e-5)
    np.testing.assert_allclose(cost.c(x, x - u), cost.h(u)[None].repeat(16), rtol=1e-5)


def test_squared_euclidean_convention_and_ott_conversion():
    x, y = jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]])
    assert float(SqEuclidean().c(x, y)[0]) == pytest.approx(12.5)          # ½‖x − y‖²
    assert float(SqEuclidean().to_ott(12.5)) == pytest.approx(25.0)        # OTT: ‖x − y‖²
    assert PNormP(1.5).to_ott(2.0) == 2.0
    np.testing.assert_allclose(Correlation().c(x + 1, y), -7.0)
    assert COSTS["pnorm_p"](p=1.5) == PNormP(1.5) and hash(PNormP(1.5)) == hash(PNormP(1.5))


def test_pnormp_rejects_p_at_most_one():
    with pytest.raises(ValueError, match="p > 1"):
        PNormP(1.0)


@pytest.mark.parametrize("cost", [Euclidean(), SphereGeodesic()], ids=repr)
def test_unidirectional_costs_have_finite_gradients_on_the_diagonal(cost):
    assert not cost.bidirectional
    x = jnp.array([[0.6, 0.8, 0.0]])
    grad = jax.grad(lambda y: jnp.sum(cost.c(x, y)))(x)
    assert np.isfinite(np.asarray(grad)).all()
    assert float(cost.c(x, x)[0]) == 0.0


def test_sphere_geodesic_is_the_angle_and_projection_lands_on_the_sphere():
    z = jax.random.normal(jax.random.key(3), (256, 3))
    cost = SphereGeodesic()
    x, y = cost.project(z[:128]), cost.project(z[128:])
    np.testing.assert_allclose(jnp.linalg.norm(x, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(cost.c(x, y), jnp.arccos(jnp.clip(jnp.sum(x * y, -1), -1, 1)), atol=2e-4)
    assert float(Euclidean().c(jnp.zeros((1, 2)), jnp.array([[3.0, 4.0]]))[0]) == pytest.approx(5.0)


def test_empirical_ot_cost_of_a_shift_and_of_a_permutation():
    from otlib.ot.costs import empirical_ot_cost
    x = jax.random.normal(jax.random.key(4), (200, 2))
    shuffled = x[jax.random.permutation(jax.random.key(5), 200)]
    assert empirical_ot_cost(SqEuclidean(), x, shuffled) == pytest.approx(0.0, abs=1e-12)
    # A translation by u is optimal for any TI cost with convex h: the cost is h(u) (Brenier / Gangbo-McCann).
    u = jnp.array([0.3, -0.2])
    for cost in TI_COSTS:
        assert empirical_ot_cost(cost, x, shuffled + u) == pytest.approx(float(cost.h(u)), rel=1e-5)


def test_sphere_geodesic_is_finite_at_antipodes():
    x = jnp.array([[1.0, 0.0, 0.0]])
    value, grad = jax.value_and_grad(lambda y: jnp.sum(SphereGeodesic().c(x, y)))(-x * 1.000001)
    assert float(value) == pytest.approx(np.pi) and np.isfinite(np.asarray(grad)).all()
