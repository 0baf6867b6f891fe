"""The blur experiment: two prototype digits, and how far a model's samples are from both.

Bousquet et al. (2017, arXiv:1705.07642) explain the VAE's blurry samples by its per-sample penalty
KL(Q(Z|x) || P_Z): the posteriors of different inputs overlap, and under the squared cost the best
decoder returns E[X | Z = z], an average of the inputs whose posteriors cover z (Tolstikhin et al. 2018,
arXiv:1711.01558, Fig. 1). On :func:`two_prototypes` data that average is a blend of the two images;
:class:`PrototypeScorer` measures how far samples are from both prototypes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from otlib.data.digits import ImageData, load_images
from otlib.vegan2017.scores import midgray_fraction

__all__ = ["two_prototypes", "PrototypeScorer"]


def two_prototypes(*, classes: tuple[int, int] = (0, 1), num_train: int = 1000, num_test: int = 200,
                   noise: float = 0.1, seed: int = 0) -> ImageData:
    """Two prototype digits plus small pixel noise, the blur experiment's data.

    The prototypes are the binarised (> 0.5) class means of two digits classes; each image is one of
    them (equal odds) plus N(0, noise^2) per pixel, clipped to [0, 1]; the labels say which.
    :meth:`PrototypeScorer.from_classes` recovers the two prototypes.
    """
    digits = load_images("digits")
    protos = np.stack([(digits.x_train[digits.y_train == c].mean(axis=0) > 0.5) for c in classes]).astype(np.float32)
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, n).astype(np.int32)
        x = np.clip(protos[labels] + noise * rng.standard_normal((n, protos.shape[1])), 0.0, 1.0)
        return x.astype(np.float32), labels

    (x_train, y_train), (x_test, y_test) = draw(num_train), draw(num_test)
    return ImageData("two_prototypes", x_train, y_train, x_test, y_test, digits.image_shape)


@dataclasses.dataclass(frozen=True, eq=False)
class PrototypeScorer:
    """Blur of samples on :func:`two_prototypes` data (a ``sample_metrics`` for :mod:`otlib.vegan2017.pot`).

    * ``prototype_distance``: mean over samples of min_p ||s - p||^2 / ||p_0 - p_1||^2 (0 on a prototype,
      1/4 for the half-half blend);
    * ``blended``: fraction of samples farther than a 25% blend, (1/4)^2 = 1/16 of the gap, from both;
    * ``midgray``: mean fraction of mid-gray pixels (binary prototypes have none).
    """

    prototypes: jax.Array
    num_samples: int = 1000

    @classmethod
    def from_classes(cls, data: ImageData, num_samples: int = 1000) -> "PrototypeScorer":
        """The prototypes of :func:`two_prototypes` data: the noiseless class images, recovered as
        the rounded class means of its training images."""
        protos = np.stack([np.round(data.x_train[data.y_train == c].mean(axis=0)) for c in (0, 1)])
        return cls(jnp.asarray(protos, jnp.float32), num_samples)

    def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
        gap = jnp.sum((self.prototypes[0] - self.prototypes[1]) ** 2)
        nearest = jnp.min(jnp.sum((images[:, None, :] - self.prototypes[None]) ** 2, axis=-1), axis=-1) / gap
        return {"prototype_distance": jnp.mean(nearest), "blended": jnp.mean(nearest > 1.0 / 16.0),
                "midgray": jnp.mean(midgray_fraction(images))}

