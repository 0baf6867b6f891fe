"""The shared networks: the custom-derivative ELU against Flax's."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import otlib.nets
from otlib.nets import MLP, activation, elu

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
    monkeypatch.setitem(otlib.nets._ACTIVATIONS, "elu", nn.elu)
    reference = jax.grad(_map_loss)(params, model, x)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        activation("swish2")
