"""Image loaders: the fixed digits split, and MNIST's checks on a small generated file (never the network)."""

from __future__ import annotations

import numpy as np
import pytest

from otlib.data.digits import load_digits, load_images, load_mnist, stratified_split
from otlib.core.files import ChecksumError, sha256_file


def test_digits_split_shapes_ranges_and_strata():
    data = load_digits()
    assert data.x_train.shape == (1438, 64) and data.x_test.shape == (359, 64)
    assert data.x_train.dtype == np.float32 and data.image_shape == (8, 8) and data.num_classes == 10
    for x in (data.x_train, data.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    counts_test = np.bincount(data.y_test, minlength=10)
    counts_all = counts_test + np.bincount(data.y_train, minlength=10)
    np.testing.assert_array_equal(counts_test, np.round(0.2 * counts_all))


def test_digits_split_is_fixed_and_disjoint():
    first, second = load_digits(), load_digits()
    np.testing.assert_array_equal(first.x_test, second.x_test)
    labels = np.repeat(np.arange(3), 10)
    train, test = stratified_split(labels, 0.3, seed=5)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 30
    assert not np.array_equal(test, stratified_split(labels, 0.3, seed=6)[1])


def write_fixture(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), "y_train": rng.integers(0, 10, 12),
              "x_test": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), "y_test": rng.integers(0, 10, 5)}
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return sha256_file(path)


def test_mnist_reads_a_checked_file(tmp_path):
    path = tmp_path / "mnist.npz"
    data = load_mnist(path, sha256=write_fixture(path), download_missing=False)
    assert data.x_train.shape == (12, 784) and data.x_test.shape == (5, 784) and data.image_shape == (28, 28)
    assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0


def test_mnist_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist.npz is missing.*tf-keras-datasets"):
        load_mnist(tmp_path / "mnist.npz", download_missing=False)


def test_mnist_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "mnist.npz"
    digest = write_fixture(path)
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    with pytest.raises(ChecksumError, match="mnist.npz does not match its pinned hash"):
        load_mnist(path, sha256=digest, download_missing=False)


def test_mnist_wrong_contents_are_named(tmp_path):
    path = tmp_path / "mnist.npz"
    with pytest.raises(ValueError, match=r"lacks the arrays \['y_test'\]"):
        load_mnist(path, sha256=write_fixture(path, y_test=None), download_missing=False)
    with pytest.raises(ValueError, match="uint8 of shape"):
        load_mnist(path, sha256=write_fixture(path, x_test=np.zeros((5, 8, 8))), download_missing=False)


def test_mnist_is_never_unpickled(tmp_path):
    path = tmp_path / "mnist.npz"
    digest = write_fixture(path, y_test=np.array([{"not": "an array"}], dtype=object))
    with pytest.raises(ValueError, match="not a readable .npz archive of plain arrays"):
        load_mnist(path, sha256=digest, download_missing=False)


def test_unknown_data_set():
    with pytest.raises(ValueError, match="choose one of"):
        load_images("cifar")
