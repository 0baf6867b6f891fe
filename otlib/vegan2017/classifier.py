"""The VEGAN cookbook's claims, measured: sample metrics, a digit classifier, and two small experiments.

Bousquet et al. (2017) is a theory paper; its claims are tested here at CPU scale (digest §3):

* **Metrics** (digest §3.3): Laplacian sharpness (WAE paper, Table 1: variance over pixels of the 3x3
  Laplace-filtered image), the mid-gray pixel fraction, and a Frechet distance between Gaussians fitted
  to the penultimate features of a small digit classifier ("FCD"; *not* FID, whose Inception features
  need 299x299 RGB images), with a real-against-real floor and a blurred-data control
  (:class:`SampleScorer`, :func:`reference_scores`). The classifier is trained once
  (``python -m otlib.vegan2017.cookbook train-classifier``) and stored in ``data/digit_classifier.npz``.
* **The POT bound** (digest §2.3, §3.5): for a deterministic decoder, D_POT <= W_c, non-decreasing in
  lambda, approaching W_c as lambda grows. With P_X = N(m, Sigma), G(z) = Az + b and a linear encoder,
  every term is in closed form, so :func:`solve_linear_gaussian_pot` computes D_POT(lambda) to optimiser
  precision and :func:`bures_w2` gives W_2^2(P_X, P_G).
* **Blur** (digest §2.7, §3.4 T2): on :func:`two_prototypes` data, a decoder whose posteriors overlap
  averages the two images; :class:`PrototypeScorer` measures how far its samples are from both.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
from pathlib import Path
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from otlib.data.digits import ImageData, load_images
from otlib.core.files import atomic_write_bytes
from otlib.core.paths import data_dir

__all__ = [
    # image metrics
    "laplacian_sharpness", "midgray_fraction", "blur_images", "gaussian_moments", "bures_w2",
    "frechet_distance",
    # the feature classifier
    "DigitClassifier", "Classifier", "CLASSIFIER_HIDDEN", "classifier_path", "train_classifier",
    "save_classifier", "load_classifier", "classifier_for",
    # scoring samples
    "SampleScorer", "reference_scores", "PrototypeScorer", "two_prototypes",
    # the linear-Gaussian POT bound
    "LinearGaussian", "random_linear_gaussian", "w2_to_model", "ot_encoder", "pot_terms",
    "solve_linear_gaussian_pot",
    # figures
    "tile_images", "interpolate_codes", "mean_std_table",
]

LAPLACE = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], np.float32)
"""The WAE paper's sharpness filter (released ``compute_blurriness``)."""
BINOMIAL = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]).astype(np.float32) / 16.0
"""3x3 binomial blur of the blurred-data control."""
MIDGRAY = (0.25, 0.75)
"""Intensities counted as mid-gray: real digits are near-binary, averaged ones are not (digest §3.3)."""


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
    """Per-image fraction of pixels with intensity in [0.25, 0.75] (digest §3.3, digits-specific)."""
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


def _psd_sqrt(matrix: jax.Array) -> jax.Array:
    """The symmetric square root of a symmetric PSD matrix (eigenvalues clipped at 0)."""
    values, vectors = jnp.linalg.eigh(matrix)
    return (vectors * jnp.sqrt(jnp.clip(values, 0.0))) @ vectors.T


def bures_w2(mean1: jax.Array, cov1: jax.Array, mean2: jax.Array, cov2: jax.Array) -> jax.Array:
    """W_2^2 between N(mean1, cov1) and N(mean2, cov2) (digest §3.5, the Bures formula):

        ||mean1 - mean2||^2 + tr cov1 + tr cov2 - 2 tr (cov1^{1/2} cov2 cov1^{1/2})^{1/2}.

    Degenerate covariances are allowed (eigenvalues are clipped at 0).
    """
    root1 = _psd_sqrt(cov1)
    cross = jnp.linalg.eigvalsh(root1 @ cov2 @ root1)
    return (jnp.sum((mean1 - mean2) ** 2) + jnp.trace(cov1) + jnp.trace(cov2)
            - 2.0 * jnp.sum(jnp.sqrt(jnp.clip(cross, 0.0))))


def frechet_distance(features1: jax.Array, features2: jax.Array) -> jax.Array:
    """The Frechet distance of two feature samples: :func:`bures_w2` of their fitted Gaussians (as FID)."""
    return bures_w2(*gaussian_moments(features1), *gaussian_moments(features2))


