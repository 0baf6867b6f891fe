"""Amos's 2-D experiments (Amos 2023, arXiv:2210.12153): one W2OT potential per pair, all pairs in one compiled run.

On a CPU, compiling a W2OT step (a vmapped L-BFGS inside the loss) costs more than thousands of steps on
2-D data, so ten runs would spend most of their time compiling ten copies of the same program. Here the
ten problems are one :class:`~otlib.core.method.Method` whose state is ten W2OT states stacked on a leading
*pair* axis:

* ``init`` is ``jax.vmap`` of :func:`otlib.amos2023.w2ot.w2ot`'s over the pair index, and ``step`` maps
  its step over the pairs by ``vmap`` or by ``lax.map`` (:data:`PAIR_AXES`: batched on an accelerator,
  one pair after another on a CPU, where a batched L-BFGS would wait for the slowest pair);
* a pair's samplers are picked by ``jax.lax.switch`` on that index (under ``vmap`` every branch is drawn
  and one kept: ten tiny samplers per pair, negligible next to the conjugate solves);
* the driver's divergence rule (NaN, or ``|loss| > 1e5``) is applied per pair: a diverged pair is frozen
  at its last good state and marked in ``alive``, the others go on.

So :func:`otlib.core.train.train` compiles one step, trains every pair at once, and its seed axis still means
seeds. After training, :func:`dual_maps` turns each pair's state into the :class:`otlib.amos2023.plots2d.DualMaps`
that the figures draw (functions jitted on the state, so the ten pairs share their compilations), and
:func:`sinkhorn_table` scores the maps with Amos's 2-D metric, and :func:`duality_table` checks the conjugate
solver by weak duality.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from otlib.data.toy2d import AMOS_PAIRS, Pair, pair
from otlib.core.method import Method, Sampler
from otlib.amos2023 import w2ot as w2ot_method
from otlib.amos2023.w2ot import W2OTConfig, W2OTState
from otlib.amos2023.plots2d import DualMaps
from otlib.ot.sinkhorn import EPSILON, MAX_ITERATIONS, sinkhorn_divergence
from otlib.core.train import DIVERGENCE_THRESHOLD, RunResult, freeze_diverged, live_mean

__all__ = [
    "EPSILON_SCALES",
    "PAIR_AXES",
    "TOY2D_CONFIG",
    "PairsState",
    "dual_maps",
    "duality_table",
    "pair_states",
    "sinkhorn_table",
    "w2ot_pairs",
]

TOY2D_CONFIG = W2OTConfig(
    potential="nn",  # the non-convex potential of the `nn` 2-D config; `icnn` is the other
    widths=(128, 128),  # 2-D `nn`: PotentialNN [128, 128]
    act="leaky_relu_0.2",  # 2-D configs: D uses leaky_relu_0.2
    amortizer_widths=(128, 128),  # InitNN [128, 128] at paper time (512 after commit 912c327)
    amortizer_act="elu",  # 2-D configs: H uses ELU
    amortization="regression_lbfgs",  # the paper's best row, fine-tuned with lbfgs.yaml (gtol 0.1)
    learning_rate=5e-4,  # 2-D configs
    batch_size=10_000,  # 2-D configs: batch 10000, fresh samples every step
    num_steps=50_001,  # 2-D configs: 50001 iterations
    pretrain_steps=10_001,  # 2-D configs: +10001 identity pretraining steps
    pretrain_lr=1e-3,  # 2-D configs
    pretrain_bounds=(-10.0, 10.0),  # data_bounds of the 2-D data configs
)
"""The reference 2-D configuration (Amos's ``config/dual_trainer/nn.yaml``); ``dataclasses.replace`` it."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PairsState:
    """One W2OT state per pair (leaves stacked on a leading pair axis) and which pairs are still training.

    Attributes:
      w2ot: the stacked :class:`~otlib.amos2023.w2ot.W2OTState`.
      alive: ``(P,)`` booleans, False once a pair's loss was NaN or above the divergence threshold.
      restart: ``(P,)`` booleans, True for the pairs whose conjugates are also solved from x = y
        (``restart_from_target`` of :class:`~otlib.amos2023.w2ot.W2OTConfig`, in training and in their maps).
    """

    w2ot: W2OTState
    alive: jax.Array
    restart: jax.Array


def _switch(samplers: Sequence[Sampler]) -> Callable[[jax.Array], Sampler]:
    """``index -> sampler``: the ``index``-th of ``samplers``, chosen by ``lax.switch`` (``index`` may be traced)."""

    def pick(index: jax.Array) -> Sampler:
        def sample(key: jax.Array, n: int) -> jax.Array:
            return jax.lax.switch(index, [functools.partial(s, n=n) for s in samplers], key)

        return sample

    return pick


def _checked(names: Sequence[str]) -> tuple[Pair, ...]:
    if not names:
        raise ValueError("give at least one pair name, e.g. otlib.data.toy2d.AMOS_PAIRS")
    if len(set(names)) != len(names):
        raise ValueError(f"pair names must be distinct, got {list(names)}")
    return tuple(pair(name) for name in names)


def _vmap(fn: Callable[..., Any]) -> Callable[..., Any]:
    return jax.vmap(fn)


def _loop(fn: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *args: jax.lax.map(lambda a: fn(*a), args)


PAIR_AXES: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {"vmap": _vmap, "loop": _loop}
"""How a step runs over the pairs: ``vmap`` (one batched program: best on accelerators) or ``loop``
(``lax.map``, one pair after another inside the compiled step: on a CPU each pair's conjugate solve then
stops when *its* slowest sample converges, not when the slowest sample of all pairs does)."""


def w2ot_pairs(config: W2OTConfig, names: Sequence[str] = AMOS_PAIRS, *, pair_axis: str = "vmap",
               restart: Sequence[str] = (), divergence_threshold: float = DIVERGENCE_THRESHOLD) -> Method:
    """W2OT on every pair of ``names`` at once: a :class:`Method` with a :class:`PairsState` (module docstring).

    ``restart`` names the pairs whose conjugates are also solved from the naive start x = y, the better
    minimum kept (``W2OTConfig.restart_from_target``, an otlib option; every pair restarts when ``config``
    sets it). The step then picks each pair's variant with ``lax.cond``: one after another
    (``pair_axis="loop"``), only the named pairs pay for the second solve; under ``vmap`` every pair runs
    both variants and keeps its own.

    The step's metrics: ``loss``, ``dual_objective`` and ``solver_iterations`` averaged over the live
    pairs, ``pairs_alive``, and ``dual_objective/<name>`` for each pair (the reference code's ``dual_obj``,
    -L on the step's batch).
    """
    pairs = _checked(names)
    if pair_axis not in PAIR_AXES:
        raise ValueError(f"unknown pair_axis {pair_axis!r}; choose one of {sorted(PAIR_AXES)}")
    unknown = sorted(set(restart) - set(names))
    if unknown:
        raise ValueError(f"restart names pairs that are not trained: {unknown}; choose among {list(names)}")
    over_pairs = PAIR_AXES[pair_axis]
    source = _switch([p.source for p in pairs])
    target = _switch([p.target for p in pairs])
    index = jnp.arange(len(pairs))
    restarting = tuple(config.restart_from_target or p.name in restart for p in pairs)
    plain = dataclasses.replace(config, restart_from_target=False)  # the stacked states' (static) config

    def method(i: jax.Array, again: bool = False) -> Method:
        return w2ot_method.w2ot(dataclasses.replace(plain, restart_from_target=again), source(i), target(i), dim=2)

    def pair_step(i: jax.Array, s: W2OTState, k: jax.Array) -> tuple[W2OTState, dict[str, jax.Array]]:
        def run(again: bool) -> tuple[W2OTState, dict[str, jax.Array]]:
            new, metrics = method(i, again).step(s, k)
            return dataclasses.replace(new, config=plain), metrics

        if len(set(restarting)) == 1:  # no choice to make
            return run(restarting[0])
        return jax.lax.cond(jnp.asarray(restarting)[i], lambda: run(True), lambda: run(False))

    def init(key: jax.Array) -> PairsState:
        keys = jax.random.split(key, len(pairs))
        states = jax.vmap(lambda i, k: method(i).init(k))(index, keys)
        return PairsState(states, jnp.ones(len(pairs), bool), jnp.asarray(restarting))

    def step(state: PairsState, key: jax.Array) -> tuple[PairsState, dict[str, jax.Array]]:
        keys = jax.random.split(key, len(pairs))
        new, metrics = over_pairs(pair_step)(index, state.w2ot, keys)
        w2ot, alive = freeze_diverged(state.alive, metrics["loss"], new, state.w2ot, threshold=divergence_threshold)
        out = {"loss": live_mean(metrics["loss"], alive),
               "dual_objective": live_mean(metrics["dual_objective"], alive),
               "solver_iterations": live_mean(metrics["solver_iterations"], alive),
               "pairs_alive": jnp.sum(alive).astype(jnp.float32)}
        out |= {f"dual_objective/{p.name}": jnp.where(alive[i], metrics["dual_objective"][i], jnp.nan)
                for i, p in enumerate(pairs)}
        return PairsState(w2ot, alive, state.restart), out

    return Method(name=f"w2ot-{config.potential}-{len(pairs)}-pairs", init=init, step=step,
                  config=(config, tuple(names), tuple(restart)), num_steps=config.num_steps)


def pair_states(result: RunResult, seed: int = 0) -> PairsState:
    """The :class:`PairsState` of one seed of a :func:`otlib.core.train.train` run of :func:`w2ot_pairs`."""
    return result.seed(seed)


# ----------------------------------------------------------------------------------------------------
# From a trained state to maps and scores. The functions below are jitted with the state as an
# argument, so the ten pairs (same configuration, same shapes) share each compilation.

@jax.jit
def _potential(state: W2OTState, x: jax.Array) -> jax.Array:
    return w2ot_method.potential(state, x)


@jax.jit
def _forward(state: W2OTState, x: jax.Array) -> jax.Array:
    return w2ot_method.transport(state, x)


@jax.jit
def _conjugate(state: W2OTState, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    solved = w2ot_method.inverse(state, y)
    return solved.x, solved.value


def dual_maps(states: PairsState, names: Sequence[str] = AMOS_PAIRS) -> list[DualMaps]:
    """Each pair's potential f, forward map grad f, and, through the warm-started conjugate solver
    (the configuration's, restarted from y too for the pairs trained so), its inverse map grad f*
    and conjugate f*."""
    pairs = _checked(names)
    if states.alive.shape != (len(pairs),):
        raise ValueError(f"the state holds {states.alive.shape[0]} pairs but {len(pairs)} names were given")
    out = []
    for i, p in enumerate(pairs):
        state = jax.tree.map(lambda a, i=i: a[i], states.w2ot)
        state = dataclasses.replace(state, config=dataclasses.replace(
            state.config, restart_from_target=bool(states.restart[i])))
        out.append(DualMaps(
            pair=p,
            potential=functools.partial(_potential, state),
            forward=functools.partial(_forward, state),
            inverse=lambda y, s=state: _conjugate(s, y)[0],
            conjugate=lambda y, s=state: _conjugate(s, y)[1],
        ))
    return out


def _target_variance(y: jax.Array) -> jax.Array:
    """Mean per-coordinate variance of the target samples."""
    return jnp.mean(jnp.var(y, axis=0))


EPSILON_SCALES: dict[str, Callable[[jax.Array], jax.Array]] = {
    "absolute": lambda y: jnp.ones(()),
    "target_variance": _target_variance,
}
"""What ``epsilon`` is measured in, per pair: absolute units (w2ot's metric), or the mean per-coordinate
variance σ² of ν, so the blur length √ε is the same fraction of every pair's size (ε = 1e-2 σ² is
w2ot's 1e-2 exactly on the pairs whose target is N(0, I))."""


def _evaluation_samples(p: Pair, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """X ~ μ and Y ~ ν, n each, drawn the same way for every table (one key for all pairs)."""
    key_x, key_y = jax.random.split(key)
    return p.source(key_x, n), p.target(key_y, n)


def sinkhorn_table(maps: Sequence[DualMaps], key: jax.Array, n: int = 512, *, epsilon: float = EPSILON,
                   epsilon_scale: str = "absolute", max_iterations: int = MAX_ITERATIONS) -> Any:
    """Amos's 2-D metric per pair (``eval_extra`` in ``w2ot/data.py``; as :func:`otlib.ot.sinkhorn.transport_errors`).

    Returns a pandas DataFrame indexed by pair with the debiased Sinkhorn divergences (cost ||x - y||^2)
    ``forward`` = S(grad f(X), Y), ``inverse`` = S(grad f*(Y), X), the reference scale
    ``source_target`` = S(X, Y) of doing nothing, and the ``epsilon`` used, on the same ``n`` fresh
    samples of each pair (one key for all pairs, as the reference code's ``PRNGKey(0)``).

    Args:
      maps: the pairs and their learned maps.
      key: draws X ~ μ and Y ~ ν.
      n: samples per measure (512 in w2ot and the ENOT tutorial).
      epsilon: entropic regularisation, in the unit of ``epsilon_scale``.
      epsilon_scale: a key of :data:`EPSILON_SCALES`.
      max_iterations: Sinkhorn's cap; a divergence is NaN when Sinkhorn did not converge within it.
    """
    import pandas as pd

    if epsilon_scale not in EPSILON_SCALES:
        raise ValueError(f"unknown epsilon_scale {epsilon_scale!r}; choose one of {sorted(EPSILON_SCALES)}")
    rows = {}
    for m in maps:
        x, y = _evaluation_samples(m.pair, key, n)
        eps = float(epsilon * EPSILON_SCALES[epsilon_scale](y))
        divergence = functools.partial(sinkhorn_divergence, epsilon=eps, max_iterations=max_iterations)
        rows[m.pair.name] = {"forward": float(divergence(m.forward(x), y)),
                             "inverse": float(divergence(m.inverse(y), x)),
                             "source_target": float(divergence(x, y)), "epsilon": eps}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "pair"
    return table


def duality_table(maps: Sequence[DualMaps], key: jax.Array, n: int = 512) -> Any:
    """Weak duality as a check of the conjugate solver, on ``n`` fresh samples of each pair.

    For *any* potential f with its exact conjugate, f(x) + f*(y) >= <x, y>; averaged over an optimal
    coupling of the empirical measures of X and Y (Fenchel-Young, then Kantorovich) this gives

        -L(f) = -(mean f(X) + mean f*(Y)) <= ½W₂²(X, Y) - ½ mean||x||² - ½ mean||y||² =: bound,

    with ½W₂²(X, Y) exact (:func:`otlib.ot.costs.empirical_ot_cost`, Hungarian algorithm). The solver's
    f*(y) = <x̂, y> - f(x̂) at its argmin x̂ is never above the exact f*(y), so an *estimated* dual
    objective above the bound proves that for some targets the warm-started solver returned a local,
    not the global, minimum of J(x; y) = f(x) - <x, y>. That needs a non-convex f: for an ICNN, whose
    J is convex, an excess stays at the level of the solver's tolerance.

    Returns a pandas DataFrame indexed by pair: ``dual_objective`` (-L with the solver's conjugate),
    ``bound``, and ``gap`` = bound - dual_objective (>= 0 up to the tolerance when the conjugate is right).
    The samples are those of :func:`sinkhorn_table` for the same ``key`` and ``n``.
    """
    import pandas as pd

    from otlib.ot.costs import SqEuclidean, empirical_ot_cost

    rows = {}
    for m in maps:
        x, y = _evaluation_samples(m.pair, key, n)
        dual = -float(jnp.mean(m.potential(x)) + jnp.mean(m.conjugate(y)))
        half_w2 = empirical_ot_cost(SqEuclidean(), x, y)
        bound = half_w2 - 0.5 * float(jnp.mean(jnp.sum(x * x, axis=-1)) + jnp.mean(jnp.sum(y * y, axis=-1)))
        rows[m.pair.name] = {"dual_objective": dual, "bound": bound, "gap": bound - dual}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "pair"
    return table
