"""Small helpers for the POT-vs-VAE figures and tables: image mosaics, code interpolations, mean ± std cells."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from otlib.core.summary import format_mean_std

__all__ = ["tile_images", "interpolate_codes", "mean_std_table"]


def tile_images(images: np.ndarray, image_shape: tuple[int, int], ncols: int, pad: int = 1,
                fill: float = 0.0) -> np.ndarray:
    """Rows ``(n, h*w)`` as one ``(rows*(h+pad)-pad, ncols*(w+pad)-pad)`` mosaic, gaps set to ``fill``
    (0 = background of a digit: white under the ``gray_r`` colour map)."""
    images = np.asarray(images).reshape(-1, *image_shape)
    h, w = image_shape
    nrows = -(-len(images) // ncols)
    canvas = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad), fill, np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = image
    return canvas


def interpolate_codes(z_start: jax.Array, z_end: jax.Array, num: int) -> jax.Array:
    """``num`` codes on the segment from ``z_start`` to ``z_end`` (WAE Fig. 2/3 interpolations)."""
    t = jnp.linspace(0.0, 1.0, num)[:, None]
    return (1.0 - t) * z_start + t * z_end


def mean_std_table(values: dict[str, dict[str, np.ndarray]], digits: int = 3):
    """A pandas table of "mean ± std" strings: ``values[row][column]`` are per-seed arrays (NaN = diverged)."""
    import pandas as pd

    def cell(v: np.ndarray) -> str:
        return format_mean_std(np.atleast_1d(np.asarray(v, dtype=float)), fmt=f".{digits}g", std_fmt=".2g")

    return pd.DataFrame({row: {col: cell(v) for col, v in cols.items()} for row, cols in values.items()}).T