# ----------------------------------------------------------------------------------------------------
# The digit classifier whose penultimate layer provides the features.

CLASSIFIER_HIDDEN = {"digits": (128, 32), "mnist": (256, 64)}
"""Hidden widths per data set; the last is the feature width (32-64, digest §3.3)."""
CLASSIFIER_SEED = 0
CLASSIFIER_STEPS = {"digits": 3000, "mnist": 6000}
CLASSIFIER_BATCH = 128


class DigitClassifier(nn.Module):
    """An MLP classifier returning ``(logits, features)``; the features are the last hidden layer."""

    hidden: Sequence[int]
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_classes)(x), x


@dataclasses.dataclass(frozen=True, eq=False)
class Classifier:
    """A trained :class:`DigitClassifier`: its module, parameters and held-out accuracy."""

    module: DigitClassifier
    params: dict
    test_accuracy: float
    data_name: str

    def features(self, images: jax.Array) -> jax.Array:
        """Penultimate activations ``(n, f)`` of images ``(n, D)``."""
        return self.module.apply(self.params, images)[1]

    def probabilities(self, images: jax.Array) -> jax.Array:
        """Class probabilities ``(n, classes)``."""
        return jax.nn.softmax(self.module.apply(self.params, images)[0])


def classifier_path(data_name: str) -> Path:
    """``data/digit_classifier.npz`` for digits (committed); ``data/<name>/<name>_classifier.npz`` otherwise."""
    if data_name == "digits":
        return data_dir("digit_classifier.npz")
    return data_dir(data_name, f"{data_name}_classifier.npz")


def train_classifier(data: ImageData, *, seed: int = CLASSIFIER_SEED, steps: Optional[int] = None) -> Classifier:
    """Train the feature classifier on ``data.x_train`` (AdamW, fixed key: deterministic on one machine)."""
    if data.name not in CLASSIFIER_HIDDEN:
        raise ValueError(f"no classifier recipe for {data.name!r}; known: {sorted(CLASSIFIER_HIDDEN)}")
    module = DigitClassifier(CLASSIFIER_HIDDEN[data.name], data.num_classes)
    steps = steps or CLASSIFIER_STEPS[data.name]
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    tx = optax.adamw(1e-3, weight_decay=1e-4)
    key = jax.random.key(seed)
    params = module.init(key, x[:1])

    def loss_fn(params, xb, yb):
        logits = module.apply(params, xb)[0]
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, yb))

    def step(carry, t):
        params, opt = carry
        idx = jax.random.randint(jax.random.fold_in(key, t), (CLASSIFIER_BATCH,), 0, x.shape[0])
        grads = jax.grad(loss_fn)(params, x[idx], y[idx])
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), None

    (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, jnp.arange(steps)))((params, tx.init(params)))
    predictions = jnp.argmax(module.apply(params, jnp.asarray(data.x_test))[0], axis=-1)
    accuracy = float(jnp.mean(predictions == jnp.asarray(data.y_test)))
    return Classifier(module, params, accuracy, data.name)


