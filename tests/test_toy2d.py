"""The 2-D, sphere and picture measures: shapes, determinism, and the moments their definitions imply."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.data import images, sphere, toy2d

N = 20_000


def draw(sampler, seed: int = 0, n: int = N) -> np.ndarray:
    return np.asarray(sampler(jax.random.key(seed), n))


@pytest.fixture(scope="module")
def batches():
    """Every measure sampled inside one jitted function (one compilation), for keys 0, 0 and 1."""
    sample_all = jax.jit(lambda key: {name: sample(key, 257) for name, sample in toy2d.MEASURES.items()})
    return [jax.device_get(sample_all(jax.random.key(seed))) for seed in (0, 0, 1)]


@pytest.mark.parametrize("name", sorted(toy2d.MEASURES))
def test_sampler_contract(batches, name):
    a, again, other = (batch[name] for batch in batches)
    assert a.shape == (257, 2) and a.dtype == np.float32
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, again)
    assert not np.allclose(a, other)


def test_registry_holds_the_ten_amos_pairs_and_the_enot_pairs():
    assert set(toy2d.AMOS_PAIRS) | set(toy2d.ENOT_PAIRS) == set(toy2d.PAIRS)
    assert len(toy2d.AMOS_PAIRS) == 10
    assert toy2d.pair("gauss8").target is toy2d.gauss_8
    with pytest.raises(ValueError, match="unknown 2-D pair 'gauss9'.*moon_to_rings"):
        toy2d.pair("gauss9")


def test_bounds_hold_both_measures():
    for p in toy2d.PAIRS.values():
        (x_lo, x_hi), (y_lo, y_hi) = p.bounds
        for points in (draw(p.source, 0), draw(p.target, 1)):
            inside = (points[:, 0] >= x_lo) & (points[:, 0] <= x_hi) & (points[:, 1] >= y_lo) & (points[:, 1] <= y_hi)
            assert inside.mean() > 0.995, p.name


def nearest_centre_offset(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(points[:, None, :] - centres[None], axis=-1)
    return points - centres[d.argmin(axis=1)], d.argmin(axis=1)


@pytest.mark.parametrize("sampler, centres", [
    (toy2d.gauss_8, 5 * np.array([[math.cos(a), math.sin(a)] for a in np.arange(8) * math.pi / 4])),
    (toy2d.square_five, 5 * np.array([[0, 0], [1, 1], [-1, 1], [-1, -1], [1, -1]])),
    (toy2d.square_four, 5 * np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])),
    (toy2d.gauss_1_small, np.zeros((1, 2))),
], ids=["gauss_8", "square_five", "square_four", "gauss_1_small"])
def test_gaussian_mixtures_have_std_quarter_around_scaled_centres(sampler, centres):
    offset, k = nearest_centre_offset(draw(sampler), centres)
    np.testing.assert_allclose(offset.std(axis=0), 0.25, rtol=0.03)  # "variance 0.5" means std 0.25
    np.testing.assert_allclose(offset.mean(axis=0), 0.0, atol=0.01)
    np.testing.assert_allclose(np.bincount(k, minlength=len(centres)) / N, 1 / len(centres), atol=0.015)


def test_standard_normal_moments():
    x = draw(toy2d.standard_normal)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(np.cov(x.T), np.eye(2), atol=0.04)


def test_circles_radii():
    for sampler, radius in ((toy2d.circle_big, 1.0), (toy2d.circle_small, 0.5)):
        r = np.linalg.norm(draw(sampler), axis=1)
        assert abs(r.mean() - radius) < 2e-3 and 0.008 < r.std() < 0.012  # noise 0.01
        angle = np.arctan2(*draw(sampler).T[::-1])
        assert np.histogram(angle, bins=8, range=(-np.pi, np.pi))[0].min() > 0.11 * N  # uniform angle


def test_moons_lie_exactly_on_their_arcs():
    upper, lower = draw(toy2d.moon_upper), draw(toy2d.moon_lower)
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0, atol=1e-5)  # no noise
    np.testing.assert_allclose(np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0, atol=1e-5)
    assert upper[:, 1].min() >= 0 and -1 <= upper[:, 0].min() and upper[:, 0].max() <= 1
    assert lower[:, 1].max() <= 0.5 and 0 <= lower[:, 0].min() and lower[:, 0].max() <= 2
    np.testing.assert_allclose(upper.mean(axis=0), [0.0, 2 / np.pi], atol=0.01)


def test_s_curve_and_swiss_roll_shapes():
    s = draw(toy2d.s_curve)
    assert np.abs(s[:, 0]).max() < 10.3 and np.abs(s[:, 1]).max() < 5.3  # 5 · (sign(t)(cos t - 1), sin t)
    np.testing.assert_allclose(s.mean(axis=0), 0.0, atol=0.2)  # odd in t; per-coordinate std ≤ 6
    r = np.linalg.norm(draw(toy2d.swiss), axis=1)  # 0.5 t, t in [1.5π, 4.5π]
    assert 0.5 * 1.5 * np.pi - 0.02 < r.min() and r.max() < 0.5 * 4.5 * np.pi + 0.02
    np.testing.assert_allclose(r.mean(), 0.5 * 3 * np.pi, rtol=0.02)


@pytest.mark.parametrize("sampler, shift", [(toy2d.maf_moon, -2.0), (toy2d.maf_moon_enot, -5.0)])
def test_maf_moon(sampler, shift):
    x = draw(sampler)
    np.testing.assert_allclose(x[:, 1].std(), 1.0, rtol=0.03)
    np.testing.assert_allclose(x[:, 0].mean(), 0.5 + shift, atol=0.02)  # ½(E z₁ + E z₂²) + shift
    np.testing.assert_allclose(x[:, 0].var(), 0.25 * (1 + 2), rtol=0.05)  # ¼(Var z₁ + Var z₂²)


@pytest.mark.parametrize("sampler, radii", [(toy2d.rings, (3.0, 2.25, 1.5, 0.75)),
                                            (toy2d.rings_enot, (3.6, 2.7, 1.65, 0.75))])
def test_rings_radii(sampler, radii):
    r = np.linalg.norm(draw(sampler), axis=1)
    d = np.abs(r[:, None] - np.array(radii)[None])
    assert np.percentile(d.min(axis=1), 99) < 0.25  # noise 0.08
    np.testing.assert_allclose(np.bincount(d.argmin(axis=1), minlength=4) / N, 0.25, atol=0.015)


def test_enot_tutorial_moon_and_s_curve_placement():
    # upper arc mean (0, 2/π), rotated by π/6, shifted by (0, -0.5)
    expected = toy2d.rotation(np.pi / 6) @ np.array([0.0, 2 / np.pi]) + np.array([0.0, -0.5])
    np.testing.assert_allclose(draw(toy2d.half_moon).mean(axis=0), expected, atol=0.015)
    s = draw(toy2d.s_curve_enot)
    np.testing.assert_allclose(s.mean(axis=0), [0.5, -2.0], atol=0.02)  # the S-curve is odd in t
    centred = (s - [0.5, -2.0]) @ toy2d.rotation(-np.pi / 6)  # undo the rotation: back to 0.6 · (z, x)
    assert np.abs(centred[:, 0]).max() < 0.6 * 2 + 0.25 and np.abs(centred[:, 1]).max() < 0.6 + 0.25


# --- pictures ---

def test_pictures_are_committed_and_reproducible(tmp_path):
    for name in images.IMAGE_NAMES:
        density = images.load_density(name)
        assert density.shape == (images.IMAGE_SIZE,) * 2 and abs(density.sum() - 1) < 1e-4
        ink = 255.0 - images.render(name)
        np.testing.assert_allclose(density, ink / ink.sum(), atol=1e-7)
    first = [p.read_bytes() for p in images.write_images(tmp_path / "a")]
    second = [p.read_bytes() for p in images.write_images(tmp_path / "b")]
    assert first == second


def test_missing_picture_says_how_to_regenerate(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m otlib.data.images"):
        images.load_density("star", tmp_path)
    with pytest.raises(ValueError, match="unknown picture 'moon'"):
        images.image_sampler("moon")


@pytest.mark.parametrize("name", images.IMAGE_NAMES)
def test_picture_samples_follow_the_density(name):
    x = draw(images.image_sampler(name), n=50_000)
    assert np.all(np.abs(x) <= images.SCALE / 2)
    # bin into 8x8 blocks of 16x16 pixels: row 0 is the top of the picture, so flip y
    block = images.IMAGE_SIZE // 8
    col = np.floor((x[:, 0] / images.SCALE + 0.5) * 8).astype(int)
    row = 7 - np.floor((x[:, 1] / images.SCALE + 0.5) * 8).astype(int)
    empirical = np.bincount(row * 8 + col, minlength=64) / len(x)
    density = images.load_density(name).reshape(8, block, 8, block).sum(axis=(1, 3)).ravel()
    assert 0.5 * np.abs(empirical - density).sum() < 0.02  # total variation on the blocks


# --- sphere ---

@pytest.mark.parametrize("sampler, centres", [(sphere.sphere_source, sphere.SOURCE_DIRECTIONS),
                                              (sphere.sphere_target, sphere.TARGET_DIRECTIONS)],
                         ids=["source", "target"])
def test_sphere_measures(sampler, centres):
    sample = jax.jit(sampler, static_argnums=1)
    x = np.asarray(sample(jax.random.key(0), N))
    assert x.shape == (N, 3) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(x, sample(jax.random.key(0), N))
    assert not np.allclose(x, sample(jax.random.key(1), N))
    angle = np.asarray(sphere.geodesic_distance(x[:, None], jnp.asarray(centres)[None]))
    assert np.percentile(angle.min(axis=1), 99) < 0.7  # clusters with σ ≤ 0.2 (κ ≥ 25)
    np.testing.assert_allclose(np.bincount(angle.argmin(axis=1)) / N, 1 / len(centres), atol=0.015)


def test_geodesic_distance():
    e = jnp.eye(3)
    np.testing.assert_allclose(sphere.geodesic_distance(e[0], e[1]), np.pi / 2, atol=1e-6)
    np.testing.assert_allclose(sphere.geodesic_distance(e[0], -e[0]), np.pi, atol=2e-3)
    grad = jax.grad(lambda x: sphere.geodesic_distance(x, e[0]))(e[0])
    assert np.all(np.isfinite(grad))
    assert sphere.SPHERE_PAIR.source is sphere.sphere_source
