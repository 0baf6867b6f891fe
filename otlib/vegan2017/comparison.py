"""The POT-against-VAE comparison of ``vegan2017_pot_vs_vae`` as named runs (Tolstikhin et al. 2018,
arXiv:1711.01558, §4 and Table 1; Bousquet et al. 2017, arXiv:1705.07642, §4).

:func:`setup` loads the images and the feature classifier and fixes the shared networks; :func:`model_runs`
gives the three models (VAE, WAE-MMD, WAE-GAN) and :func:`sweep_runs` WAE-MMD at other λ, each a
:class:`~otlib.core.train.Run` with its seeds vmapped. The notebook trains them, and
``python -m otlib.sweep --notebook vegan2017_pot_vs_vae`` submits the same runs as batch jobs, one per model
and λ; the notebook then reads them back from their checkpoints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax

from otlib.core.train import Run
from otlib.data.digits import ImageData, load_images
from otlib.vegan2017 import pot
from otlib.vegan2017.classifier import Classifier, classifier_for
from otlib.vegan2017.scores import SampleScorer

__all__ = ["Comparison", "setup", "model_runs", "sweep_runs"]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What every model of the comparison shares: the images, the networks and optimiser, the scorer."""

    data: ImageData
    net: pot.NetConfig
    classifier: Classifier
    scorer: SampleScorer


def setup(data_name: str, *, architecture: str, hidden: Sequence[int], latent_dim: int, batch_size: int,
          learning_rate: float, lr_decay_epochs: Sequence[Sequence[float]] = ()) -> Comparison:
    """Load ``data_name`` and its feature classifier (trained and stored on first use) and fix the networks."""
    data = load_images(data_name)
    net = pot.NetConfig(architecture=architecture, latent_dim=latent_dim, hidden=tuple(hidden),
                        batch_size=batch_size, lr=learning_rate, lr_decay_epochs=tuple(map(tuple, lr_decay_epochs)))
    classifier = classifier_for(data)
    return Comparison(data, net, classifier, SampleScorer.for_data(data, classifier))


def model_runs(comparison: Comparison, *, seed: int, num_steps: int, num_seeds: int, chunk_size: int,
               lam_mmd: float, lam_gan: float, adversary_hidden: Sequence[int], adversary_lr: float) -> dict[str, Run]:
    """``{"VAE", "WAE-MMD", "WAE-GAN": Run}`` on the same networks; model i's key is ``fold_in(key(seed), i)``."""
    options = {"VAE": {},
               "WAE-MMD": {"lam": lam_mmd},
               "WAE-GAN": {"lam": lam_gan, "adversary_hidden": tuple(adversary_hidden), "adversary_lr": adversary_lr}}
    key = jax.random.key(seed)
    return {name: Run(name, pot.make_method(name, comparison.data, comparison.net, sample_metrics=comparison.scorer,
                                            **opts),
                      jax.random.fold_in(key, i), num_steps, num_seeds=num_seeds, chunk_size=chunk_size)
            for i, (name, opts) in enumerate(options.items())}


def sweep_runs(comparison: Comparison, *, seed: int, num_steps: int, chunk_size: int, sweep_lams: Sequence[float],
               sweep_seeds: int) -> dict[float, Run]:
    """``{λ: Run}``: WAE-MMD at each λ of the trade-off sweep; the i-th λ's key is ``fold_in(key(seed), 10 + i)``."""
    key = jax.random.key(seed)
    return {lam: Run(f"WAE-MMD_lam{lam:g}", pot.make_method("WAE-MMD", comparison.data, comparison.net,
                                                            sample_metrics=comparison.scorer, lam=lam),
                     jax.random.fold_in(key, 10 + i), num_steps, num_seeds=sweep_seeds, chunk_size=chunk_size)
            for i, lam in enumerate(sweep_lams)}
