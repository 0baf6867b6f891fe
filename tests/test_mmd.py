"""The IMQ kernel and the unbiased MMD U-statistic of WAE-MMD (WAE Algorithm 2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.vegan2017.mmd import IMQ_SCALES, imq_base_scale, imq_kernel, mmd_imq, mmd_u_statistic


def brute_force_mmd(x: np.ndarray, y: np.ndarray, c: float) -> float:
    """Algorithm 2 written as its three double sums, single-scale IMQ."""
    k = lambda a, b: c / (c + np.sum((a - b) ** 2))
    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return kxx + kyy - 2 * kxy


def test_imq_is_symmetric_with_unit_diagonal_per_scale():
    x = jax.random.normal(jax.random.key(0), (7, 3))
    for scale in IMQ_SCALES:
        gram = np.asarray(imq_kernel(x, x, 6.0, (scale,)))
        np.testing.assert_allclose(gram, gram.T, rtol=1e-6)
        np.testing.assert_allclose(np.diag(gram), 1.0, rtol=1e-6)
        assert (gram > 0).all() and (gram <= 1.0 + 1e-6).all()
    summed = np.asarray(imq_kernel(x, x, 6.0))
    np.testing.assert_allclose(np.diag(summed), len(IMQ_SCALES), rtol=1e-6)


def test_base_scale_is_expected_squared_distance_of_prior_draws():
    assert imq_base_scale(8, 1.0) == 16.0 and imq_base_scale(64, 2.0) == 256.0
    z = jax.random.normal(jax.random.key(1), (2, 20_000, 8))
    assert abs(float(jnp.mean(jnp.sum((z[0] - z[1]) ** 2, -1))) - 16.0) < 0.2


def test_u_statistic_matches_its_definition():
    kx, ky = jax.random.split(jax.random.key(2))
    x, y = jax.random.normal(kx, (9, 2)), 0.5 + jax.random.normal(ky, (6, 2))
    got = float(mmd_u_statistic(x, y, 4.0, (1.0,)))
    assert got == pytest.approx(brute_force_mmd(np.asarray(x), np.asarray(y), 4.0), rel=1e-5, abs=1e-6)


def test_unbiased_for_equal_laws_and_positive_for_a_shift():
    keys = jax.random.split(jax.random.key(3), 500)
    estimate = jax.jit(jax.vmap(lambda k, shift: mmd_imq(jax.random.normal(k, (2, 20, 4))[0],
                                                          jax.random.normal(k, (2, 20, 4))[1] + shift),
                                in_axes=(0, None)))
    null = np.asarray(estimate(keys, 0.0))
    stderr = null.std() / np.sqrt(len(null))
    assert abs(null.mean()) < 4 * stderr  # the mean is exactly 0: no diagonal bias
    assert (null < 0).mean() > 0.2  # ... so single estimates are often negative (tolstikhin/wae issue #13)
    shifted = np.asarray(estimate(keys, 1.0))
    assert shifted.mean() > 10 * shifted.std() / np.sqrt(len(shifted)) and shifted.mean() > 20 * stderr


def test_clear_errors():
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd_imq(jnp.zeros((1, 3)), jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="flatten"):
        mmd_u_statistic(jnp.zeros((4, 3)), jnp.zeros((4, 2)), 1.0)
