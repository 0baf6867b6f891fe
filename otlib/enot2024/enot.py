"""ENOT: expectile-regularised neural OT (Buzun et al. 2024, Algorithm 1) as an otlib :class:`Method`.

One step = one gradient update of a map network and of a potential network on the loss of
:func:`otlib.enot2024.expectile.enot_loss`; no inner conjugate solver, the whole step is one jitted function and
the driver :func:`otlib.core.train.train` scans it. Three parameterisations, picked from :data:`FORMS`:

* ``"distance"`` (OTT-JAX 0.6.0): two plain MLPs f, g; T(x) = x − ∇h*(∇f(x)), T⁻¹(y) = y − ∇h*(∇g(y))
  (the cost's twist, Eq. 11-12), trained with the cost c itself. Any TI cost (:mod:`otlib.ot.costs`).
* ``"correlation"`` (the authors' HD runs, ``src/verka/test_bench.py`` in their fork ``nazarblch/ott``):
  Brenier potentials F = ½‖x‖² + MLP, G = ½‖y‖² + MLP; T = ∇F, T⁻¹ = ∇G, trained with c(x, y) = −<x, y> and
  Kantorovich potential −G. Squared Euclidean cost only. With h = ½‖·‖² this is the distance form with f =
  −MLP: same losses up to constants E½‖x‖² + E½‖y‖², same gradients; it only keeps the large quadratic parts
  out of the float32 sums. (OTT's ‖x − y‖² convention makes its distance form T = x − ½∇f, a different scale.)
* ``"map"`` (unidirectional, paper Fig. 1-2): a map network T(x) = project(x + MLP(x)) and a potential
  MLP g, for costs without a Legendre transform (Euclidean, sphere geodesic; maps land on the sphere).

Bidirectional forms alternate roles every step (as OTT-JAX 0.6.0's ``ExpectileNeuralDual``): on even steps f
is the map α → β and g the potential; on odd steps g maps β → α and f is the potential, with fresh batches.
Both roles are one computation on swapped parameters and batches (``jnp.where`` on the step's parity), so the
step stays branch-free and cheap under ``vmap`` over seeds (a ``lax.cond`` on a batched predicate would run
both branches).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from otlib.ot.costs import Correlation, Cost, SqEuclidean
from otlib.enot2024.expectile import enot_loss
from otlib.core.method import Method, Sampler
from otlib.nn.conv import ConvPotential
from otlib.nn.nets import MLP
from otlib.ot.maps import TransportMap
from otlib.core.train import freeze_diverged, live_mean

__all__ = ["FORMS", "ENOTConfig", "ENOTState", "enot", "enot_grid", "inverse", "paper_hd_config", "paper_celeba_config",
           "potential", "transport", "transport_map", "w2_estimate"]

Params = Any


@dataclasses.dataclass(frozen=True)
class ENOTConfig:
    """Hyperparameters of ENOT. Defaults are OTT-JAX 0.6.0 ``ExpectileNeuralDual``'s, as each
    field's comment says; :func:`paper_hd_config` gives the authors' HD-benchmark settings.

    Attributes:
      cost: the ground cost (:mod:`otlib.ot.costs`; ``SqEuclidean`` is ½‖x − y‖² here, ‖x − y‖² in OTT).
      parameterisation: ``"distance"`` | ``"correlation"`` | ``"map"`` (see the module docstring).
      hidden, act: hidden widths and activation of every MLP.
      tau: the expectile of L_tau (Eq. 13); the paper suggests [0.9, 1).
      lam: the regulariser's weight λ, in this module's cost scale: OTT's ``expectile_loss_coef`` λ on its
        ‖x − y‖² is 2λ here for the squared Euclidean cost (:meth:`from_ott` converts it).
      learning_rate, b1, b2: Adam's (peak) step size and moment decays, the same for both networks.
      schedule: ``"constant"`` or ``"cosine"`` (decay over ``num_steps`` to ``final_lr_fraction`` × peak).
      batch_size: samples of each measure per step.
      num_steps: training steps; both networks are updated at every step.
    """

    cost: Cost = SqEuclidean()  # noqa: RUF009 (frozen and hashable) -- OTT default cost
    parameterisation: str = "distance"        # OTT 0.6.0 (its only form); authors' HD runs: "correlation"
    hidden: tuple[int, ...] = (128, 128, 128, 128)  # OTT default MLP; paper HD [512]*3
    act: str = "elu"                          # OTT default
    tau: float = 0.99                         # OTT default; paper HD 0.9
    lam: float = 1.0                          # OTT default's value (OTT's scale: from_ott); paper HD 0.3
    learning_rate: float = 3e-4               # OTT default; authors' scripts: cosine from 5e-4
    b1: float = 0.9                           # OTT default
    b2: float = 0.9                           # OTT default; authors' scripts 0.99, OTT tutorial 0.999
    schedule: str = "constant"                # OTT default; OTT tutorial and authors' scripts "cosine"
    final_lr_fraction: float = 1e-2           # OTT tutorial / authors' script (cosine only)
    batch_size: int = 1024                    # paper HD and authors' scripts (OTT leaves it to the loaders)
    num_steps: int = 20000                    # OTT default num_train_iters; paper HD 200k
    network: str = "mlp"                      # the potentials: "mlp", or "conv" (CelebA64; ``hidden`` = channels)

    def __post_init__(self) -> None:
        if self.parameterisation not in FORMS:
            raise ValueError(f"unknown parameterisation {self.parameterisation!r}; choose one of {sorted(FORMS)}")
        FORMS[self.parameterisation].check(self.cost)
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {sorted(_SCHEDULES)}")
        if not 0.0 < self.tau < 1.0:
            raise ValueError(f"tau must lie in (0, 1) (the paper suggests [0.9, 1)), got {self.tau}")
        if self.network not in ("mlp", "conv") or (self.network == "conv" and self.parameterisation == "map"):
            raise ValueError(f"network must be 'mlp' or 'conv' (the conv net is a potential: not for the 'map' "
                             f"form), got {self.network!r} with {self.parameterisation!r}")
        if self.lam < 0 or self.batch_size < 1 or self.num_steps < 1:
            raise ValueError(f"need lam >= 0, batch_size >= 1, num_steps >= 1; got {self.lam}, "
                             f"{self.batch_size}, {self.num_steps}")

    @classmethod
    def from_ott(cls, *, lam: float = 1.0, **fields: Any) -> "ENOTConfig":
        """The configuration that trains what OTT-JAX's ``ExpectileNeuralDual`` trains with expectile weight
        ``lam`` (its ``expectile_loss_coef``) on its cost of the same name.

        OTT's cost is s = ``cost.ott_scale`` times ours (s = 2 for ``SqEuclidean``), and so are its
        potentials; the dual and amortization terms (Eq. 16-17) are linear in them and the regulariser
        (Eq. 15) quadratic, so OTT's loss is s·(dual + amortization + s·λ·R) in our scale: our λ is s·λ_OTT.
        τ, the step sizes and the networks carry over unchanged (Adam does not see the loss's scale).
        """
        cost = fields.get("cost", cls.cost)
        return cls(lam=cost.ott_scale * lam, **fields)

    @property
    def scheduled_steps(self) -> int | None:
        """``num_steps`` where the learning-rate schedule depends on it (cosine), else None (constant)."""
        return self.num_steps if self.schedule != "constant" else None

    @property
    def bidirectional(self) -> bool:
        """Whether both maps are learned (the potential forms) or only T (the map form)."""
        return FORMS[self.parameterisation].bidirectional


def paper_hd_config(**overrides: Any) -> ENOTConfig:
    """The authors' W2-benchmark settings: paper Table 4 (MLP [512]*3, tau 0.9, λ 0.3, batch 1024,
    200k steps) with their script's optimiser (Adam b1 0.9, b2 0.99, cosine 5e-4 → ×1e-2) and its
    correlation form (``src/verka/test_bench.py`` in ``nazarblch/ott``)."""
    base = {"parameterisation": "correlation", "hidden": (512, 512, 512), "tau": 0.9, "lam": 0.3,
            "learning_rate": 5e-4, "b1": 0.9, "b2": 0.99, "schedule": "cosine", "final_lr_fraction": 1e-2,
            "batch_size": 1024, "num_steps": 200_000}
    return ENOTConfig(**{**base, **overrides})


def paper_celeba_config(**overrides: Any) -> ENOTConfig:
    """The authors' CelebA64-benchmark settings (paper Table 6): Amos's conv potential for both networks,
    tau 0.99, λ 1.0, batch 64, 80k steps, in the correlation form. The optimiser is not reported there; this
    uses their HD script's (Adam b1 0.9, b2 0.99, cosine decay to ×1e-2) from Amos's conv learning rate 1e-4."""
    base = {"parameterisation": "correlation", "network": "conv", "hidden": (128, 128, 256, 512, 1024),
            "act": "elu", "tau": 0.99, "lam": 1.0, "learning_rate": 1e-4, "b1": 0.9, "b2": 0.99,
            "schedule": "cosine", "final_lr_fraction": 1e-2, "batch_size": 64, "num_steps": 80_000}
    return ENOTConfig(**{**base, **overrides})


_SCHEDULES: dict[str, Callable[[ENOTConfig], optax.Schedule | float]] = {
    "constant": lambda c: c.learning_rate,
    "cosine": lambda c: optax.cosine_decay_schedule(c.learning_rate, c.num_steps, alpha=c.final_lr_fraction),
}


def _optimizer(config: ENOTConfig) -> optax.GradientTransformation:
    return optax.adam(_SCHEDULES[config.schedule](config), b1=config.b1, b2=config.b2)


# ----------------------------------------------------------------------------------------------------
# The state: arrays are leaves, the configuration is static metadata (so helpers need only the state).

@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ENOTState:
    """Parameters and optimiser states of the two networks, and the step counter.

    ``f`` is the source-side network (the potential f, the Brenier F, or the map network T);
    ``g`` the target-side potential. ``config`` is static (not a leaf).
    """

    f: Params
    g: Params
    opt_f: optax.OptState
    opt_g: optax.OptState
    step: jax.Array
    config: ENOTConfig = dataclasses.field(metadata={"static": True})


def _potential_net(config: ENOTConfig, dim: int) -> MLP | ConvPotential:
    """An MLP R^dim → R (a potential; linen infers ``dim`` from the input), or for ``network="conv"`` Amos's
    conv potential on flattened 64x64 images with channels ``hidden``, without its quadratic term (the
    correlation form adds ½‖x‖²)."""
    if config.network == "conv":
        return ConvPotential(widths=config.hidden, act=config.act, quadratic=False)
    return MLP(features=(*config.hidden, 1), act=config.act)


def _map_net(config: ENOTConfig, dim: int) -> MLP:
    """An MLP R^dim → R^dim (the map form's network)."""
    return MLP(features=(*config.hidden, dim), act=config.act)


def _grad(fn: Callable[[Params, jax.Array], jax.Array], params: Params, x: jax.Array) -> jax.Array:
    """Row-wise gradient of a batched scalar function (rows are independent, so grad of the sum)."""
    return jax.grad(lambda z: jnp.sum(fn(params, z)))(x)


# ----------------------------------------------------------------------------------------------------
# The parameterisations: how networks become (map, potential, training cost).

def _mlp(config: ENOTConfig, params: Params, x: jax.Array) -> jax.Array:
    """Distance and map forms: the potential is the plain MLP."""
    return _potential_net(config, x.shape[-1]).apply({"params": params}, x)


def _twisted_gradient(config: ENOTConfig, params: Params, x: jax.Array) -> jax.Array:
    """Distance form: T(x) = x − ∇h*(∇f(x)) (Eq. 11)."""
    return config.cost.twist(x, _grad(functools.partial(_mlp, config), params, x))


def _brenier(config: ENOTConfig, params: Params, x: jax.Array) -> jax.Array:
    """Correlation form: F(x) = ½‖x‖² + MLP(x)."""
    return 0.5 * jnp.sum(x * x, axis=-1) + _mlp(config, params, x)


def _brenier_gradient(config: ENOTConfig, params: Params, x: jax.Array) -> jax.Array:
    """Correlation form: T(x) = ∇F(x) = x + ∇MLP(x)."""
    return _grad(functools.partial(_brenier, config), params, x)


def _negative_brenier(config: ENOTConfig, params: Params, y: jax.Array) -> jax.Array:
    """Correlation form: the Kantorovich potential for c = −<x, y> is −G."""
    return -_brenier(config, params, y)


def _residual_map(config: ENOTConfig, params: Params, x: jax.Array) -> jax.Array:
    """Map form: T(x) = project(x + MLP(x)) (onto the sphere for the geodesic cost)."""
    return config.cost.project(x + _map_net(config, x.shape[-1]).apply({"params": params}, x))


def _needs_bidirectional(cost: Cost) -> None:
    if not cost.bidirectional:
        raise ValueError(f"{type(cost).__name__} has no usable Legendre transform, so no potential gives its map; "
                         f"use parameterisation='map' (a separate map network, unidirectional)")


def _needs_sq_euclidean(cost: Cost) -> None:
    if type(cost) is not SqEuclidean:
        raise ValueError(f"the correlation form rewrites ½‖x − y‖² as −<x, y>; it needs cost=SqEuclidean(), "
                         f"got {cost!r}; use parameterisation='distance' for other TI costs")


def _any_cost(cost: Cost) -> None:
    return None


def _no_offset(x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.zeros((), x.dtype)


def _quadratic_offset(x: jax.Array, y: jax.Array) -> jax.Array:
    """½‖x − y‖² = −<x, y> + ½‖x‖² + ½‖y‖²: what the correlation form's dual value lacks, E½‖x‖² + E½‖y‖²."""
    return 0.5 * jnp.mean(jnp.sum(x * x, -1)) + 0.5 * jnp.mean(jnp.sum(y * y, -1))


@dataclasses.dataclass(frozen=True)
class _Form:
    """One parameterisation; the functions take (config, params, batch)."""

    bidirectional: bool
    check: Callable[[Cost], None]
    f_net: Callable[[ENOTConfig, int], MLP]
    transport: Callable[[ENOTConfig, Params, jax.Array], jax.Array]
    potential: Callable[[ENOTConfig, Params, jax.Array], jax.Array]
    training_cost: Callable[[ENOTConfig], Cost]
    offset: Callable[[jax.Array, jax.Array], jax.Array]
    """Turns the training cost's dual value into the configured cost's (0 but for correlation)."""


FORMS: dict[str, _Form] = {
    "distance": _Form(bidirectional=True, check=_needs_bidirectional, f_net=_potential_net,
                      transport=_twisted_gradient, potential=_mlp, training_cost=lambda c: c.cost,
                      offset=_no_offset),
    "correlation": _Form(bidirectional=True, check=_needs_sq_euclidean, f_net=_potential_net,
                         transport=_brenier_gradient, potential=_negative_brenier,
                         training_cost=lambda c: Correlation(), offset=_quadratic_offset),
    "map": _Form(bidirectional=False, check=_any_cost, f_net=_map_net, transport=_residual_map, potential=_mlp,
                 training_cost=lambda c: c.cost, offset=_no_offset),
}
"""The parameterisations by name (see the module docstring)."""


# ----------------------------------------------------------------------------------------------------
# Pure helpers on a trained state (one seed: ``result.seed(i)`` of a driver run).

def transport(state: ENOTState, x: jax.Array) -> jax.Array:
    """The forward map T: α → β on a batch (n, d)."""
    cfg = state.config
    return FORMS[cfg.parameterisation].transport(cfg, state.f, x)


def inverse(state: ENOTState, y: jax.Array) -> jax.Array:
    """The inverse map T⁻¹: β → α on a batch (n, d), from the potential g (bidirectional forms only)."""
    cfg = state.config
    if not cfg.bidirectional:
        raise ValueError("the 'map' parameterisation is unidirectional: it learns T only, no inverse; "
                         "use a bidirectional form ('distance', 'correlation') with a TI cost for T⁻¹")
    return FORMS[cfg.parameterisation].transport(cfg, state.g, y)


def potential(state: ENOTState, y: jax.Array) -> jax.Array:
    """The Kantorovich potential g on β's side, in the training cost's convention, (n, d) -> (n,)."""
    cfg = state.config
    return FORMS[cfg.parameterisation].potential(cfg, state.g, y)


def transport_map(state: ENOTState) -> TransportMap:
    """The trained maps of one seed: T, T⁻¹ for the bidirectional forms, and :func:`w2_estimate`."""
    backward = inverse if state.config.bidirectional else None
    return TransportMap(state, f"ENOT {state.config.parameterisation}", transport, backward, w2_estimate)


def w2_estimate(state: ENOTState, x: jax.Array, y: jax.Array) -> jax.Array:
    """The dual estimate of the transport cost (paper Eq. 19), in the configured cost's convention:

        W_c ≈ E_β g(y) − E_α g(T(x)) + E_α c(x, T(x))

    For ``SqEuclidean`` that is ½W₂² (``config.cost.to_ott`` gives OTT's W₂² with ‖x − y‖²); the
    correlation form adds back E½‖x‖² + E½‖y‖².
    """
    cfg = state.config
    form = FORMS[cfg.parameterisation]
    t_x = transport(state, x)
    c = form.training_cost(cfg)
    return (jnp.mean(potential(state, y)) - jnp.mean(potential(state, t_x)) + jnp.mean(c(x, t_x))
            + form.offset(x, y))


# ----------------------------------------------------------------------------------------------------
# The method.

def _swap_if(odd: jax.Array | bool, a: Any, b: Any) -> tuple[Any, Any]:
    """(b, a) when ``odd`` else (a, b), leaf by leaf with ``jnp.where`` (branch-free under vmap).

    ``odd`` is the Python ``False`` for unidirectional forms, whose two networks differ in shape.
    """
    if odd is False:
        return a, b
    first = jax.tree.map(lambda u, v: jnp.where(odd, v, u), a, b)
    second = jax.tree.map(lambda u, v: jnp.where(odd, u, v), a, b)
    return first, second


def _step_fn(config: ENOTConfig, sample_source: Sampler, sample_target: Sampler
             ) -> Callable[[ENOTState, jax.Array, jax.Array, jax.Array], tuple[ENOTState, dict[str, jax.Array]]]:
    """``step(state, key, tau, lam)``: one ENOT update, with tau and λ as (traceable) arguments."""
    form = FORMS[config.parameterisation]
    tx = _optimizer(config)
    cost = form.training_cost(config)
    map_fn = lambda p, x: form.transport(config, p, x)
    potential_fn = lambda p, y: form.potential(config, p, y)

    def loss_fn(map_params, potential_params, x, y, tau, lam):
        terms = enot_loss(map_fn, potential_fn, cost, map_params, potential_params, x, y, tau=tau, lam=lam)
        return terms.total, terms

    def step(state: ENOTState, key: jax.Array, tau: jax.Array, lam: jax.Array):
        key_x, key_y = jax.random.split(key)
        x = sample_source(key_x, config.batch_size)
        y = sample_target(key_y, config.batch_size)
        # Even steps: f maps α → β, g is the potential. Odd steps (bidirectional only): roles swapped.
        odd = state.step % 2 == 1 if config.bidirectional else False
        src, tgt = _swap_if(odd, x, y)
        map_params, potential_params = _swap_if(odd, state.f, state.g)
        (loss, terms), (grad_map, grad_potential) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
            map_params, potential_params, src, tgt, tau, lam)
        grad_f, grad_g = _swap_if(odd, grad_map, grad_potential)
        updates_f, opt_f = tx.update(grad_f, state.opt_f, state.f)
        updates_g, opt_g = tx.update(grad_g, state.opt_g, state.g)
        new = ENOTState(f=optax.apply_updates(state.f, updates_f), g=optax.apply_updates(state.g, updates_g),
                        opt_f=opt_f, opt_g=opt_g, step=state.step + 1, config=config)
        metrics = {"loss": loss, "dual": terms.dual, "amortization": terms.amortization,
                   "regulariser": terms.reg_potential + terms.reg_transform,
                   "w_dist": terms.w_dist + form.offset(x, y)}
        return new, metrics

    return step


def _init_fn(config: ENOTConfig, dim: int) -> Callable[[jax.Array], ENOTState]:
    form = FORMS[config.parameterisation]
    tx = _optimizer(config)
    f_net, g_net = form.f_net(config, dim), _potential_net(config, dim)

    def init(key: jax.Array) -> ENOTState:
        key_f, key_g = jax.random.split(key)
        dummy = jnp.zeros((1, dim), jnp.float32)
        f = f_net.init(key_f, dummy)["params"]
        g = g_net.init(key_g, dummy)["params"]
        return ENOTState(f=f, g=g, opt_f=tx.init(f), opt_g=tx.init(g), step=jnp.zeros((), jnp.int32),
                         config=config)

    return init


def enot(config: ENOTConfig, sample_source: Sampler, sample_target: Sampler, *, dim: int,
         eval_fn: Callable[[ENOTState, jax.Array], dict[str, jax.Array]] | None = None) -> Method:
    """ENOT from α (``sample_source``) to β (``sample_target``) in R^dim, as a :class:`Method`.

    Args:
      config: the hyperparameters.
      sample_source, sample_target: samplers ``sample(key, n) -> (n, dim)``.
      dim: the dimension (for initialising the networks).
      eval_fn: optional ``eval_fn(state, key) -> dict of scalars`` run between chunks, e.g.
        :func:`otlib.w2bench.evaluator` on a benchmark pair (must be traceable: it is jitted and vmapped).

    The step's metrics: ``loss`` (the total), ``dual``, ``amortization``, ``regulariser`` and
    ``w_dist`` (the batch's dual estimate in the configured cost's convention).
    """
    step = _step_fn(config, sample_source, sample_target)
    return Method(name=f"enot-{config.parameterisation}", init=_init_fn(config, dim),
                  step=lambda state, key: step(state, key, config.tau, config.lam), evaluate=eval_fn, config=config,
                  num_steps=config.scheduled_steps)


def enot_grid(config: ENOTConfig, taus: Sequence[float], lams: Sequence[float], sample_source: Sampler,
              sample_target: Sampler, *, dim: int,
              eval_fn: Callable[[ENOTState, jax.Array], dict[str, jax.Array]] | None = None) -> Method:
    """ENOT on every cell of a (tau, λ) grid at once (paper Fig. 4's ablation): one compiled step.

    The state holds one :class:`ENOTState` per cell, stacked on a leading axis of ``len(taus) * len(lams)``
    cells (tau major), and an ``alive`` flag per cell. Every cell starts from the same initialisation and sees
    the same batches (common random numbers: cells differ by (tau, λ) alone; seeds, vmapped by the driver,
    give the spread). A cell that diverges is frozen and reported as such by the driver's rule
    (:func:`otlib.core.train.freeze_diverged`), applied per cell so one cell cannot stop the others.
    ``eval_fn`` is applied per cell and reads NaN for diverged cells. The step's ``loss`` is the mean over
    live cells; ``alive`` counts them.
    """
    taus_lams = jnp.asarray([(t, l) for t in taus for l in lams], jnp.float32)
    cell_step = jax.vmap(_step_fn(config, sample_source, sample_target), in_axes=(0, None, 0, 0))
    init_one = _init_fn(config, dim)

    def init(key: jax.Array) -> dict[str, Any]:
        cells = jax.tree.map(lambda a: jnp.broadcast_to(a, (len(taus_lams),) + a.shape), init_one(key))
        return {"cells": cells, "alive": jnp.ones(len(taus_lams), bool)}

    def step(state: dict[str, Any], key: jax.Array) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        new, metrics = cell_step(state["cells"], key, taus_lams[:, 0], taus_lams[:, 1])
        cells, alive = freeze_diverged(state["alive"], metrics["loss"], new, state["cells"])
        return {"cells": cells, "alive": alive}, {"loss": live_mean(metrics["loss"], alive), "alive": jnp.sum(alive)}

    evaluate = None
    if eval_fn is not None:
        def evaluate(state: dict[str, Any], key: jax.Array) -> dict[str, jax.Array]:
            values = jax.vmap(eval_fn, in_axes=(0, None))(state["cells"], key)
            return {name: jnp.where(state["alive"], v, jnp.nan) for name, v in values.items()}

    return Method(name=f"enot-{config.parameterisation}-grid", init=init, step=step, evaluate=evaluate,
                  config=(config, tuple(taus), tuple(lams)), num_steps=config.scheduled_steps)
