"""The 2-D measures and pairs (μ → ν) of Amos (2023) and of the OTT-JAX ENOT tutorial (Buzun et al. 2024).

Amos (2023, arXiv:2210.12153) evaluates his potentials qualitatively on ten 2-D pairs taken from three
earlier papers (the samplers of his ``w2ot/data.py``): Makkuva et al. (2020, arXiv:1908.10962) Gaussian
mixtures (``gauss8``, ``gauss_sq``), Rout et al. (2021) scikit-learn shapes (``circles``, ``moons``,
``s_curve``, ``swiss``), Huang et al. (2021) potential-flow targets (``maf_moon``, ``rings``,
``moon_to_rings``), and two pictures (``images``). The ENOT tutorial (OTT-JAX 0.6.0,
``docs/tutorials/neural/300_ENOT.ipynb``) adds ``square_five_to_four`` (Makkuva's squares in OTT's
convention), ``moon_to_s_curve`` (rotated, shifted scikit-learn shapes) and its own MAF-moon → rings
variant.

Every measure is a pure JAX sampler ``sample(key, n) -> (n, 2)``, float32, jittable with ``n`` static.
The reference code drew the scikit-learn shapes with ``random_state`` seeds and NumPy's global
generator; here their closed forms are written in JAX and driven by the key alone. Where scikit-learn
places points on an even grid (the angles of ``make_moons``/``make_circles``, the rings), the grid is a
deterministic quadrature of a uniform law; we draw from that law instead, so each batch is a fresh
i.i.d. sample of the same measure. Details of ``w2ot/data.py`` kept here: the "variance 0.5" mixtures
have noise std 0.25; the moons have no noise; the rings have radii 3, 2.25, 1.5, 0.75.

Pairs are looked up with :func:`pair` (or the :data:`PAIRS` table); single measures with
:data:`MEASURES`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from otlib.data.images import image_sampler
from otlib.core.method import Sampler

__all__ = ["Pair", "PAIRS", "AMOS_PAIRS", "ENOT_PAIRS", "MEASURES", "pair", "rotation",
           # factories
           "make_gaussian_mixture", "make_circle", "make_maf_moon", "make_rings",
           # samplers
           "gauss_1_small", "gauss_8", "square_five", "square_four", "standard_normal", "moon_upper",
           "moon_lower", "circle_big", "circle_small", "s_curve", "swiss", "maf_moon", "rings", "maf_moon_enot",
           "rings_enot", "half_moon", "s_curve_enot", "image_star", "image_heart"]

Bounds = tuple[tuple[float, float], ...]


@dataclasses.dataclass(frozen=True)
class Pair:
    """A transport problem μ → ν given by two samplers.

    Attributes:
      name: the key in :data:`PAIRS` (the reference code's dataset name).
      source: sampler of μ, ``sample(key, n) -> (n, d)``.
      target: sampler of ν.
      description: one line for figure titles and tables, citing where the pair comes from.
      bounds: ``((lo, hi), ...)`` per axis: a box holding (nearly) all of both measures, for plot limits
        and grids.
    """

    name: str
    source: Sampler
    target: Sampler
    description: str
    bounds: Bounds


def _named(sample: Sampler, name: str, doc: str) -> Sampler:
    sample.__name__ = sample.__qualname__ = name
    sample.__doc__ = doc
    return sample


def rotation(theta: float) -> np.ndarray:
    """The 2x2 matrix of a counter-clockwise rotation by ``theta`` radians."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]], dtype=np.float32)


# --- Gaussian mixtures (Makkuva et al. 2020; w2ot `GaussianMixture`; OTT `GaussianMixture`) ---

def make_gaussian_mixture(centres: np.ndarray, scale: float = 5.0, std: float = 0.25) -> Sampler:
    """Uniform mixture ``scale · c_k + std · N(0, I)``, ``k ~ Uniform{1..K}`` (``w2ot/data.py``).

    ``std = 0.25`` is the pitfall of both references: the code labels it "variance 0.5" and multiplies
    the noise by 0.5² (w2ot ``gauss_*``, OTT ``GaussianMixture(std=0.5)``).
    """
    means = scale * np.asarray(centres, dtype=np.float32)

    def sample(key: jax.Array, n: int) -> jax.Array:
        key_k, key_z = jax.random.split(key)
        k = jax.random.randint(key_k, (n,), 0, len(means))
        return jnp.asarray(means)[k] + std * jax.random.normal(key_z, (n, 2), dtype=jnp.float32)

    return sample


_UNIT_CIRCLE_8 = np.array([[math.cos(a), math.sin(a)] for a in np.arange(8) * math.pi / 4])
_SQUARE_FIVE = np.array([[0, 0], [1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float32)
_SQUARE_FOUR = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.float32)

gauss_1_small = _named(make_gaussian_mixture(np.zeros((1, 2))), "gauss_1_small",
                       "One Gaussian N(0, 0.25² I) (w2ot `gauss_1_small`).")
gauss_8 = _named(make_gaussian_mixture(_UNIT_CIRCLE_8), "gauss_8",
                 "Eight Gaussians, std 0.25, centred every 45° on the circle of radius 5 (w2ot `gauss_8`).")
square_five = _named(make_gaussian_mixture(_SQUARE_FIVE), "square_five",
                     "Five Gaussians, std 0.25, at 5·{(0,0), (±1,±1)} (w2ot `gauss_5_sq` = OTT `square_five`).")
square_four = _named(make_gaussian_mixture(_SQUARE_FOUR), "square_four",
                     "Four Gaussians, std 0.25, at 5·{(±1,0), (0,±1)} (w2ot `gauss_4_sq` = OTT `square_four`).")


def standard_normal(key: jax.Array, n: int) -> jax.Array:
    """N(0, I₂), the target of the potential-flow pairs (w2ot `gauss_1_unit`)."""
    return jax.random.normal(key, (n, 2), dtype=jnp.float32)


# --- scikit-learn shapes in closed form (Rout et al. 2021; w2ot's `sk_<name>` samplers) ---

def _half_circle_angle(key: jax.Array, n: int) -> jax.Array:
    return jax.random.uniform(key, (n,), dtype=jnp.float32, maxval=math.pi)


def moon_upper(key: jax.Array, n: int) -> jax.Array:
    """``make_moons`` outer arc (cos t, sin t), t ~ U[0, π], without noise (w2ot `moon_upper`)."""
    t = _half_circle_angle(key, n)
    return jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)


def moon_lower(key: jax.Array, n: int) -> jax.Array:
    """``make_moons`` inner arc (1 - cos t, 1/2 - sin t), t ~ U[0, π], without noise (w2ot `moon_lower`)."""
    t = _half_circle_angle(key, n)
    return jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=1)


