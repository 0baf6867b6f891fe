"""W2OT: dual W2 potentials with amortized, fine-tuned conjugates (Amos 2023, arXiv:2210.12153, Alg. 1) as a Method.

Learn a potential f_theta on the source alpha whose gradient is the Monge map, T = grad f, by
minimising the Kantorovich dual with the squared Euclidean cost in its correlation form,

    L(theta) = E_{x~alpha} f(x) + E_{y~beta} f*(y),    f*(y) = -min_x f(x) - <x, y>.

Each step (one jitted update of both networks from one summed loss):

1. predict the conjugate's argmin x0 = H_phi(y) with the amortization model (:class:`otlib.nn.nets.InitNN`);
2. fine-tune it with a conjugate solver warm-started at x0 (:mod:`otlib.ot.conjugate`), or keep x0;
3. with x_hat = sg(argmin) (Danskin/envelope theorem: no derivative through the solver), the dual loss
   is mean f(X) + mean(<x_hat, Y> - f(x_hat));
4. add the amortization loss of the table row (:mod:`otlib.amos2023.amortization`) and take one AdamW step on
   (theta, phi).

``init`` pretrains f so that grad f = id on a box (as Amos's ``w2ot/dual_trainer.py``); H starts at the identity by
construction (its last layer is zero), which is what the reference code's pretraining of H reaches.
Both happen inside ``init`` (a ``lax.while_loop``), so the driver's vmapped init does it per seed.

``dim`` only enters through the data: the networks' widths default to the benchmark rule
``[2b, 2b, b], b = max(D, 32)`` and the cycle weight to D.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from otlib.amos2023 import amortization
from otlib.ot import conjugate
from otlib.ot.conjugate import ConjugateResult, ConjugateSolver
from otlib.nn.icnn import ICNN, hd_widths
from otlib.core.method import Method, Sampler
from otlib.nn.conv import CONV_WIDTHS, ConvPotential
from otlib.nn.nets import InitNN, PotentialMLP
from otlib.ot.maps import TransportMap

__all__ = ["W2OTConfig", "DEVICE_SCHEDULES", "for_device", "celeba_config", "GRADIENT_AMORTIZERS", "W2OTState", "POTENTIALS", "w2ot", "networks", "potential", "transport", "amortize",
           "inverse", "solve_conjugates", "dual_loss", "w2_estimate", "transport_map"]

Params = Any

POTENTIALS: dict[str, type[nn.Module]] = {"icnn": ICNN, "nn": PotentialMLP, "conv": ConvPotential}
"""Potential models by the reference code's names (``w2ot/models/``): convex ICNN, the non-convex MLP "NN", or the
conv potential of the CelebA64 benchmark (flattened 64x64 images)."""

GRADIENT_AMORTIZERS = ("conv",)
"""Potentials whose amortization model H is a network of the same class used through its gradient,
x0 = grad H(y), and starts as a copy of the pretrained potential (Amos's image benchmark)."""


@dataclasses.dataclass(frozen=True)
class W2OTConfig:
    """Hyperparameters of W2OT; defaults are the reference HD-benchmark settings (Amos's
    ``config/dual_trainer/nn_hd_benchmark.yaml``).

    Attributes:
      potential: ``"nn"`` or ``"icnn"`` (:data:`POTENTIALS`).
      widths: hidden widths of f; None for ``hd_widths(D)`` = [2b, 2b, b], b = max(D, 32).
      act: the potential's activation (ELU for HD; the 2-D ICNN uses ``"leaky_relu_0.2"``).
      amortizer_widths: hidden widths of H; None for the same rule as ``widths``.
      amortizer_act: H's activation.
      amortization: a row of :data:`otlib.amos2023.amortization.ROWS` (loss and fine-tuning solver).
      conjugate_solver: a conjugate solver (an object of :mod:`otlib.ot.conjugate`, or its
        :data:`~otlib.ot.conjugate.SOLVERS` name, as a notebook parameter spells it) replacing the row's
        solver: e.g. ``LBFGS_HIGH_PRECISION``, the reference ``train.yaml`` default, or
        ``LBFGS_BACKTRACKING``, the row's L-BFGS steps evaluated one at a time (faster on a CPU); None keeps
        the row's. Rows without fine-tuning use it (default ``LBFGS_PAPER``) only for the inverse map.
      learning_rate: AdamW's initial step size, cosine-decayed over ``num_steps`` to ``alpha`` times it.
      b1, b2, weight_decay, alpha: AdamW and schedule settings.
      batch_size: samples of each measure per step.
      num_steps: training steps (the length of the cosine schedule).
      pretrain_steps, pretrain_lr, pretrain_tol, pretrain_bounds: identity pretraining of f with Adam
        on mean ||grad f(x) - x||^2, x uniform in the box; it stops early after 1000 steps once the
        loss is below ``pretrain_tol``.
      cycle_weight: weight of the cycle loss; None for the dimension D.
      restart_from_target: also solve every conjugate from the naive start x = y and keep the lower of the
        two minima (:func:`otlib.ot.conjugate.best_of`), in training and in the inverse map. Not in the paper
        (which solves from H(y) only); an otlib option for non-convex potentials whose warm start can sit in
        a shallow basin of J (the 2-D ``gauss_sq`` pair, :mod:`otlib.amos2023.toy2d_training`). The second solve is a
        cold start, usually longer than the warm one: trained alone at quick scale, ``gauss_sq`` took 1.6
        times as long with it.
    """

    potential: str = "nn"  # the headline HD row uses the NN potential
    widths: Optional[tuple[int, ...]] = None  # nn_hd_benchmark / icnn_hd_benchmark: [2b, 2b, b]
    act: str = "elu"  # HD configs
    amortizer_widths: Optional[tuple[int, ...]] = None  # InitNN [2b, 2b, b] in the HD configs
    amortizer_act: str = "elu"  # InitNN default
    amortization: str = "regression_lbfgs"  # the paper's best row
    conjugate_solver: Optional[ConjugateSolver] = None  # None: the row's (LBFGS_PAPER = lbfgs.yaml)
    learning_rate: float = 5e-4  # HD config table
    b1: float = 0.5  # optax.adamw(b1=0.5, b2=0.5) of the reference trainer
    b2: float = 0.5
    weight_decay: float = 1e-4  # optax.adamw default, kept by the reference trainer
    alpha: float = 1e-4  # cosine decay's final factor
    batch_size: int = 1024  # HD config table
    num_steps: int = 250_001  # HD config table
    pretrain_steps: int = 10_001  # num_pretrain_iter of w2ot/dual_trainer.py
    pretrain_lr: float = 1e-3  # HD config table
    pretrain_tol: float = 1e-6  # early exit after iteration 1000
    pretrain_bounds: tuple[float, float] = (-5.0, 5.0)  # HD data_bounds
    cycle_weight: Optional[float] = None  # None: D (the reference configs, HD and 2-D)
    restart_from_target: bool = False  # otlib's option, not the paper's: a second solve from x = y

    def __post_init__(self) -> None:
        for name in ("widths", "amortizer_widths"):  # lists from YAML/papermill become (hashable) tuples
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(int(w) for w in value))
        object.__setattr__(self, "pretrain_bounds", tuple(float(b) for b in self.pretrain_bounds))
        if self.potential not in POTENTIALS:
            raise ValueError(f"unknown potential {self.potential!r}; choose one of {sorted(POTENTIALS)}")
        amortization.row(self.amortization)
        if isinstance(self.conjugate_solver, str):  # a notebook parameter or a command-line name
            object.__setattr__(self, "conjugate_solver", conjugate.solver(self.conjugate_solver))
        if self.batch_size < 1 or self.num_steps < 1 or self.pretrain_steps < 0:
            raise ValueError(f"need batch_size >= 1, num_steps >= 1, pretrain_steps >= 0; got {self.batch_size}, "
                             f"{self.num_steps}, {self.pretrain_steps}")

    @property
    def row(self) -> amortization.Amortization:
        """The amortization row (loss, fine-tuning solver, paper label)."""
        return amortization.row(self.amortization)

    @property
    def finetune_solver(self) -> Optional[ConjugateSolver]:
        """The solver that fine-tunes H's prediction during training, or None (the row does not fine-tune)."""
        return None if self.row.finetune is None else self.conjugate_solver or self.row.finetune

    @property
    def inverse_solver(self) -> ConjugateSolver:
        """The solver of the inverse map grad f*(y) (the training one; the paper's L-BFGS for rows without)."""
        return self.conjugate_solver or self.row.finetune or conjugate.LBFGS_PAPER


