"""Amortization losses for the conjugate's argmin (Amos 2023, arXiv:2210.12153, §3 and Fig. 1; his
``w2ot/dual_trainer.py``).

A model H_phi predicts x0 = H_phi(y) ~ x_hat(y) = argmin_x f(x) - <x, y>; the prediction warm-starts the
conjugate solver, or replaces it when there is no fine-tuning. H is trained by one of three losses,
added to the dual loss and differentiated with it in one step. The stop-gradients are part of the
definition, and are written out in each function:

* objective (Makkuva et al. 2020):    mean_y [ f_{sg(theta)}(x0) - <x0, y> ]     (only phi learns);
* regression (needs fine-tuning):     mean_{y, i} (x0 - sg(x_hat))_i^2            (x_hat: solver output);
* cycle (W2GN, Korotin et al. 2019):  w * mean (grad f(x0) - y)^2 [+ w * mean (H(grad f(x)) - x)^2],
  where the potential learns from the cycle too (and the second term is added) only without
  fine-tuning; with fine-tuning theta is detached and the cycle trains H only;
* none: 0 (the solver does all the work from the untrained H).

:data:`ROWS` names the rows of the paper's tables ("Cycle & None", ..., "Regression & L-BFGS") as
``(loss, fine-tuning solver or None, flags)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from otlib.ot import conjugate

__all__ = ["Terms", "Amortization", "LOSSES", "ROWS", "row", "objective_loss", "regression_loss",
           "cycle_loss", "no_loss"]

sg = jax.lax.stop_gradient


class Terms(NamedTuple):
    """What an amortization loss may use, on one batch.

    Attributes:
      potential: ``potential(theta, x) -> f(x)``, on a point ``(D,) -> ()`` or a batch ``(n, D) -> (n,)``.
      theta: the potential's parameters.
      amortizer: ``amortizer(phi, y) -> H_phi(y)`` on a batch ``(n, D) -> (n, D)``.
      phi: the amortizer's parameters.
      x: a source batch (n, D).
      y: a target batch (n, D).
      x_init: the prediction H_phi(y) (differentiable in phi).
      x_hat: the conjugate's argmin used by the dual loss (the solver's output, or sg(x_init)).
      cycle_weight: the weight w of the cycle loss (the dimension D by default, as the reference configs).
    """

    potential: Callable[[Any, jax.Array], jax.Array]
    theta: Any
    amortizer: Callable[[Any, jax.Array], jax.Array]
    phi: Any
    x: jax.Array
    y: jax.Array
    x_init: jax.Array
    x_hat: jax.Array
    cycle_weight: float


def _grad_potential(t: Terms, theta: Any) -> Callable[[jax.Array], jax.Array]:
    """x -> grad_x f_theta(x) on a batch."""
    return jax.vmap(jax.grad(lambda xi: t.potential(theta, xi)))


def objective_loss(t: Terms, *, cycle_trains_potential: bool = False) -> jax.Array:
    """mean_y f_{sg(theta)}(x0) - <x0, y>: the conjugate objective at the prediction; phi only."""
    return jnp.mean(t.potential(sg(t.theta), t.x_init) - jnp.sum(t.x_init * t.y, axis=-1))


def regression_loss(t: Terms, *, cycle_trains_potential: bool = False) -> jax.Array:
    """mean over batch and coordinates of (x0 - sg(x_hat))^2: regress onto the fine-tuned argmin."""
    return jnp.mean((t.x_init - sg(t.x_hat)) ** 2)


def cycle_loss(t: Terms, *, cycle_trains_potential: bool) -> jax.Array:
    """w * mean (grad f(x0) - y)^2, with theta detached unless ``cycle_trains_potential``.

    With ``cycle_trains_potential`` (W2GN without fine-tuning: ``regularize_D``), theta also learns from
    the cycle and the inverse cycle w * mean (H(grad f(x)) - x)^2 is added.
    """
    theta = t.theta if cycle_trains_potential else sg(t.theta)
    grad_f = _grad_potential(t, theta)
    loss = jnp.mean((grad_f(t.x_init) - t.y) ** 2)
    if cycle_trains_potential:
        loss = loss + jnp.mean((t.amortizer(t.phi, grad_f(t.x)) - t.x) ** 2)
    return t.cycle_weight * loss


def no_loss(t: Terms, *, cycle_trains_potential: bool = False) -> jax.Array:
    """No amortization: H stays where it started."""
    return jnp.zeros((), t.y.dtype)


LOSSES: dict[str, Callable[..., jax.Array]] = {
    "objective": objective_loss,
    "regression": regression_loss,
    "cycle": cycle_loss,
    "none": no_loss,
}
"""Amortization losses by name."""


@dataclasses.dataclass(frozen=True)
class Amortization:
    """One row of the paper's tables: an amortization loss and a fine-tuning solver.

    Attributes:
      loss: a :data:`LOSSES` name.
      finetune: the conjugate solver that refines H's prediction during training (an object of
        :mod:`otlib.ot.conjugate`, e.g. :data:`~otlib.ot.conjugate.LBFGS_PAPER`), or None (the prediction is
        used as is).
      label: the row label of the paper's tables.
      cycle_trains_potential: for the cycle loss without fine-tuning (W2GN): theta learns from the
        cycle and the inverse cycle term is added (``regularize_D`` in ``w2ot/amortization.py``).
    """

    loss: str
    finetune: Optional[conjugate.ConjugateSolver]
    label: str
    cycle_trains_potential: bool = False

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown amortization loss {self.loss!r}; choose one of {sorted(LOSSES)}")
        if self.loss in ("regression", "none") and self.finetune is None:
            raise ValueError(f"the {self.loss!r} amortization needs a fine-tuning solver (it regresses "
                             "onto, or relies on, the solver's output); set finetune=otlib.ot.conjugate.LBFGS_PAPER")

    def __call__(self, terms: Terms) -> jax.Array:
        return LOSSES[self.loss](terms, cycle_trains_potential=self.cycle_trains_potential)


ROWS: dict[str, Amortization] = {
    "cycle_none": Amortization("cycle", None, "Cycle & None", cycle_trains_potential=True),
    "objective_none": Amortization("objective", None, "Objective & None"),
    "cycle_lbfgs": Amortization("cycle", conjugate.LBFGS_PAPER, "Cycle & L-BFGS"),
    "objective_lbfgs": Amortization("objective", conjugate.LBFGS_PAPER, "Objective & L-BFGS"),
    "regression_lbfgs": Amortization("regression", conjugate.LBFGS_PAPER, "Regression & L-BFGS"),
    "cycle_adam": Amortization("cycle", conjugate.ADAM_PAPER, "Cycle & Adam"),
    "objective_adam": Amortization("objective", conjugate.ADAM_PAPER, "Objective & Adam"),
    "regression_adam": Amortization("regression", conjugate.ADAM_PAPER, "Regression & Adam"),
    "none_lbfgs": Amortization("none", conjugate.LBFGS_PAPER, "None & L-BFGS"),
}
"""The paper's rows (Amos's ``config/amortization/*.yaml``: names ``w2gn``, ``objective``, ``w2gn_finetune``,
``objective_finetune``, ``regression``, ``none``), keyed ``<loss>_<solver>``."""


def row(name: str) -> Amortization:
    """A row of :data:`ROWS` by name."""
    try:
        return ROWS[name]
    except KeyError:
        raise ValueError(f"unknown amortization row {name!r}; choose one of {sorted(ROWS)}") from None
