"""Numerical convex conjugates, warm-started (Amos 2023, Alg. 2 CONJUGATE(f, y, x_init); w2ot §2).

For a potential f and a target point y,

    f*(y) = -min_x J(x; y),    J(x; y) = f(x) - <x, y>,    x_hat(y) = argmin_x J(x; y) = grad f*(y).

A solver minimises J for *one* y from a given start ``x_init`` (the amortized prediction H(y), or y
itself for a cold start); a batch of targets is a ``jax.vmap`` of that (:func:`conjugates`, optionally
in chunks), and under ``vmap`` the loop runs until the slowest target is done. Every solver shares the
stopping rule of the reference code: at least one step, then stop once ||grad J||_inf < gtol, after
``max_iter`` steps, or when the line search finds no acceptable step.

Solvers (frozen dataclasses with ``solve(f, y, x_init) -> ConjugateResult``):

* :class:`LBFGS`: L-BFGS (two-loop recursion, history 10) with an Armijo line search over the step
  sizes ``base^-k``, ``k = 0 .. num_evaluations - 1``, either *parallel* (all candidates evaluated at
  once with ``vmap``, the largest acceptable one kept: the accelerator-friendly variant of the paper) or
  *backtracking* (sequential; each candidate evaluated once, unlike the reference code, which evaluates
  step 1 twice, w2ot §8).
* :class:`LBFGSWolfe`: L-BFGS with the strong-Wolfe zoom line search, from ``optax.lbfgs``.
* :class:`Adam`: Adam with a cosine step size 0.1 -> 0.1 * 1e-4 over ``max_iter``.

The paper's settings are :data:`LBFGS_PAPER`, :data:`LBFGS_HIGH_PRECISION`, :data:`LBFGS_WOLFE`,
:data:`ADAM_PAPER` (and :data:`LBFGS_BACKTRACKING`, the CPU schedule of the first), named in :data:`SOLVERS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Optional, Protocol

import jax
import jax.numpy as jnp
import optax

__all__ = ["ConjugateResult", "ConjugateSolver", "LBFGS", "LBFGSWolfe", "Adam", "LINE_SEARCHES", "LBFGS_PAPER",
           "LBFGS_BACKTRACKING", "LBFGS_HIGH_PRECISION", "LBFGS_WOLFE", "ADAM_PAPER", "SOLVERS", "solver", "conjugates",
           "normalized_traces"]

Potential = Callable[[jax.Array], jax.Array]
"""A potential on single points, ``f: (D,) -> ()``."""


class ConjugateResult(NamedTuple):
    """What a conjugate solve returns (one target; a leading batch axis under ``vmap``).

    Attributes:
      x: the minimiser x_hat of J(.; y), i.e. grad f*(y), the inverse transport of y.
      value: f*(y) = -J(x_hat; y).
      num_iter: solver iterations taken.
      grad_norm: ||grad_x J(x_hat; y)||_inf at the returned point.
      trace: J after iteration 0, 1, ..., max_iter (the final value repeated after the solver stops)
        when the solver has ``record_trace=True``, else None.
    """

    x: jax.Array
    value: jax.Array
    num_iter: jax.Array
    grad_norm: jax.Array
    trace: Optional[jax.Array] = None


class ConjugateSolver(Protocol):
    """Anything with a tolerance, an iteration cap and ``solve(f, y, x_init)``."""

    gtol: float
    max_iter: int

    def solve(self, f: Potential, y: jax.Array, x_init: Optional[jax.Array] = None) -> ConjugateResult: ...


# ----------------------------------------------------------------------------------------------------
# The shared loop: at least one step, then until ||grad J||_inf < gtol, max_iter, or a failed step.

class _Iterate(NamedTuple):
    x: jax.Array
    value: jax.Array  # J(x; y)
    grad: jax.Array  # grad_x J(x; y)
    k: jax.Array
    ok: jax.Array  # False once a step failed (no acceptable step size)
    trace: Optional[jax.Array]  # J after each iteration, when recorded
    memory: Any  # the solver's own state (L-BFGS pairs, optimiser moments)


Advance = Callable[[Callable[[jax.Array], jax.Array], _Iterate], tuple[jax.Array, jax.Array, jax.Array, jax.Array, Any]]
"""One solver step: ``(J, iterate) -> (x, J(x), grad J(x), ok, memory)``."""


def _inf_norm(g: jax.Array) -> jax.Array:
    return jnp.max(jnp.abs(g))


def _check(gtol: float, max_iter: int) -> None:
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1 (the solvers always take one step), got {max_iter}")
    if not gtol == gtol:  # NaN
        raise ValueError("gtol is NaN; use a negative gtol to run exactly max_iter iterations")


def _minimize(J: Callable[[jax.Array], jax.Array], x_init: jax.Array, memory: Any, advance: Advance, *,
              gtol: float, max_iter: int, record_trace: bool) -> ConjugateResult:
    """Run ``advance`` from ``x_init`` under the shared stopping rule (module docstring)."""
    value, grad = jax.value_and_grad(J)(x_init)
    trace = jnp.full((max_iter + 1,), value) if record_trace else None
    start = _Iterate(x_init, value, grad, jnp.asarray(0, jnp.int32), jnp.asarray(True), trace, memory)

    def keep_going(it: _Iterate) -> jax.Array:
        return it.ok & (it.k < max_iter) & ((it.k == 0) | (_inf_norm(it.grad) >= gtol))

    def body(it: _Iterate) -> _Iterate:
        x, value, grad, ok, memory = advance(J, it)
        trace = it.trace.at[it.k + 1].set(value) if record_trace else it.trace
        return _Iterate(x, value, grad, it.k + 1, ok, trace, memory)

    end = jax.lax.while_loop(keep_going, body, start)
    trace = end.trace
    if record_trace:  # after the last iteration: the final value
        trace = jnp.where(jnp.arange(max_iter + 1) > end.k, end.value, trace)
    return ConjugateResult(end.x, -end.value, end.k, _inf_norm(end.grad), trace)


def _objective(f: Potential, y: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """J(x; y) = f(x) - <x, y>."""
    return lambda x: f(x) - jnp.vdot(x, y)


# ----------------------------------------------------------------------------------------------------
# Armijo line searches: step sizes base^-k, sufficient decrease J(x + t d) <= J(x) + c1 t <grad J, d>.

class _Step(NamedTuple):
    x: jax.Array
    value: jax.Array
    grad: jax.Array
    ok: jax.Array


def _armijo(value: jax.Array, slope: jax.Array, t: jax.Array, new_value: jax.Array, c1: float) -> jax.Array:
    return new_value <= value + c1 * t * slope  # False for NaN


def _parallel_armijo(J, x, value, grad, d, *, base: float, num_evaluations: int, c1: float) -> _Step:
    """All candidate steps at once (one batched evaluation), the largest acceptable one kept."""
    steps = base ** -jnp.arange(num_evaluations, dtype=x.dtype)
    values = jax.vmap(lambda t: J(x + t * d))(steps)
    acceptable = _armijo(value, jnp.vdot(grad, d), steps, values, c1)
    ok = acceptable.any()
    x_new = jnp.where(ok, x + steps[jnp.argmax(acceptable)] * d, x)
    new_value, new_grad = jax.value_and_grad(J)(x_new)
    return _Step(x_new, new_value, new_grad, ok)


def _backtracking_armijo(J, x, value, grad, d, *, base: float, num_evaluations: int, c1: float) -> _Step:
    """Try 1, 1/base, 1/base^2, ... one at a time (each evaluated once) until Armijo holds."""
    slope = jnp.vdot(grad, d)

    def try_next(carry: tuple[jax.Array, _Step]) -> tuple[jax.Array, _Step]:
        k, _ = carry
        t = base ** -k.astype(x.dtype)
        new_value, new_grad = jax.value_and_grad(J)(x + t * d)
        return k + 1, _Step(x + t * d, new_value, new_grad, _armijo(value, slope, t, new_value, c1))

    def searching(carry: tuple[jax.Array, _Step]) -> jax.Array:
        k, step = carry
        return ~step.ok & (k < num_evaluations)

    none_yet = _Step(x, value, grad, jnp.asarray(False))
    _, step = jax.lax.while_loop(searching, try_next, (jnp.asarray(0, jnp.int32), none_yet))
    keep = lambda new, old: jnp.where(step.ok, new, old)
    return _Step(keep(step.x, x), keep(step.value, value), keep(step.grad, grad), step.ok)


LINE_SEARCHES: dict[str, Callable[..., _Step]] = {
    "parallel": _parallel_armijo,
    "backtracking": _backtracking_armijo,
}
"""Armijo line searches for :class:`LBFGS` by name."""


# ----------------------------------------------------------------------------------------------------
# L-BFGS (Nocedal and Wright 2006, Alg. 7.4 and 7.5): the two-loop recursion over the last m pairs.

class _History(NamedTuple):
    """The last m pairs s = x_{k+1} - x_k, r = grad_{k+1} - grad_k, oldest first; rho = 1/<s, r> (0: empty)."""

    s: jax.Array
    r: jax.Array
    rho: jax.Array


def _two_loop(grad: jax.Array, memory: _History) -> jax.Array:
    """The quasi-Newton direction -H_k grad with H_k^0 = gamma I, gamma = <s, r>/<r, r> of the newest pair."""

    def newest_first(q, pair):
        s, r, rho = pair
        alpha = rho * jnp.vdot(s, q)
        return q - alpha * r, alpha

    q, alphas = jax.lax.scan(newest_first, grad, memory, reverse=True)
    s_new, r_new, rho_new = memory.s[-1], memory.r[-1], memory.rho[-1]
    gamma = jnp.where(rho_new > 0, jnp.vdot(s_new, r_new) / jnp.maximum(jnp.vdot(r_new, r_new), 1e-30), 1.0)

    def oldest_first(p, pair_alpha):
        (s, r, rho), alpha = pair_alpha
        beta = rho * jnp.vdot(r, p)
        return p + (alpha - beta) * s, None

    p, _ = jax.lax.scan(oldest_first, gamma * q, (memory, alphas))
    return -p


def _remember(memory: _History, s: jax.Array, r: jax.Array) -> _History:
    """Append the newest pair, dropping the oldest; pairs without positive curvature <s, r> are skipped."""
    sr = jnp.vdot(s, r)
    fresh = sr > 1e-10 * jnp.sqrt(jnp.vdot(s, s) * jnp.vdot(r, r))
    append = lambda buf, new: jnp.where(fresh, jnp.concatenate([buf[1:], new[None]]), buf)
    return _History(append(memory.s, s), append(memory.r, r), append(memory.rho, jnp.where(fresh, 1.0 / sr, 0.0)))


@dataclasses.dataclass(frozen=True)
class LBFGS:
    """L-BFGS with an Armijo line search (w2ot §2, "L-BFGS"; defaults: ``lbfgs.yaml``, the paper's).

    Attributes:
      gtol: stop once ||grad J||_inf < gtol (negative: never; runs exactly ``max_iter`` steps).
      max_iter: iteration cap.
      history: pairs kept by the two-loop recursion (10, w2ot §2).
      line_search: ``"parallel"`` or ``"backtracking"`` (:data:`LINE_SEARCHES`).
      base: candidate step sizes are ``base^-k`` (1.5, w2ot §2).
      num_evaluations: number of candidates (10 parallel, 30 backtracking in the reference configs).
      c1: Armijo's sufficient-decrease constant (1e-4, w2ot §2).
      record_trace: also return J after every iteration (for convergence plots).
    """

    gtol: float = 0.1  # lbfgs.yaml
    max_iter: int = 100  # lbfgs.yaml
    history: int = 10  # modified jax.scipy L-BFGS of the reference code
    line_search: str = "parallel"  # lbfgs.yaml
    base: float = 1.5  # lbfgs.yaml
    num_evaluations: int = 10  # lbfgs.yaml
    c1: float = 1e-4  # Armijo constant of the reference code
    record_trace: bool = False

    def __post_init__(self) -> None:
        _check(self.gtol, self.max_iter)
        if self.line_search not in LINE_SEARCHES:
            raise ValueError(f"unknown line_search {self.line_search!r}; choose one of {sorted(LINE_SEARCHES)}")
        if self.base <= 1.0 or self.num_evaluations < 1 or self.history < 1:
            raise ValueError(f"need base > 1, num_evaluations >= 1 and history >= 1, got base={self.base}, "
                             f"num_evaluations={self.num_evaluations}, history={self.history}")

    def solve(self, f: Potential, y: jax.Array, x_init: Optional[jax.Array] = None) -> ConjugateResult:
        """Minimise J(.; y) from ``x_init`` (``y`` when None)."""
        line_search = LINE_SEARCHES[self.line_search]
        x0 = y if x_init is None else x_init
        empty = _History(jnp.zeros((self.history,) + x0.shape, x0.dtype),
                         jnp.zeros((self.history,) + x0.shape, x0.dtype), jnp.zeros((self.history,), x0.dtype))

        def advance(J, it: _Iterate):
            d = _two_loop(it.grad, it.memory)
            step = line_search(J, it.x, it.value, it.grad, d, base=self.base,
                               num_evaluations=self.num_evaluations, c1=self.c1)
            memory = _remember(it.memory, step.x - it.x, step.grad - it.grad)
            return step.x, step.value, step.grad, step.ok, memory

        return _minimize(_objective(f, y), x0, empty, advance, gtol=self.gtol, max_iter=self.max_iter,
                         record_trace=self.record_trace)


@dataclasses.dataclass(frozen=True)
class LBFGSWolfe:
    """L-BFGS with the strong-Wolfe zoom line search (``optax.lbfgs`` + ``scale_by_zoom_linesearch``).

    The reference code's ``linesearch: wolfe`` option (JAX's zoom search, at most 20 steps, w2ot §2);
    here the update and line search are optax's, only the stopping rule is shared with :class:`LBFGS`.
    """

    gtol: float = 0.1  # lbfgs.yaml
    max_iter: int = 100  # lbfgs.yaml
    history: int = 10
    max_linesearch_steps: int = 20  # maxls of the reference code's zoom search
    record_trace: bool = False

    def __post_init__(self) -> None:
        _check(self.gtol, self.max_iter)

    def solve(self, f: Potential, y: jax.Array, x_init: Optional[jax.Array] = None) -> ConjugateResult:
        """Minimise J(.; y) from ``x_init`` (``y`` when None)."""
        opt = optax.lbfgs(memory_size=self.history, linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=self.max_linesearch_steps, verbose=False))
        x0 = y if x_init is None else x_init

        def advance(J, it: _Iterate):
            updates, state = opt.update(it.grad, it.memory, it.x, value=it.value, grad=it.grad, value_fn=J)
            value, grad = optax.tree.get(state, "value"), optax.tree.get(state, "grad")
            return it.x + updates, value, grad, value <= it.value, state

        return _minimize(_objective(f, y), x0, opt.init(x0), advance, gtol=self.gtol, max_iter=self.max_iter,
                         record_trace=self.record_trace)


@dataclasses.dataclass(frozen=True)
class Adam:
    """Adam with a cosine-decayed step size (w2ot §2, ``adam.yaml``)."""

    gtol: float = 0.1  # adam.yaml
    max_iter: int = 100  # adam.yaml
    learning_rate: float = 0.1  # adam.yaml, decayed by cosine to learning_rate * final_factor
    final_factor: float = 1e-4  # adam.yaml
    b1: float = 0.9  # optax default, as in adam.yaml
    b2: float = 0.999
    record_trace: bool = False

    def __post_init__(self) -> None:
        _check(self.gtol, self.max_iter)

    def solve(self, f: Potential, y: jax.Array, x_init: Optional[jax.Array] = None) -> ConjugateResult:
        """Minimise J(.; y) from ``x_init`` (``y`` when None)."""
        schedule = optax.cosine_decay_schedule(self.learning_rate, self.max_iter, alpha=self.final_factor)
        opt = optax.adam(schedule, b1=self.b1, b2=self.b2)
        x0 = y if x_init is None else x_init

        def advance(J, it: _Iterate):
            updates, state = opt.update(it.grad, it.memory)
            x = it.x + updates
            value, grad = jax.value_and_grad(J)(x)
            return x, value, grad, jnp.isfinite(value), state

        return _minimize(_objective(f, y), x0, opt.init(x0), advance, gtol=self.gtol, max_iter=self.max_iter,
                         record_trace=self.record_trace)


# ----------------------------------------------------------------------------------------------------
# The paper's settings.

LBFGS_PAPER = LBFGS(gtol=0.1, max_iter=100, line_search="parallel", base=1.5, num_evaluations=10)
"""``lbfgs.yaml``: the README's training runs and the convergence figure (parallel Armijo)."""
LBFGS_HIGH_PRECISION = LBFGS(gtol=1e-3, max_iter=100, line_search="backtracking", base=1.5, num_evaluations=30)
"""``lbfgs_high_precision.yaml``: the reference ``train.yaml`` default (sequential Armijo)."""
LBFGS_BACKTRACKING = dataclasses.replace(LBFGS_PAPER, line_search="backtracking")
"""``lbfgs.yaml`` with its candidate steps tried one at a time: the same iterates as :data:`LBFGS_PAPER`
(both accept the largest acceptable ``base^-k``), fewer evaluations; faster on a CPU."""
LBFGS_WOLFE = LBFGSWolfe(gtol=0.1, max_iter=100)
"""L-BFGS with the strong-Wolfe zoom line search at the settings of ``lbfgs.yaml``."""
ADAM_PAPER = Adam(gtol=0.1, max_iter=100)
"""``adam.yaml``."""