def save_classifier(classifier: Classifier, path: Optional[Path] = None) -> Path:
    """Write the classifier as a plain-array ``.npz`` (parameters by path, accuracy, data set name)."""
    path = Path(path) if path is not None else classifier_path(classifier.data_name)
    arrays = {f"params/{k}": np.asarray(v) for k, v in traverse_util.flatten_dict(classifier.params, sep="/").items()}
    arrays["test_accuracy"] = np.float64(classifier.test_accuracy)
    arrays["data_name"] = np.array(classifier.data_name)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_classifier(path: Path) -> Classifier:
    """Read a classifier written by :func:`save_classifier` (never unpickles)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"classifier file {path} is missing; regenerate it with "
                                f"`python -m otlib.vegan2017.cookbook train-classifier`")
    with np.load(path, allow_pickle=False) as archive:
        flat = {k[len("params/"):]: jnp.asarray(archive[k]) for k in archive.files if k.startswith("params/")}
        accuracy, name = float(archive["test_accuracy"]), str(archive["data_name"])
    params = traverse_util.unflatten_dict(flat, sep="/")
    dense = sorted(params["params"], key=lambda layer: int(layer.split("_")[-1]))
    widths = [params["params"][layer]["kernel"].shape[1] for layer in dense]
    return Classifier(DigitClassifier(tuple(widths[:-1]), widths[-1]), params, accuracy, name)


def classifier_for(data: ImageData, *, verbose: bool = True) -> Classifier:
    """The stored classifier of ``data`` (trained and stored first when its file is absent)."""
    path = classifier_path(data.name)
    if path.exists():
        classifier = load_classifier(path)
        first = classifier.params["params"]["Dense_0"]["kernel"]
        if classifier.data_name != data.name or first.shape[0] != data.dim:
            raise ValueError(f"{path} holds a classifier for {classifier.data_name!r} with {first.shape[0]} inputs, "
                             f"not {data.name!r} with {data.dim}; delete it and run "
                             f"`python -m otlib.vegan2017.cookbook train-classifier --data {data.name}`")
        return classifier
    classifier = train_classifier(data)
    save_classifier(classifier, path)
    if verbose:
        print(f"trained the {data.name} feature classifier (test accuracy {classifier.test_accuracy:.3f}) -> {path}")
    return classifier


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
            "fcd": bures_w2(*gaussian_moments(self.classifier.features(images)), *self.test_moments),
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


def two_prototypes(*, classes: tuple[int, int] = (0, 1), num_train: int = 1000, num_test: int = 200,
                   noise: float = 0.1, seed: int = 0) -> ImageData:
    """Two prototype digits plus small pixel noise, the blur experiment's data (digest §3.4 T2).

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


# ----------------------------------------------------------------------------------------------------
# The linear-Gaussian POT bound (digest §3.5).

@dataclasses.dataclass(frozen=True, eq=False)
class LinearGaussian:
    """P_X = N(m, Sigma) on R^d; P_Z = N(0, I_k); a fixed decoder G(z) = A z + b, so P_G = N(b, A A^T)."""

    m: jax.Array
    sigma: jax.Array
    a: jax.Array
    b: jax.Array

    @property
    def latent_dim(self) -> int:
        return int(self.a.shape[1])


def random_linear_gaussian(key: jax.Array, data_dim: int = 4, latent_dim: int = 2) -> LinearGaussian:
    """A random instance: Sigma = L L^T / d + 0.1 I, entries of m, A, b standard normal (A / sqrt(k))."""
    k_m, k_l, k_a, k_b = jax.random.split(key, 4)
    lower = jax.random.normal(k_l, (data_dim, data_dim))
    sigma = lower @ lower.T / data_dim + 0.1 * jnp.eye(data_dim)
    return LinearGaussian(jax.random.normal(k_m, (data_dim,)), sigma,
                          jax.random.normal(k_a, (data_dim, latent_dim)) / jnp.sqrt(latent_dim),
                          jax.random.normal(k_b, (data_dim,)))


def w2_to_model(problem: LinearGaussian) -> jax.Array:
    """W_2^2(P_X, P_G) = W_2^2(N(m, Sigma), N(b, A A^T)) in closed form (:func:`bures_w2`)."""
    return bures_w2(problem.m, problem.sigma, problem.b, problem.a @ problem.a.T)


def ot_encoder(problem: LinearGaussian) -> dict[str, jax.Array]:
    """A linear encoder z = E x + e with Q_Z = P_Z exactly whose cost E||X - G(Z)||^2 is W_2^2 (WAE Thm 1).

    The OT map is T(x) = b + M (x - m) with M = Sigma^{-1/2} (Sigma^{1/2} A A^T Sigma^{1/2})^{1/2} Sigma^{-1/2};
    its range lies in that of A, so T = G o (E, e) with E = A^+ M and e = -E m (A of full column rank).
    """
    root = _psd_sqrt(problem.sigma)
    inv_root = jnp.linalg.inv(root)
    transport = inv_root @ _psd_sqrt(root @ problem.a @ problem.a.T @ root) @ inv_root
    encoder = jnp.linalg.pinv(problem.a) @ transport
    return {"E": encoder, "e": -encoder @ problem.m}