def make_circle(radius: float, noise: float = 0.01) -> Sampler:
    """``make_circles`` ring: radius · (cos t, sin t) + noise · N(0, I), t ~ U[0, 2π) (w2ot `circle_*`)."""

    def sample(key: jax.Array, n: int) -> jax.Array:
        key_t, key_z = jax.random.split(key)
        t = jax.random.uniform(key_t, (n,), dtype=jnp.float32, maxval=2 * math.pi)
        ring = radius * jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)
        return ring + noise * jax.random.normal(key_z, (n, 2), dtype=jnp.float32)

    return sample


circle_big = _named(make_circle(1.0), "circle_big", "``make_circles`` outer ring, radius 1, noise 0.01 (w2ot).")
circle_small = _named(make_circle(0.5), "circle_small",
                      "``make_circles`` inner ring, radius 0.5 (factor 0.5), noise 0.01 (w2ot).")


def _s_curve_unit(key: jax.Array, n: int, noise: float) -> jax.Array:
    """``make_s_curve`` columns (z, x): (sign(t)(cos t - 1), sin t) + noise, t = 3π(U - 1/2)."""
    key_t, key_z = jax.random.split(key)
    t = 3 * math.pi * (jax.random.uniform(key_t, (n,), dtype=jnp.float32) - 0.5)
    curve = jnp.stack([jnp.sign(t) * (jnp.cos(t) - 1.0), jnp.sin(t)], axis=1)
    return curve + noise * jax.random.normal(key_z, (n, 2), dtype=jnp.float32)


def s_curve(key: jax.Array, n: int) -> jax.Array:
    """``make_s_curve(noise=0.01)``, columns (z, x), times 5 (w2ot `s_curve`; noise std 0.05 after scaling)."""
    return 5.0 * _s_curve_unit(key, n, noise=0.01)


def swiss(key: jax.Array, n: int) -> jax.Array:
    """``make_swiss_roll(noise=0.01)``, columns (z, x) = (t sin t, t cos t), times 0.5, t = 1.5π(1 + 2U) (w2ot)."""
    key_t, key_z = jax.random.split(key)
    t = 1.5 * math.pi * (1.0 + 2.0 * jax.random.uniform(key_t, (n,), dtype=jnp.float32))
    roll = jnp.stack([t * jnp.sin(t), t * jnp.cos(t)], axis=1)
    return 0.5 * (roll + 0.01 * jax.random.normal(key_z, (n, 2), dtype=jnp.float32))