DEVICE_SCHEDULES: dict[str, ConjugateSolver] = {
    "cpu": conjugate.LBFGS_BACKTRACKING,
    "gpu": conjugate.LBFGS_PAPER,
}
"""The execution schedule of the paper's L-BFGS (lbfgs.yaml: gtol 0.1, Armijo over 1.5^-k, k < 10) by
platform. Both accept the same steps; a GPU evaluates every step size at once (parallel Armijo, one
iteration per tick of :func:`otlib.ot.conjugate.conjugates`), a CPU tries them one at a time (faster there:
most iterations accept the first step size; timings in ``docs/performance.md``)."""


def celeba_config(**overrides: Any) -> W2OTConfig:
    """Amos's CelebA64-benchmark settings (his ``config/dual_trainer/image_benchmark.yaml``): the conv
    potential for f and H (H through its gradient, starting as a copy of the pretrained f), ELU, AdamW
    from 1e-4, 50001 steps of batch 64, identity pretraining at 1e-4 on [-1, 1], cycle weight 1e4."""
    base = {"potential": "conv", "act": "elu", "amortizer_act": "elu", "learning_rate": 1e-4, "pretrain_lr": 1e-4,
            "num_steps": 50_001, "batch_size": 64, "pretrain_bounds": (-1.0, 1.0), "cycle_weight": 1e4}
    return W2OTConfig(**{**base, **overrides})


