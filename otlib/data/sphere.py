"""Measures on the 2-sphere S² ⊂ R³, for ENOT's geodesic-cost experiment (Buzun et al. 2024, Fig. 2).

ENOT's Fig. 2 (Buzun et al. 2024, arXiv:2403.03777) transports one synthetic measure on the unit sphere to another
under the geodesic cost c(x, y) = arccos⟨x, y⟩, with networks whose outputs are normalised back onto
the sphere. The paper does not list its measures, so this module fixes a pair of its own making, in
the same spirit: a source of three clusters in the northern hemisphere and a target of four clusters
south of the equator, every cluster von Mises-Fisher-like.

A cluster around the unit direction m is the *projected normal* law

    x = (m + σ ε) / ‖m + σ ε‖,    ε ~ N(0, I₃),

which for small σ is close to a von Mises-Fisher law of concentration κ ≈ 1/σ² and, unlike an exact
vMF sampler, needs no rejection step (so it is a pure, jittable function of the key).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from otlib.data.toy2d import Pair
from otlib.core.method import Sampler

__all__ = ["direction", "project_to_sphere", "geodesic_distance", "make_projected_normal_mixture",
           "SOURCE_DIRECTIONS", "TARGET_DIRECTIONS", "sphere_source", "sphere_target", "SPHERE_PAIR"]


def direction(latitude_deg: float, longitude_deg: float) -> np.ndarray:
    """The unit vector at a latitude and longitude, in degrees (z is the north pole), float32."""
    lat, lon = math.radians(latitude_deg), math.radians(longitude_deg)
    return np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)], np.float32)


def project_to_sphere(x: jax.Array) -> jax.Array:
    """Radial projection ``x / ‖x‖`` onto the unit sphere, row-wise (how ENOT's maps are normalised)."""
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def geodesic_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    """Great-circle distance ``arccos⟨x, y⟩`` between unit vectors (ENOT Fig. 2's cost), over the last axis.

    The inner product is clipped to ``[-1 + 1e-6, 1 - 1e-6]`` so that rounding never leaves arccos's
    domain and its gradient stays finite when x = ±y (a bias below 2e-3 radians).
    """
    return jnp.arccos(jnp.clip(jnp.sum(x * y, axis=-1), -1.0 + 1e-6, 1.0 - 1e-6))


def make_projected_normal_mixture(directions: np.ndarray, std: float) -> Sampler:
    """Uniform mixture of projected normals around unit ``directions`` ``(K, 3)``: ``sample(key, n) -> (n, 3)``."""
    means = np.asarray(directions, dtype=np.float32)
    if means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"directions must have shape (K, 3), got {means.shape}")
    if not np.allclose(np.linalg.norm(means, axis=1), 1.0, atol=1e-5):
        raise ValueError("directions must be unit vectors; build them with `direction(latitude, longitude)`")

    def sample(key: jax.Array, n: int) -> jax.Array:
        key_k, key_z = jax.random.split(key)
        k = jax.random.randint(key_k, (n,), 0, len(means))
        noisy = jnp.asarray(means)[k] + std * jax.random.normal(key_z, (n, 3), dtype=jnp.float32)
        return project_to_sphere(noisy)

    return sample


SOURCE_DIRECTIONS = np.stack([direction(35.0, lon) for lon in (0.0, 120.0, 240.0)])
"""Three clusters at latitude 35°N, 120° apart."""
TARGET_DIRECTIONS = np.stack([direction(-20.0, lon) for lon in (45.0, 135.0, 225.0, 315.0)])
"""Four clusters at latitude 20°S, 90° apart and offset by 45° in longitude from the source's."""

sphere_source = make_projected_normal_mixture(SOURCE_DIRECTIONS, std=0.2)  # κ ≈ 25
sphere_target = make_projected_normal_mixture(TARGET_DIRECTIONS, std=0.15)  # κ ≈ 44

SPHERE_PAIR = Pair("sphere", sphere_source, sphere_target,
                   "Three clusters (35°N) → four clusters (20°S) on S², geodesic cost (ENOT Fig. 2 setting)",
                   ((-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0)))
"""The sphere pair; ``bounds`` is the cube holding S²."""