# --- potential-flow targets (Huang et al. 2021; w2ot's `maf_moon` and `rings`) ---

def make_maf_moon(shift: float = -2.0) -> Sampler:
    """MAF moon: z ~ N(0, I₂), x = (½(z₁ + z₂²) + shift, z₂) (w2ot `maf_moon`: -2; ENOT tutorial: -5)."""

    def sample(key: jax.Array, n: int) -> jax.Array:
        z = jax.random.normal(key, (n, 2), dtype=jnp.float32)
        return jnp.stack([0.5 * (z[:, 0] + z[:, 1] ** 2) + shift, z[:, 1]], axis=1)

    return sample


def make_rings(radii: tuple[float, ...] = (3.0, 2.25, 1.5, 0.75), noise: float = 0.08) -> Sampler:
    """Concentric rings, each with a quarter of the mass at uniform angles, plus noise · N(0, I).

    Defaults: Huang et al.'s radii (1, 0.75, 0.5, 0.25) × 3 and noise 0.08 (w2ot `rings`). The reference
    gives each ring n//4 evenly spaced angles; we draw the ring and the angle at random instead.
    """
    radius = np.asarray(radii, dtype=np.float32)

    def sample(key: jax.Array, n: int) -> jax.Array:
        key_k, key_t, key_z = jax.random.split(key, 3)
        r = jnp.asarray(radius)[jax.random.randint(key_k, (n,), 0, len(radius))]
        t = jax.random.uniform(key_t, (n,), dtype=jnp.float32, maxval=2 * math.pi)
        ring = r[:, None] * jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)
        return ring + noise * jax.random.normal(key_z, (n, 2), dtype=jnp.float32)

    return sample


maf_moon = _named(make_maf_moon(-2.0), "maf_moon",
                  "MAF moon, x₁ = ½(z₁ + z₂²) - 2, x₂ = z₂ (w2ot `maf_moon`).")
rings = _named(make_rings(), "rings", "Four rings of radii 3, 2.25, 1.5, 0.75, noise 0.08 (w2ot `rings`).")
maf_moon_enot = _named(make_maf_moon(-5.0), "maf_moon_enot",
                       "MAF moon shifted to x₁ = ½(z₁ + z₂²) - 5 (ENOT tutorial, second experiment).")
rings_enot = _named(make_rings((3.6, 2.7, 1.65, 0.75)), "rings_enot",
                    "Four rings of radii (1.2, 0.9, 0.55, 0.25) × 3, noise 0.08 (ENOT tutorial, second experiment).")


# --- ENOT tutorial: half-moon → S-curve (its third experiment) ---

def _placed(shape: jax.Array, scale: float, theta: float, mean: tuple[float, float]) -> jax.Array:
    """``scale · R(theta) x + mean`` for each row x."""
    return scale * shape @ jnp.asarray(rotation(theta)).T + jnp.asarray(mean, dtype=jnp.float32)


def half_moon(key: jax.Array, n: int) -> jax.Array:
    """The tutorial's moon: ``make_moons`` upper arc rotated by π/6, shifted to mean (0, -0.5), noise 0.05.

    We read the tutorial's "moon" as scikit-learn's outer arc alone (``n_samples=(n, 0)``: a half moon).
    The isotropic noise is added last, so its order relative to the rotation does not matter.
    """
    key_t, key_z = jax.random.split(key)
    moon = _placed(moon_upper(key_t, n), 1.0, math.pi / 6, (0.0, -0.5))
    return moon + 0.05 * jax.random.normal(key_z, (n, 2), dtype=jnp.float32)


def s_curve_enot(key: jax.Array, n: int) -> jax.Array:
    """The tutorial's S-curve: ``make_s_curve`` columns [2, 0], scale 0.6, rotated by -π/6, mean (0.5, -2),
    noise 0.05 (applied as ``0.6 · R(-π/6) x + mean``, then the noise)."""
    key_t, key_z = jax.random.split(key)
    curve = _placed(_s_curve_unit(key_t, n, noise=0.0), 0.6, -math.pi / 6, (0.5, -2.0))
    return curve + 0.05 * jax.random.normal(key_z, (n, 2), dtype=jnp.float32)


# --- pictures (w2ot's `PairImages`; see otlib.data.images) ---