def for_device(config: W2OTConfig, platform: Optional[str] = None) -> W2OTConfig:
    """``config`` with the L-BFGS execution schedule of :data:`DEVICE_SCHEDULES` for ``platform``
    (default: JAX's backend), unless it already names a solver or the row fine-tunes with another."""
    if config.conjugate_solver is not None or config.row.finetune not in (None, conjugate.LBFGS_PAPER):
        return config
    solver = DEVICE_SCHEDULES.get(platform or jax.default_backend(), DEVICE_SCHEDULES["gpu"])
    return dataclasses.replace(config, conjugate_solver=solver)


def networks(config: W2OTConfig, dim: int) -> tuple[nn.Module, nn.Module]:
    """The potential f and the amortization model H for data in R^dim (for ``"conv"``, H is a second
    :class:`~otlib.nn.conv.ConvPotential` whose gradient is the prediction, :data:`GRADIENT_AMORTIZERS`)."""
    if config.potential in GRADIENT_AMORTIZERS:
        widths = config.widths or CONV_WIDTHS
        return (POTENTIALS[config.potential](widths=widths, act=config.act),
                POTENTIALS[config.potential](widths=config.amortizer_widths or widths, act=config.amortizer_act))
    f = POTENTIALS[config.potential](widths=config.widths or hd_widths(dim), act=config.act)
    h = InitNN(widths=config.amortizer_widths or hd_widths(dim), act=config.amortizer_act)
    return f, h


# ----------------------------------------------------------------------------------------------------
# The state: arrays are leaves, the configuration is static metadata (so helpers need only the state).

@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class W2OTState:
    """The potential's parameters ``theta``, the amortizer's ``phi``, their AdamW state, the config (static)."""

    theta: Params
    phi: Params
    opt_state: optax.OptState
    config: W2OTConfig = dataclasses.field(metadata=dict(static=True))


def _f(config: W2OTConfig, theta: Params, x: jax.Array) -> jax.Array:
    return networks(config, x.shape[-1])[0].apply({"params": theta}, x)


def _h(config: W2OTConfig, phi: Params, y: jax.Array) -> jax.Array:
    h = networks(config, y.shape[-1])[1]
    if config.potential in GRADIENT_AMORTIZERS:
        return jax.grad(lambda z: jnp.sum(h.apply({"params": phi}, z)))(y)
    return h.apply({"params": phi}, y)


def _grad_f(config: W2OTConfig, theta: Params, x: jax.Array) -> jax.Array:
    """grad f on a batch (rows are independent, so the gradient of the sum)."""
    return jax.grad(lambda z: jnp.sum(_f(config, theta, z)))(x)


def potential(state: W2OTState, x: jax.Array) -> jax.Array:
    """f(x) on a point (D,) or a batch (n, D)."""
    return _f(state.config, state.theta, x)


def transport(state: W2OTState, x: jax.Array) -> jax.Array:
    """The forward map T(x) = grad f(x) on a batch (n, D): analytic, no solver."""
    return _grad_f(state.config, state.theta, x)


def amortize(state: W2OTState, y: jax.Array) -> jax.Array:
    """H's prediction of the inverse map grad f*(y) on a batch (n, D)."""
    return _h(state.config, state.phi, y)


