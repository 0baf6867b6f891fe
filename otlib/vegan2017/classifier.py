"""The small digit classifier whose penultimate features give :mod:`otlib.vegan2017.scores` its Frechet distance.

An MLP trained once per data set with a fixed key and stored as plain arrays: ``data/digit_classifier.npz``
for scikit-learn's digits (committed), ``data/<name>/<name>_classifier.npz`` otherwise.
``python -m otlib.vegan2017.classifier train-classifier [--data digits|mnist]`` (re)trains and stores it.
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

from otlib.core.files import atomic_write_bytes
from otlib.core.paths import data_dir
from otlib.data.digits import ImageData, load_images

__all__ = ["DigitClassifier", "Classifier", "CLASSIFIER_HIDDEN", "classifier_path", "train_classifier",
           "save_classifier", "load_classifier", "classifier_for"]


CLASSIFIER_HIDDEN = {"digits": (128, 32), "mnist": (256, 64)}
"""Hidden widths per data set; the last is the feature width."""
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
                                f"`python -m otlib.vegan2017.classifier train-classifier`")
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
                             f"`python -m otlib.vegan2017.classifier train-classifier --data {data.name}`")
        return classifier
    classifier = train_classifier(data)
    save_classifier(classifier, path)
    if verbose:
        print(f"trained the {data.name} feature classifier (test accuracy {classifier.test_accuracy:.3f}) -> {path}")
    return classifier


# ----------------------------------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m otlib.vegan2017.classifier train-classifier [--data digits|mnist]``: (re)train and store
    the classifier."""
    parser = argparse.ArgumentParser(prog="python -m otlib.vegan2017.classifier", description=main.__doc__)
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
