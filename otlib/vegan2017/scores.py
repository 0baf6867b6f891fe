"""Scores of generated digit images against held-out ones: sharpness, mid-gray pixels, and a Frechet distance.

* Laplacian sharpness: the variance over pixels of the 3x3 Laplace-filtered image (Tolstikhin et al.
  2018, arXiv:1711.01558, Table 1; ``compute_blurriness`` in the released ``tolstikhin/wae`` code);
* the mid-gray pixel fraction, a digits-specific measure: real digits are near-binary, blends are not;
* "FCD", the Frechet distance between Gaussians fitted to the penultimate features of the small digit
  classifier of :mod:`otlib.vegan2017.classifier` (as FID, Heusel et al. 2017, arXiv:1706.08500, but *not*
  FID, whose Inception features need 299x299 RGB images);

gathered by :class:`SampleScorer`, and read against a real-against-real floor and a blurred-data control
(:func:`reference_scores`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from otlib.data.digits import ImageData
from otlib.ot.gaussian import gaussian_w2_squared
from otlib.vegan2017.classifier import Classifier

__all__ = ["laplacian_sharpness", "midgray_fraction", "blur_images",
           "gaussian_moments", "frechet_distance", "SampleScorer", "reference_scores"]

LAPLACE = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], np.float32)
"""The WAE paper's sharpness filter (released ``compute_blurriness``)."""
BINOMIAL = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]).astype(np.float32) / 16.0
"""3x3 binomial blur of the blurred-data control."""
MIDGRAY = (0.25, 0.75)
"""Intensities counted as mid-gray: real digits are near-binary, averaged ones are not."""


# ----------------------------------------------------------------------------------------------------
# Image metrics. Images are rows (n, h*w) with their shape given, as in ImageData.

def _filter_valid(images: jax.Array, kernel: np.ndarray) -> jax.Array:
    """2-D correlation of each image ``(n, h, w)`` with a 3x3 kernel, 'valid' part only: ``(n, h-2, w-2)``."""
    h, w = images.shape[-2:]
    return sum(kernel[i, j] * images[..., i:h - 2 + i, j:w - 2 + j] for i in range(3) for j in range(3)
               if kernel[i, j] != 0.0)


def laplacian_sharpness(images: jax.Array, image_shape: tuple[int, int]) -> jax.Array:
    """Per-image sharpness: variance over pixels of the 'valid' 3x3 Laplacian (WAE paper, Table 1).

    Higher is sharper. WAE Table 1 (CelebA 64x64, pixels in [-1, 1]): VAE 3e-3, WAE 6e-3, data 2e-2.
    Values depend on resolution and pixel range, so compare ratios to real images of the same set.
    """
    filtered = _filter_valid(images.reshape(-1, *image_shape), LAPLACE)
    return jnp.var(filtered.reshape(filtered.shape[0], -1), axis=-1)


def midgray_fraction(images: jax.Array) -> jax.Array:
    """Per-image fraction of pixels with intensity in [0.25, 0.75] (a digits-specific measure, not the papers')."""
    low, high = MIDGRAY
    return jnp.mean((images >= low) & (images <= high), axis=-1)


def blur_images(images: jax.Array, image_shape: tuple[int, int]) -> jax.Array:
    """The blurred-data control: each image convolved with the 3x3 binomial kernel (zero padding)."""
    padded = jnp.pad(images.reshape(-1, *image_shape), ((0, 0), (1, 1), (1, 1)))
    return _filter_valid(padded, BINOMIAL).reshape(images.shape)


def gaussian_moments(features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and (unbiased) covariance of ``(n, f)`` features."""
    mean = jnp.mean(features, axis=0)
    centred = features - mean
    return mean, centred.T @ centred / (features.shape[0] - 1)


def frechet_distance(features1: jax.Array, features2: jax.Array) -> jax.Array:
    """The Frechet distance of two feature samples: W₂² between their fitted Gaussians (as FID)."""
    return gaussian_w2_squared(*gaussian_moments(features1), *gaussian_moments(features2))


# ----------------------------------------------------------------------------------------------------
# Scoring samples against held-out data.

@dataclasses.dataclass(frozen=True, eq=False)
class SampleScorer:
    """Scores of model samples against the test images (a ``sample_metrics`` for :mod:`otlib.vegan2017.pot`).

    Calling it on ``(num_samples, D)`` images returns ``fcd`` (Frechet distance of classifier features
    to the test set's), ``sharpness`` (mean Laplacian variance), ``sharpness_ratio`` (over the test
    images'), ``midgray`` and ``confidence`` (mean top class probability). ``num_samples`` defaults to
    the number of training images (at most 10,000), so :func:`reference_scores`' train-vs-test floor
    compares samples of the same sizes.
    """

    classifier: Classifier
    image_shape: tuple[int, int]
    test_moments: tuple[jax.Array, jax.Array]
    test_sharpness: float
    num_samples: int

    @classmethod
    def for_data(cls, data: ImageData, classifier: Classifier, num_samples: Optional[int] = None) -> "SampleScorer":
        x_test = jnp.asarray(data.x_test)
        moments = gaussian_moments(classifier.features(x_test))
        sharpness = float(jnp.mean(laplacian_sharpness(x_test, data.image_shape)))
        n = num_samples or min(len(data.x_train), 10_000)
        return cls(classifier, tuple(data.image_shape), moments, sharpness, n)

    def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
        sharpness = jnp.mean(laplacian_sharpness(images, self.image_shape))
        return {
            "fcd": gaussian_w2_squared(*gaussian_moments(self.classifier.features(images)), *self.test_moments),
            "sharpness": sharpness,
            "sharpness_ratio": sharpness / self.test_sharpness,
            "midgray": jnp.mean(midgray_fraction(images)),
            "confidence": jnp.mean(jnp.max(self.classifier.probabilities(images), axis=-1)),
        }


def reference_scores(data: ImageData, scorer: SampleScorer) -> dict[str, dict[str, float]]:
    """The scores of real images, the floors and controls the models are read against:

    * ``"real (train vs test)"``: ``num_samples`` training images scored like model samples, the
      analogue of WAE Table 1's "true data" row (FID 2, sharpness 2e-2);
    * ``"blurred real"``: the same images after :func:`blur_images`, what pure blur costs.
    """
    real = jnp.asarray(data.x_train[:scorer.num_samples])
    rows = {"real (train vs test)": real, "blurred real": blur_images(real, data.image_shape)}
    return {name: {k: float(v) for k, v in scorer(images).items()} for name, images in rows.items()}