def solve_conjugates(config: W2OTConfig, solver: ConjugateSolver, f: Callable[[jax.Array], jax.Array], y: jax.Array,
                     x_init: jax.Array, *, shrink: tuple[int, ...] = ()) -> ConjugateResult:
    """CONJUGATE(f, y, x_init) of Alg. 1 for each row of y, warm-started at ``x_init`` = H(y); with
    ``config.restart_from_target``, also from x = y, keeping per target the lower minimum of J."""
    result = conjugate.conjugates(solver, f, y, x_init, shrink=shrink)
    if config.restart_from_target:
        result = conjugate.best_of(result, conjugate.conjugates(solver, f, y, y, shrink=shrink))
    return result


def inverse(state: W2OTState, y: jax.Array, solver: Optional[ConjugateSolver] = None) -> ConjugateResult:
    """The inverse map grad f*(y): the conjugate solved for each row of y, warm-started from H(y)
    (and from y too with ``restart_from_target``).

    ``solver`` defaults to the configuration's ``inverse_solver``; the map is ``.x`` of the result, f*(y) is ``.value``.
    """
    f = lambda x: _f(state.config, state.theta, x)  # noqa: E731
    return solve_conjugates(state.config, solver or state.config.inverse_solver, f, y, amortize(state, y))


def dual_loss(f: Callable[[jax.Array], jax.Array], x: jax.Array, y: jax.Array, x_hat: jax.Array) -> jax.Array:
    """mean f(X) + mean(<x_hat, Y> - f(x_hat)) with x_hat = grad f*(Y) held fixed (Alg. 1)."""
    x_hat = jax.lax.stop_gradient(x_hat)
    return jnp.mean(f(x)) + jnp.mean(jnp.sum(x_hat * y, axis=-1) - f(x_hat))


# ----------------------------------------------------------------------------------------------------
# Initialisation: f pretrained to grad f = id (``pretrain_identity`` in w2ot/dual_trainer.py).

def _pretrain_identity(config: W2OTConfig, theta: Params, key: jax.Array, dim: int) -> Params:
    """Adam(pretrain_lr) on mean ||grad f(x) - x||^2, x ~ U(box)^D, for ``pretrain_steps`` steps or
    until the loss is below ``pretrain_tol`` after step 1000 (the reference code's rule)."""
    tx = optax.adam(config.pretrain_lr)
    low, high = config.pretrain_bounds

    def loss(theta: Params, x: jax.Array) -> jax.Array:
        return jnp.mean(jnp.sum((_grad_f(config, theta, x) - x) ** 2, axis=-1))

    def step(carry):
        i, theta, opt_state, _ = carry
        x = jax.random.uniform(jax.random.fold_in(key, i), (config.batch_size, dim), minval=low, maxval=high)
        value, grads = jax.value_and_grad(loss)(theta, x)
        updates, opt_state = tx.update(grads, opt_state)
        return i + 1, optax.apply_updates(theta, updates), opt_state, value

    def going(carry) -> jax.Array:
        i, _, _, value = carry
        return (i < config.pretrain_steps) & ((i <= 1000) | (value >= config.pretrain_tol))

    start = (jnp.asarray(0, jnp.int32), theta, tx.init(theta), jnp.asarray(jnp.inf, jnp.float32))
    return jax.lax.while_loop(going, step, start)[1]


def _optimizer(config: W2OTConfig) -> optax.GradientTransformation:
    schedule = optax.cosine_decay_schedule(config.learning_rate, config.num_steps, alpha=config.alpha)
    return optax.adamw(schedule, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay)


# ----------------------------------------------------------------------------------------------------
# The method.