image_star = image_sampler("star")
image_heart = image_sampler("heart")


MEASURES: dict[str, Sampler] = {
    "gauss_1_small": gauss_1_small, "gauss_8": gauss_8, "gauss_5_sq": square_five, "gauss_4_sq": square_four,
    "square_five": square_five, "square_four": square_four, "standard_normal": standard_normal,
    "moon_upper": moon_upper, "moon_lower": moon_lower, "circle_big": circle_big, "circle_small": circle_small,
    "s_curve": s_curve, "swiss": swiss, "maf_moon": maf_moon, "rings": rings,
    "maf_moon_enot": maf_moon_enot, "rings_enot": rings_enot, "half_moon": half_moon,
    "s_curve_enot": s_curve_enot, "image_star": image_star, "image_heart": image_heart,
}
"""Every single measure by name (w2ot's sampler names; OTT's ``square_*`` are the same mixtures)."""

_PAIRS: tuple[Pair, ...] = (
    Pair("gauss8", gauss_1_small, gauss_8, "One Gaussian → eight Gaussians (Makkuva et al. 2020)",
         ((-7.0, 7.0), (-7.0, 7.0))),
    Pair("gauss_sq", square_five, square_four, "Five → four Gaussians on a square (Makkuva et al. 2020)",
         ((-7.0, 7.0), (-7.0, 7.0))),
    Pair("circles", circle_big, circle_small, "Circle of radius 1 → circle of radius 0.5 (Rout et al. 2021)",
         ((-1.3, 1.3), (-1.3, 1.3))),
    Pair("moons", moon_lower, moon_upper, "Lower moon → upper moon (Rout et al. 2021)",
         ((-1.3, 2.3), (-0.8, 1.3))),
    Pair("s_curve", s_curve, standard_normal, "S-curve → N(0, I) (Rout et al. 2021)",
         ((-11.0, 11.0), (-6.0, 6.0))),
    Pair("swiss", swiss, standard_normal, "Swiss roll → N(0, I) (Rout et al. 2021)",
         ((-6.5, 7.5), (-5.5, 7.0))),
    Pair("maf_moon", maf_moon, standard_normal, "MAF moon → N(0, I) (Huang et al. 2021)",
         ((-5.0, 6.0), (-4.5, 4.5))),
    Pair("rings", rings, standard_normal, "Four rings → N(0, I) (Huang et al. 2021)",
         ((-4.0, 4.0), (-4.0, 4.0))),
    Pair("moon_to_rings", maf_moon, rings, "MAF moon → four rings (Huang et al. 2021)",
         ((-4.5, 6.0), (-4.5, 4.5))),
    Pair("images", image_star, image_heart, "Star picture → heart picture (project's own PNGs, scale 10)",
         ((-5.0, 5.0), (-5.0, 5.0))),
    Pair("square_five_to_four", square_five, square_four,
         "square_five → square_four, OTT convention 5·c + 0.25·N(0, I) (ENOT tutorial, first experiment)",
         ((-7.0, 7.0), (-7.0, 7.0))),
    Pair("moon_to_s_curve", half_moon, s_curve_enot,
         "Rotated half-moon → rotated S-curve (ENOT tutorial, third experiment)", ((-2.0, 2.5), (-3.5, 1.3))),
    Pair("moon_to_rings_enot", maf_moon_enot, rings_enot,
         "MAF moon (shift -5) → rings of radii 3.6/2.7/1.65/0.75 (ENOT tutorial, second experiment)",
         ((-8.0, 5.0), (-4.5, 4.5))),
)

PAIRS: dict[str, Pair] = {p.name: p for p in _PAIRS}
"""Every 2-D pair by name."""
AMOS_PAIRS: tuple[str, ...] = ("gauss8", "gauss_sq", "circles", "moons", "s_curve", "swiss", "maf_moon",
                               "rings", "moon_to_rings", "images")
"""The ten pairs of Amos (2023) (``config/data/*.yaml`` of his w2ot code), in the reference's order."""
ENOT_PAIRS: tuple[str, ...] = ("square_five_to_four", "moon_to_rings_enot", "moon_to_s_curve")
"""The three pairs of the OTT-JAX 0.6.0 ENOT tutorial, in its order."""


def pair(name: str) -> Pair:
    """The pair ``name`` from :data:`PAIRS`."""
    try:
        return PAIRS[name]
    except KeyError:
        raise ValueError(f"unknown 2-D pair {name!r}; choose one of {sorted(PAIRS)}") from None
