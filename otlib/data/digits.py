"""Handwritten digits for the POT-vs-VAE experiments: scikit-learn's 8x8 digits and MNIST.

* :func:`load_digits` (the quick CPU default): the 1797 bundled 8x8 images of ``sklearn.datasets``
  (no download), scaled by 1/16 to [0, 1], split 80/20 per class with a seeded local RNG.
* :func:`load_mnist` (the full profile, WAE paper §4): the 70,000 28x28 images as Keras publishes them,
  one ``mnist.npz`` with arrays ``x_train (60000, 28, 28) uint8``, ``y_train``, ``x_test``, ``y_test``,
  downloaded once into ``data/mnist/`` and checked against its pinned SHA-256 (the checksum Keras pins in
  ``keras/datasets/mnist.py``). Offline, copy that file there by hand (or pass ``path=``); it is read with
  ``allow_pickle=False``, never unpickled. We keep the standard 60k/10k split; the released WAE code
  instead merges both parts and holds out 10k after a seed-123 shuffle.

Both return an :class:`ImageData`: flat float32 images in [0, 1] (``(n, h*w)``, the layout the MLP
networks and the squared-L2 cost use) plus their shape for plotting and convolutions.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from otlib.core.files import download, verify
from otlib.core.paths import data_dir

__all__ = ["ImageData", "load_digits", "load_mnist", "load_images", "stratified_split", "MNIST_URL",
           "MNIST_SHA256", "DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION"]

DIGITS_SPLIT_SEED = 0
"""Seed of the local RNG behind the fixed digits split (any fixed value; the split never changes)."""
DIGITS_TEST_FRACTION = 0.2
"""Held-out fraction per class: 1797 -> 1438 train / 359 test."""
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
"""SHA-256 of Keras's ``mnist.npz`` (pinned by ``keras.datasets.mnist.load_data``)."""
_MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
    """A labelled image set split into train and test parts.

    Attributes:
      name: ``"digits"``, ``"mnist"``, or the name of a procedural set.
      x_train, x_test: ``(n, h*w)`` float32 pixels in [0, 1], one flattened image per row.
      y_train, y_test: ``(n,)`` int32 class labels.
      image_shape: ``(h, w)``, to reshape a row into an image.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]

    @property
    def dim(self) -> int:
        """Pixels per image, h*w."""
        return int(np.prod(self.image_shape))

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def images(self, x: np.ndarray) -> np.ndarray:
        """Rows ``(..., h*w)`` back to images ``(..., h, w)``."""
        return np.asarray(x).reshape(*np.shape(x)[:-1], *self.image_shape)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices holding out ``round(test_fraction * count)`` of every class.

    A local ``numpy.random.default_rng(seed)`` permutes each class, so the split depends on nothing but
    ``seed`` (not on a global RNG, not on the order classes are visited).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = int(round(test_fraction * members.size))
        test.append(members[:cut])
        train.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits(*, test_fraction: float = DIGITS_TEST_FRACTION, seed: int = DIGITS_SPLIT_SEED) -> ImageData:
    """scikit-learn's bundled 8x8 digits (integers 0..16) scaled to [0, 1], split per class."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images.reshape(len(bunch.images), -1) / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    train, test = stratified_split(y, test_fraction, seed)
    return ImageData("digits", x[train], y[train], x[test], y[test], (8, 8))


def _read_mnist_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of an ``mnist.npz``, read without unpickling anything."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files if k in _MNIST_KEYS}
            files = sorted(archive.files)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:  # truncated, not a zip, or pickled
        raise ValueError(f"{path} is not a readable .npz archive of plain arrays ({err}); delete it and "
                         f"fetch it again from {MNIST_URL}") from err
    missing = [k for k in _MNIST_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the arrays {missing} (it holds {files}); expected Keras's mnist.npz "
                         f"with {list(_MNIST_KEYS)}")
    return arrays


def load_mnist(path: Optional[str | Path] = None, *, download_missing: bool = True,
               sha256: str = MNIST_SHA256) -> ImageData:
    """MNIST as :class:`ImageData` (28x28, pixels /255), from a checksummed ``mnist.npz``.

    Args:
      path: the file; default ``data/mnist/mnist.npz``.
      download_missing: fetch ``MNIST_URL`` into ``path`` when the file is absent (needs the network).
      sha256: the pinned SHA-256 checksum; tests pass the hash of their own small fixture.

    Raises:
      FileNotFoundError: no file and ``download_missing=False`` (the message says where to get it).
      otlib.core.files.ChecksumError: the file is not the pinned one (corrupt, truncated, another version).
      ValueError: the file is not an ``.npz`` of uint8/integer arrays with the four expected keys.
    """
    path = Path(path) if path is not None else data_dir("mnist", "mnist.npz")
    if not path.exists():
        if not download_missing:
            raise FileNotFoundError(
                f"MNIST file {path} is missing. Download {MNIST_URL} (SHA-256 {sha256}) to that path, or call "
                f"load_mnist(download_missing=True) on a machine with network access.")
        download(MNIST_URL, path, sha256=sha256)
    verify(path, sha256=sha256)
    arrays = _read_mnist_npz(path)
    images = {k: arrays[k] for k in ("x_train", "x_test")}
    for key, x in images.items():
        if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
            raise ValueError(f"{path}: {key} must be uint8 of shape (n, 28, 28), got {x.dtype} {x.shape}")
    flat = {k: (x.reshape(len(x), -1) / 255.0).astype(np.float32) for k, x in images.items()}
    return ImageData("mnist", flat["x_train"], arrays["y_train"].astype(np.int32),
                     flat["x_test"], arrays["y_test"].astype(np.int32), (28, 28))


_LOADERS = {"digits": load_digits, "mnist": load_mnist}


def load_images(name: str) -> ImageData:
    """A data set by name: ``"digits"`` (quick profile) or ``"mnist"`` (full profile)."""
    if name not in _LOADERS:
        raise ValueError(f"unknown image data set {name!r}; choose one of {sorted(_LOADERS)}")
    return _LOADERS[name]()