def w2ot(config: W2OTConfig, sample_source: Sampler, sample_target: Sampler, *, dim: int,
         eval_fn: Optional[Callable[[W2OTState, jax.Array], dict[str, jax.Array]]] = None) -> Method:
    """W2OT from alpha (``sample_source``) to beta (``sample_target``) in R^dim, as a :class:`Method`.

    Args:
      config: the hyperparameters.
      sample_source, sample_target: samplers ``sample(key, n) -> (n, dim)``.
      dim: the dimension.
      eval_fn: optional ``eval_fn(state, key) -> dict of scalars`` run between chunks, e.g.
        :func:`otlib.w2bench.evaluator` on a benchmark pair (jitted and vmapped by the driver).

    The step's metrics: ``loss`` (dual + amortization), ``dual_objective`` (-dual loss, the reference
    code's ``dual_obj``), ``amortization_loss``, ``solver_iterations`` (mean over the batch, of the kept solve; 0
    without fine-tuning) and ``solver_converged`` (the fraction of the batch's conjugates that met the solver's
    tolerance; 1 without fine-tuning).
    """
    row = config.row
    solver = config.finetune_solver
    tx = _optimizer(config)
    cycle_weight = float(dim if config.cycle_weight is None else config.cycle_weight)
    f_apply = lambda theta, x: _f(config, theta, x)  # noqa: E731
    h_apply = lambda phi, y: _h(config, phi, y)  # noqa: E731
    f_net, h_net = networks(config, dim)

    def init(key: jax.Array) -> W2OTState:
        key_f, key_h, key_x, key_pre = jax.random.split(key, 4)
        x = sample_source(key_x, config.batch_size)  # ActNorm's data-dependent initialisation
        theta = f_net.init(key_f, x)["params"]
        phi = h_net.init(key_h, x)["params"]
        theta = _pretrain_identity(config, theta, key_pre, dim)
        if config.potential in GRADIENT_AMORTIZERS and config.amortizer_widths in (None, config.widths):
            phi = theta  # H = a copy of the pretrained f, so grad H = id at the start
        return W2OTState(theta, phi, tx.init((theta, phi)), config)

    def loss_fn(params, x, y, x_hat):
        theta, phi = params
        x_init = h_apply(phi, y)
        dual = dual_loss(lambda z: f_apply(theta, z), x, y, x_hat)
        terms = amortization.Terms(f_apply, theta, h_apply, phi, x, y, x_init, x_hat, cycle_weight)
        amortization_loss = row(terms)
        return dual + amortization_loss, (dual, amortization_loss)

    def step(state: W2OTState, key: jax.Array) -> tuple[W2OTState, dict[str, jax.Array]]:
        key_x, key_y = jax.random.split(key)
        x = sample_source(key_x, config.batch_size)
        y = sample_target(key_y, config.batch_size)
        x_init = h_apply(state.phi, y)
        if solver is None:
            x_hat, iterations, converged = x_init, jnp.zeros(()), jnp.ones(())
        else:
            result = solve_conjugates(config, solver, lambda z: f_apply(state.theta, z), y, x_init,
                                      shrink=conjugate.shrink_for(config.batch_size))
            x_hat, iterations = result.x, jnp.mean(result.num_iter.astype(jnp.float32))
            converged = jnp.mean(result.converged.astype(jnp.float32))
        params = (state.theta, state.phi)
        (loss, (dual, amortization_loss)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, x, y, jax.lax.stop_gradient(x_hat))
        updates, opt_state = tx.update(grads, state.opt_state, params)
        theta, phi = optax.apply_updates(params, updates)
        metrics = {"loss": loss, "dual_objective": -dual, "amortization_loss": amortization_loss,
                   "solver_iterations": iterations, "solver_converged": converged}
        return W2OTState(theta, phi, opt_state, config), metrics

    name = f"w2ot-{config.potential}-{config.amortization}"
    return Method(name=name, init=init, step=step, evaluate=eval_fn, config=config, num_steps=config.num_steps)


# ----------------------------------------------------------------------------------------------------
# The trained maps and the W2 estimate.

def w2_estimate(state: W2OTState, x: jax.Array, y: jax.Array) -> jax.Array:
    """The dual estimate of ½W₂²(α, β) from samples x ~ α, y ~ β (Amos 2023, Eq. 2 with the Brenier potential f):

        ½W₂² = E½‖x‖² + E½‖y‖² − (E f(x) + E f*(y)),

    with f*(y) from the conjugate solve of :func:`inverse`. Twice it is OTT-JAX's W₂² (cost ‖x − y‖²).
    """
    dual = jnp.mean(potential(state, x)) + jnp.mean(inverse(state, y).value)
    return 0.5 * jnp.mean(jnp.sum(x ** 2, -1)) + 0.5 * jnp.mean(jnp.sum(y ** 2, -1)) - dual


def transport_map(state: W2OTState) -> TransportMap:
    """The trained maps of one seed: T = grad f, T⁻¹ = grad f* (a conjugate solve), and :func:`w2_estimate`."""
    return TransportMap(state, f"W2OT {state.config.potential}", transport, lambda s, y: inverse(s, y).x,
                        w2_estimate)
