"""Plain networks shared by the methods (Flax Linen modules, applied as pure functions).

Linen keeps parameters as ordinary pytrees, so a whole training state can be ``vmap``-ed over seeds and
carried through ``lax.scan`` by the driver. Potential-specific networks live next to their paper:
the ICNN in :mod:`otlib.nn.icnn`, Amos's potential MLP and amortization model below.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["MLP", "PotentialMLP", "InitNN", "ScalarDense", "activation", "elu"]


@jax.custom_jvp
def elu(x: jax.Array) -> jax.Array:
    """ELU, ``x`` for ``x > 0`` and ``exp(x) - 1`` otherwise, with its derivative written through its output.

    Same values as ``flax.linen.elu``; the derivative ``1`` or ``elu(x) + 1`` reuses the forward ``exp``
    instead of differentiating through ``jnp.where`` and evaluating a second one. The potentials' maps are
    gradients (T = ∇f), so their training differentiates the activation twice; this rule is itself
    differentiable.

    The negative branch is ``exp(x) - 1``, not ``expm1(x)``, which XLA's CPU backend evaluates more slowly
    than its vectorised ``exp`` (timings in ``docs/performance.md``). The price is an absolute error below
    6e-8 (one float32 ulp of 1) for x just below 0, where ``expm1`` keeps relative accuracy:
    far below the rounding of the next layer's float32 sums.
    """
    return jnp.where(x > 0, x, jnp.exp(jnp.minimum(x, 0)) - 1)


@elu.defjvp
def _elu_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[jax.Array, jax.Array]:
    (x,), (dx,) = primals, tangents
    y = elu(x)
    return y, jnp.where(x > 0, dx, (y + 1) * dx)


_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "elu": elu, "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu, "softplus": nn.softplus,
    "leaky_relu_0.2": lambda x: nn.leaky_relu(x, 0.2), "leaky_relu_0.01": lambda x: nn.leaky_relu(x, 0.01),
    "celu": nn.celu, "tanh": jnp.tanh,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """An activation by name (``elu``, ``relu``, ``gelu``, ``leaky_relu_0.2``, ...)."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}") from None


class ScalarDense(nn.Module):
    """``nn.Dense(1)`` with its output squeezed, ``(..., k) -> (...)``, computed as ``sum(z * w) + b``.

    The parameters are ``nn.Dense(1)``'s (``kernel`` (k, 1), lecun-normal; ``bias`` (1,), zeros), so a
    network keeps its parameter tree and its initial values; instantiate it with ``name=f"Dense_{i}"`` to
    keep the name too. The reason is the potentials' training, which differentiates ∇f: as a product with a
    (k, 1) matrix, this layer's gradients are matrix-vector products that XLA's CPU backend fuses with their
    elementwise neighbours into scalar loops; as an elementwise product and a sum, they stay vectorised
    (timings in ``docs/performance.md``).
    """

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (z.shape[-1], 1))
        bias = self.param("bias", nn.initializers.zeros, (1,))
        return jnp.sum(z * kernel[:, 0], axis=-1) + bias[0]


def hidden_layers(z: jax.Array, widths: Sequence[int], act: Callable[[jax.Array], jax.Array]) -> jax.Array:
    """``Dense + act`` for each width; call it inside a module's ``@nn.compact`` ``__call__``."""
    for width in widths:
        z = act(nn.Dense(width)(z))
    return z


class MLP(nn.Module):
    """Dense layers with an activation between them; the last width is the output width.

    ``MLP((128, 128, 1))`` is OTT-JAX's default ENOT potential shape (outputs are squeezed when the last
    width is 1, so a potential maps ``(..., d) -> (...)``).
    """

    features: Sequence[int]
    act: str = "elu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = hidden_layers(x, self.features[:-1], activation(self.act))
        if self.features[-1] == 1:
            return ScalarDense(name=f"Dense_{len(self.features) - 1}")(x)
        return nn.Dense(self.features[-1])(x)


class PotentialMLP(nn.Module):
    """Amos's non-convex potential "NN" (``PotentialNN`` in ``w2ot/models/potential_nn.py``): ``(..., D) -> (...)``.

    ``f(x) = act(Dense_1(MLP(x))) + 1/2 exp(log_alpha) ||x||^2`` with ``MLP`` = Dense+act layers of the
    given widths and ``log_alpha`` a learned scalar starting at 0, so ``grad f`` is near the identity.
    """

    widths: Sequence[int]
    act: str = "elu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation(self.act)
        z = hidden_layers(x, self.widths, act)
        log_alpha = self.param("log_alpha", nn.initializers.zeros, ())
        return act(nn.Dense(1)(z))[..., 0] + 0.5 * jnp.exp(log_alpha) * jnp.sum(x * x, axis=-1)


class InitNN(nn.Module):
    """Amos's amortization model H (``InitNN`` in ``w2ot/models/init_nn.py``): the residual map
    ``y -> y + Dense_D(MLP(y))``.

    It predicts the conjugate's argmin ``x_hat(y) = grad f*(y)``. The last layer starts at zero, so
    H starts at the identity exactly (the reference code reaches it by pretraining).
    """

    widths: Sequence[int]
    act: str = "elu"

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        z = hidden_layers(y, self.widths, activation(self.act))
        zeros = nn.initializers.zeros
        return y + nn.Dense(y.shape[-1], kernel_init=zeros, bias_init=zeros)(z)