def pot_terms(problem: LinearGaussian, encoder: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """(E c(X, G(Z)), KL(Q_Z || P_Z)) for the deterministic encoder z = E x + e, in closed form.

    X - G(EX + e) = (I - AE) X - (A e + b) is Gaussian, so its mean square is
    ||(I - AE) m - Ae - b||^2 + tr((I - AE) Sigma (I - AE)^T); Q_Z = N(Em + e, E Sigma E^T) and
    KL(N(mu, S) || N(0, I)) = (tr S + ||mu||^2 - k - log det S) / 2. Any divergence D_Z >= 0 that vanishes
    only at Q_Z = P_Z gives the bound; KL keeps every term closed-form and smooth.
    """
    e_mat, e_vec = encoder["E"], encoder["e"]
    residual = jnp.eye(problem.m.shape[0]) - problem.a @ e_mat
    bias = residual @ problem.m - problem.a @ e_vec - problem.b
    cost = jnp.sum(bias ** 2) + jnp.trace(residual @ problem.sigma @ residual.T)
    mu, cov = e_mat @ problem.m + e_vec, e_mat @ problem.sigma @ e_mat.T
    kl = 0.5 * (jnp.trace(cov) + jnp.sum(mu ** 2) - problem.latent_dim - jnp.linalg.slogdet(cov)[1])
    return cost, kl


def solve_linear_gaussian_pot(problem: LinearGaussian, lams: jax.Array, *, iterations: int = 100
                              ) -> dict[str, jax.Array]:
    """D_POT(lambda) = min_{E, e} E c(X, G(EX + e)) + lambda KL(Q_Z || P_Z) for each lambda in ``lams``.

    The lambdas (increasing) are solved in turn by ``iterations`` L-BFGS steps (zoom line search) each,
    every one warm-started at the previous minimiser (a continuation in lambda: the large-lambda problems
    are ill-conditioned from a cold start); the first starts from the least-squares encoder
    E = A^+, e = -A^+ b. Returns ``{"lam", "pot", "cost", "kl"}``, arrays over ``lams``.
    """
    lams = jnp.asarray(lams, jnp.float32)
    if lams.ndim != 1 or not bool(jnp.all(jnp.diff(lams) > 0)):
        raise ValueError(f"lams must be a 1-D increasing sequence, got {lams}")
    pinv = jnp.linalg.pinv(problem.a)
    start = {"E": pinv, "e": -pinv @ problem.b}
    solver = optax.lbfgs()

    def solve(encoder: dict, lam: jax.Array) -> tuple[dict, tuple[jax.Array, jax.Array]]:
        def objective(encoder):
            cost, kl = pot_terms(problem, encoder)
            return cost + lam * kl

        value_and_grad = optax.value_and_grad_from_state(objective)

        def step(carry, _):
            encoder, state = carry
            value, grad = value_and_grad(encoder, state=state)
            updates, state = solver.update(grad, state, encoder, value=value, grad=grad, value_fn=objective)
            return (optax.apply_updates(encoder, updates), state), None

        (encoder, _), _ = jax.lax.scan(step, (encoder, solver.init(encoder)), None, length=iterations)
        return encoder, pot_terms(problem, encoder)

    _, (cost, kl) = jax.jit(lambda lams: jax.lax.scan(solve, start, lams))(lams)
    return {"lam": lams, "pot": cost + lams * kl, "cost": cost, "kl": kl}


# ----------------------------------------------------------------------------------------------------
# Small helpers for figures and tables.

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
        v = np.atleast_1d(np.asarray(v, dtype=float))
        if v.size == 1:
            return f"{v[0]:.{digits}g}"
        return f"{np.nanmean(v):.{digits}g} ± {np.nanstd(v):.2g}"

    return pd.DataFrame({row: {col: cell(v) for col, v in cols.items()} for row, cols in values.items()}).T


# ----------------------------------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m otlib.vegan2017.cookbook train-classifier [--data digits|mnist]``: (re)train and store the classifier."""
    parser = argparse.ArgumentParser(prog="python -m otlib.vegan2017.cookbook", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train-classifier", help="train the feature classifier and store it under data/")
    train.add_argument("--data", default="digits", choices=sorted(CLASSIFIER_HIDDEN))
    args = parser.parse_args(argv)
    data = load_images(args.data)
    classifier = train_classifier(data)
    path = save_classifier(classifier)
    print(f"{args.data} classifier: test accuracy {classifier.test_accuracy:.4f} "
          f"({len(data.x_test)} held-out images) -> {path}")


if __name__ == "__main__":
    main()
