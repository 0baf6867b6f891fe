"""The POT bound in closed form: a linear-Gaussian model where D_POT(lambda) and W_2^2 are both exact.

For a deterministic decoder G, any encoder whose aggregate posterior Q_Z equals P_Z is feasible at zero
penalty, so D_POT <= W_c, non-decreasing in lambda and approaching W_c as lambda grows (Bousquet et al.
2017, arXiv:1705.07642; Tolstikhin et al. 2018, arXiv:1711.01558, Theorem 1). With P_X = N(m, Sigma),
G(z) = Az + b and a linear encoder every term is in closed form, so :func:`solve_linear_gaussian_pot`
computes D_POT(lambda) to optimiser precision and :func:`w2_to_model` gives W_2^2(P_X, P_G).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from otlib.ot.gaussian import bures_map, gaussian_w2_squared

__all__ = ["LinearGaussian", "random_linear_gaussian", "w2_to_model", "ot_encoder", "pot_terms",
           "solve_linear_gaussian_pot"]


@dataclasses.dataclass(frozen=True, eq=False)
class LinearGaussian:
    """P_X = N(m, Sigma) on R^d; P_Z = N(0, I_k); a fixed decoder G(z) = A z + b, so P_G = N(b, A A^T)."""

    m: jax.Array
    sigma: jax.Array
    a: jax.Array
    b: jax.Array

    @property
    def latent_dim(self) -> int:
        return int(self.a.shape[1])


def random_linear_gaussian(key: jax.Array, data_dim: int = 4, latent_dim: int = 2) -> LinearGaussian:
    """A random instance: Sigma = L L^T / d + 0.1 I, entries of m, A, b standard normal (A / sqrt(k))."""
    k_m, k_l, k_a, k_b = jax.random.split(key, 4)
    lower = jax.random.normal(k_l, (data_dim, data_dim))
    sigma = lower @ lower.T / data_dim + 0.1 * jnp.eye(data_dim)
    return LinearGaussian(jax.random.normal(k_m, (data_dim,)), sigma,
                          jax.random.normal(k_a, (data_dim, latent_dim)) / jnp.sqrt(latent_dim),
                          jax.random.normal(k_b, (data_dim,)))


def w2_to_model(problem: LinearGaussian) -> jax.Array:
    """W_2^2(P_X, P_G) = W_2^2(N(m, Sigma), N(b, A A^T)) in closed form (:func:`otlib.ot.gaussian.gaussian_w2_squared`)."""
    return gaussian_w2_squared(problem.m, problem.sigma, problem.b, problem.a @ problem.a.T)


def ot_encoder(problem: LinearGaussian) -> dict[str, jax.Array]:
    """A linear encoder z = E x + e with Q_Z = P_Z exactly whose cost E||X - G(Z)||^2 is W_2^2 (WAE Thm 1).

    The OT map is T(x) = b + M (x - m) with M = Sigma^{-1/2} (Sigma^{1/2} A A^T Sigma^{1/2})^{1/2} Sigma^{-1/2};
    its range lies in that of A, so T = G o (E, e) with E = A^+ M and e = -E m (A of full column rank).
    """
    transport, _ = bures_map(problem.m, problem.sigma, problem.b, problem.a @ problem.a.T)
    encoder = jnp.linalg.pinv(problem.a) @ transport
    return {"E": encoder, "e": -encoder @ problem.m}


def pot_terms(problem: LinearGaussian, encoder: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """(E c(X, G(Z)), KL(Q_Z || P_Z)) for the deterministic encoder z = E x + e, in closed form.

    X - G(EX + e) = (I - AE) X - (A e + b) is Gaussian, so its mean square is
    ||(I - AE) m - Ae - b||^2 + tr((I - AE) Sigma (I - AE)^T); Q_Z = N(Em + e, E Sigma E^T) and
    KL(N(mu, S) || N(0, I)) = (tr S + ||mu||^2 - k - log det S) / 2. Any divergence D_Z >= 0 that vanishes
    only at Q_Z = P_Z gives the bound; KL keeps every term closed-form and smooth.
    """
    e_mat, e_vec = encoder["E"], encoder["e"]
    residual = jnp.eye(problem.m.shape[0]) - problem.a @ e_mat
    bias = residual @ problem.m - problem.a @ e_vec - problem.b
    cost = jnp.sum(bias ** 2) + jnp.trace(residual @ problem.sigma @ residual.T)
    mu, cov = e_mat @ problem.m + e_vec, e_mat @ problem.sigma @ e_mat.T
    kl = 0.5 * (jnp.trace(cov) + jnp.sum(mu ** 2) - problem.latent_dim - jnp.linalg.slogdet(cov)[1])
    return cost, kl


def solve_linear_gaussian_pot(problem: LinearGaussian, lams: jax.Array, *, iterations: int = 100
                              ) -> dict[str, jax.Array]:
    """D_POT(lambda) = min_{E, e} E c(X, G(EX + e)) + lambda KL(Q_Z || P_Z) for each lambda in ``lams``.

    The lambdas (increasing) are solved in turn by ``iterations`` L-BFGS steps (zoom line search) each,
    every one warm-started at the previous minimiser (a continuation in lambda: the large-lambda problems
    are ill-conditioned from a cold start); the first starts from the least-squares encoder
    E = A^+, e = -A^+ b. Returns ``{"lam", "pot", "cost", "kl"}``, arrays over ``lams``.
    """
    lams = jnp.asarray(lams, jnp.float32)
    if lams.ndim != 1 or not bool(jnp.all(jnp.diff(lams) > 0)):
        raise ValueError(f"lams must be a 1-D increasing sequence, got {lams}")
    pinv = jnp.linalg.pinv(problem.a)
    start = {"E": pinv, "e": -pinv @ problem.b}
    solver = optax.lbfgs()

    def solve(encoder: dict, lam: jax.Array) -> tuple[dict, tuple[jax.Array, jax.Array]]:
        def objective(encoder):
            cost, kl = pot_terms(problem, encoder)
            return cost + lam * kl

        value_and_grad = optax.value_and_grad_from_state(objective)

        def step(carry, _):
            encoder, state = carry
            value, grad = value_and_grad(encoder, state=state)
            updates, state = solver.update(grad, state, encoder, value=value, grad=grad, value_fn=objective)
            return (optax.apply_updates(encoder, updates), state), None

        (encoder, _), _ = jax.lax.scan(step, (encoder, solver.init(encoder)), None, length=iterations)
        return encoder, pot_terms(problem, encoder)

    _, (cost, kl) = jax.jit(lambda lams: jax.lax.scan(solve, start, lams))(lams)
    return {"lam": lams, "pot": cost + lams * kl, "cost": cost, "kl": kl}

