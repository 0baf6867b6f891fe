"""Pictures as measures: the ``images`` pair of Amos (2023), with the project's own two pictures.

Amos's ``PairImages`` (``w2ot/data.py`` in his w2ot code) reads a grayscale PNG and treats it as a
density on the plane: dark ink is mass,

    p(row, col) ∝ 1 - pixel(row, col) / 255,

and a pixel is placed at ``(col, h - row) / max(h, w)``, then mapped affinely onto
``[-scale/2, scale/2]`` with ``scale = 10``. The two pictures of the reference repository were never
committed (they exist only as links in its README), so this project draws its own, deterministically,
with NumPy: a five-pointed star and a shaded heart (:func:`render`). ``python -m otlib.data.images``
writes them to ``data/images/{star,heart}.png`` (byte-stable; the files are committed).

One deliberate difference from the reference code: a sampled point is spread uniformly over its
pixel's square (the reference puts every point on the pixel's corner, so samples lie on a lattice and
the measure has atoms). The density is then piecewise constant and the map between the two pictures
is well defined. Pixels are drawn with JAX keys (the reference used NumPy's global generator).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from otlib.core.files import atomic_write_bytes
from otlib.core.method import Sampler
from otlib.core.paths import data_dir

__all__ = ["IMAGE_NAMES", "IMAGE_SIZE", "SCALE", "render", "write_images", "image_path", "load_density",
           "image_sampler", "main"]

IMAGE_SIZE = 128
"""Side of the square pictures, in pixels (small: the density is a 16k-way categorical)."""
SCALE = 10.0
"""Width of the square the picture is mapped onto, ``[-5, 5]²`` (w2ot's ``PairImages`` default)."""
_SUPERSAMPLE = 4
"""Each pixel's ink is the fraction of its 4x4 sub-pixel centres inside the shape (anti-aliasing)."""


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel centres in ``[-1, 1]²``, y pointing up, shape ``(size·s, size·s)`` each."""
    m = size * _SUPERSAMPLE
    t = (np.arange(m, dtype=np.float64) + 0.5) / m * 2.0 - 1.0
    x, y = np.meshgrid(t, -t)  # row 0 is the top of the picture
    return x, y


def _pool(values: np.ndarray) -> np.ndarray:
    """Average the sub-pixels of each pixel: ``(size·s, size·s) -> (size, size)``."""
    m = values.shape[0] // _SUPERSAMPLE
    return values.reshape(m, _SUPERSAMPLE, m, _SUPERSAMPLE).mean(axis=(1, 3))


def _inside_polygon(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule: a point is inside when a ray to the right crosses the boundary an odd number of times."""
    inside = np.zeros(x.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        straddles = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= straddles & (x < x_cross)
    return inside


def _star(size: int) -> np.ndarray:
    """Ink of a solid five-pointed star (outer radius 0.92, inner radius 0.38, one point up)."""
    x, y = _grid(size)
    angles = np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, 0.92, 0.38)
    vertices = np.stack([radii * np.cos(angles), radii * np.sin(angles) - 0.06], axis=1)
    return _pool(_inside_polygon(x, y, vertices).astype(np.float64))


def _heart(size: int) -> np.ndarray:
    """Ink of a heart, (u² + v² - 1)³ - u² v³ ≤ 0, darkest at its centre and half as dark at its rim."""
    x, y = _grid(size)
    u, v = 1.3 * x, 1.3 * y + 0.15
    inside = (u ** 2 + v ** 2 - 1.0) ** 3 - u ** 2 * v ** 3 <= 0.0
    shade = 1.0 - 0.5 * np.clip(np.hypot(u, v - 0.2) / 1.3, 0.0, 1.0)
    return _pool(np.where(inside, shade, 0.0))


_SHAPES: dict[str, Callable[[int], np.ndarray]] = {"star": _star, "heart": _heart}
IMAGE_NAMES: tuple[str, ...] = tuple(_SHAPES)
"""The project's pictures, in the ``images`` pair's order (source, target)."""


def _check_name(name: str) -> None:
    if name not in _SHAPES:
        raise ValueError(f"unknown picture {name!r}; choose one of {list(IMAGE_NAMES)}")


def render(name: str, size: int = IMAGE_SIZE) -> np.ndarray:
    """The picture ``name`` as 8-bit grayscale pixels ``(size, size)``: white paper (255), dark ink."""
    _check_name(name)
    ink = _SHAPES[name](size)
    return np.round(255.0 * (1.0 - ink)).astype(np.uint8)


def image_path(name: str, directory: Path | None = None) -> Path:
    """Where the picture ``name`` lives (``data/images/<name>.png`` by default)."""
    _check_name(name)
    return (directory or data_dir("images")) / f"{name}.png"


def _png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


def write_images(directory: Path | None = None) -> list[Path]:
    """Draw every picture and write it as PNG, atomically; the bytes are the same on every run."""
    paths = []
    for name in IMAGE_NAMES:
        path = image_path(name, directory)
        atomic_write_bytes(path, _png_bytes(render(name)))
        paths.append(path)
    return paths


@functools.cache
def load_density(name: str, directory: Path | None = None) -> np.ndarray:
    """The picture's density ``(h, w)``, float32, ∝ 1 - pixel/255 and summing to one (as w2ot's ``PairImages``).

    Raises:
      FileNotFoundError: the PNG is missing (regenerate it with ``python -m otlib.data.images``).
      ValueError: the picture is blank, so there is no mass to sample.
    """
    from PIL import Image

    path = image_path(name, directory)
    if not path.exists():
        raise FileNotFoundError(f"picture {path} is missing; regenerate it with `python -m otlib.data.images`")
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    ink = 1.0 - pixels / 255.0
    if ink.sum() <= 0.0:
        raise ValueError(f"picture {path} is blank (all white): it holds no mass to sample")
    density = (ink / ink.sum()).astype(np.float32)
    density.setflags(write=False)
    return density


def image_sampler(name: str, scale: float = SCALE) -> Sampler:
    """The measure of picture ``name`` on ``[-scale/2, scale/2]²``, as ``sample(key, n) -> (n, 2)``.

    A pixel is drawn from the density (inverse-CDF sampling via ``jax.random.choice``), then the point
    is spread uniformly over that pixel's square; the PNG is read on the first call, not at import.
    """
    _check_name(name)

    def sample(key: jax.Array, n: int) -> jax.Array:
        density = load_density(name)
        h, w = density.shape
        key_pixel, key_jitter = jax.random.split(key)
        index = jax.random.choice(key_pixel, h * w, shape=(n,), p=jnp.asarray(density.ravel()))
        row, col = jnp.divmod(index, w)
        jitter = jax.random.uniform(key_jitter, (n, 2), dtype=jnp.float32)
        corner = jnp.stack([col, h - 1 - row], axis=1).astype(jnp.float32)  # lower-left corner of the pixel
        unit = (corner + jitter) / max(h, w)
        return (scale * (unit - 0.5)).astype(jnp.float32)

    sample.__name__ = sample.__qualname__ = f"image_{name}"
    sample.__doc__ = f"The picture {name!r} as a measure on [-{scale / 2:g}, {scale / 2:g}]² (see `image_sampler`)."
    return sample


def main() -> None:
    """``python -m otlib.data.images``: (re)write the project's pictures under ``data/images/``."""
    for path in write_images():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