SOLVERS: dict[str, ConjugateSolver] = {
    "lbfgs": LBFGS_PAPER,
    "lbfgs_backtracking": LBFGS_BACKTRACKING,
    "lbfgs_high_precision": LBFGS_HIGH_PRECISION,
    "lbfgs_wolfe": LBFGS_WOLFE,
    "adam": ADAM_PAPER,
}
"""Conjugate solvers by the reference code's config names."""


def solver(name: str) -> ConjugateSolver:
    """A solver of :data:`SOLVERS` by name."""
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown conjugate solver {name!r}; choose one of {sorted(SOLVERS)}") from None


def conjugates(solver: ConjugateSolver, f: Potential, y: jax.Array, x_init: Optional[jax.Array] = None, *,
               batch_size: Optional[int] = None) -> ConjugateResult:
    """``solver.solve`` on every row of ``y`` (n, D), warm-started from the rows of ``x_init`` (or ``y``).

    ``batch_size=None`` solves all rows at once (``vmap``): the loop runs until the slowest row is done,
    which is free on an accelerator. On a CPU every row's work costs time, so solving ``batch_size``
    rows at a time (``lax.map`` over chunks, ``vmap`` within) is faster: each chunk stops at its own
    slowest row. The results are the same either way.
    """
    x_init = y if x_init is None else x_init
    solve = lambda pair: solver.solve(f, *pair)  # noqa: E731
    if batch_size is None or batch_size >= y.shape[0]:
        return jax.vmap(solve)((y, x_init))
    return jax.lax.map(solve, (y, x_init), batch_size=batch_size)


def normalized_traces(traces: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Min-max normalise J per target over all curves, as in the paper's conjugation-convergence figure.

    ``traces`` maps a curve's name to the ``trace`` of a batched solve, (n, T) each (T may differ); every
    target's values are mapped to [0, 1] by that target's minimum and maximum over all the curves.
    """
    low = jnp.min(jnp.stack([t.min(axis=-1) for t in traces.values()]), axis=0)[:, None]
    high = jnp.max(jnp.stack([t.max(axis=-1) for t in traces.values()]), axis=0)[:, None]
    return {name: (t - low) / jnp.maximum(high - low, 1e-12) for name, t in traces.items()}
