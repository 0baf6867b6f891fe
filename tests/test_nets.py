"""The shared networks: the custom-derivative ELU and the scalar read-out against Flax's."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import otlib.nn.nets
from otlib.nn.nets import MLP, ScalarDense, activation, elu

X = jnp.array([-40.0, -3.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 3.0, 40.0])


def test_elu_values_and_derivatives_match_flax():
    np.testing.assert_allclose(elu(X), nn.elu(X), rtol=1e-6, atol=1e-7)
    d1, d1_ref = jax.vmap(jax.grad(elu)), jax.vmap(jax.grad(nn.elu))
    np.testing.assert_allclose(d1(X), d1_ref(X), rtol=1e-6, atol=1e-7)
    d2, d2_ref = jax.vmap(jax.grad(jax.grad(elu))), jax.vmap(jax.grad(jax.grad(nn.elu)))
    np.testing.assert_allclose(d2(X), d2_ref(X), rtol=1e-6, atol=1e-7)
    assert np.isfinite(np.asarray(d2(jnp.array([-1e4, 1e4])))).all()


def _map_loss(params, model, x):
    """A loss on the map T = ∇f of an MLP potential, as the methods train it (second derivatives)."""
    transport = jax.grad(lambda z: model.apply(params, z).sum())
    return jnp.sum(transport(x) ** 2)


def test_elu_in_a_potential_trains_like_flax_elu(monkeypatch):
    x = jax.random.normal(jax.random.key(0), (16, 3))
    model = MLP(features=(8, 8, 1), act="elu")
    params = model.init(jax.random.key(1), x)
    assert activation("elu") is elu
    ours = jax.grad(_map_loss)(params, model, x)
    monkeypatch.setitem(otlib.nn.nets._ACTIVATIONS, "elu", nn.elu)
    reference = jax.grad(_map_loss)(params, model, x)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        activation("swish2")


class _FlaxPotential(nn.Module):
    """MLP((8, 8, 1)) written with Flax's own layers, the read-out included."""

    @nn.compact
    def __call__(self, x):
        for width in (8, 8):
            x = elu(nn.Dense(width)(x))
        return nn.Dense(1)(x)[..., 0]


def test_scalar_read_out_is_flax_dense_1_in_parameters_values_and_second_derivatives():
    x = jax.random.normal(jax.random.key(0), (16, 3))
    model, reference = MLP(features=(8, 8, 1), act="elu"), _FlaxPotential()
    params = model.init(jax.random.key(1), x)
    reference_params = reference.init(jax.random.key(1), x)
    assert jax.tree.structure(params) == jax.tree.structure(reference_params)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference_params)):
        np.testing.assert_array_equal(a, b)  # same names, shapes, initialisers: same initial values
    np.testing.assert_allclose(model.apply(params, x), reference.apply(params, x), rtol=1e-6, atol=1e-6)
    ours, theirs = jax.grad(_map_loss)(params, model, x), jax.grad(_map_loss)(params, reference, x)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    z = jax.random.normal(jax.random.key(2), (2, 5, 4))  # any leading shape
    assert ScalarDense().apply(ScalarDense().init(jax.random.key(3), z), z).shape == (2, 5)
