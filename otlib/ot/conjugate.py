"""Numerical convex conjugates, warm-started (Amos 2023, arXiv:2210.12153, Alg. 2 CONJUGATE(f, y, x_init);
his ``w2ot/conjugate_solver.py``).

For a potential f and a target point y,

    f*(y) = -min_x J(x; y),    J(x; y) = f(x) - <x, y>,    x_hat(y) = argmin_x J(x; y) = grad f*(y).

A solver minimises J independently for every row of a batch of targets y (n, D), each from its own start
``x_init`` (the amortized prediction H(y), or y itself for a cold start). Every solver shares the
stopping rule of the reference code: at least one step, then stop once ||grad J||_inf < gtol, after
``max_iter`` steps, or when the line search finds no acceptable step.

How a batch is solved (:func:`conjugates`). The reference code vmaps one solve per target, so every
target runs until the slowest of the batch is done, and the vmapped L-BFGS also waits, inside each
iteration, for the target whose line search backtracks longest. Here a batch advances in *ticks*: one
tick evaluates J and its gradient once at one point per target (one line-search trial, or one whole
iteration for solvers without a sequential line search), and a target that has stopped is frozen. Once
few targets are still going, they are gathered into a smaller working set (``shrink``), so the slow tail
of the batch is not paid for at the width of the whole batch. The iterates of every target are exactly
those of its own solve; only the amount of wasted work changes (timings in
``docs/performance.md``).

Solvers (frozen dataclasses; ``solve(f, y, x_init)`` solves one target, :func:`conjugates` a batch):

* :class:`LBFGS`: L-BFGS (two-loop recursion, history 10) with an Armijo line search over the step
  sizes ``base^-k``, ``k = 0 .. num_evaluations - 1``, either *parallel* (all candidates evaluated at
  once, the largest acceptable one kept: the accelerator-friendly variant of the paper, one tick per
  iteration) or *backtracking* (sequential, one candidate per tick; each candidate evaluated once,
  unlike the reference code, which evaluates step 1 twice). Both accept the same step.
* :class:`LBFGSWolfe`: L-BFGS with the strong-Wolfe zoom line search, from ``optax.lbfgs``.
* :class:`Adam`: Adam with a cosine step size 0.1 -> 0.1 * 1e-4 over ``max_iter``.

The paper's settings are :data:`LBFGS_PAPER`, :data:`LBFGS_HIGH_PRECISION`, :data:`LBFGS_WOLFE`,
:data:`ADAM_PAPER` (and :data:`LBFGS_BACKTRACKING`, the CPU schedule of the first), named in :data:`SOLVERS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Optional, Protocol, Sequence

import jax
import jax.numpy as jnp
import optax

__all__ = ["ConjugateResult", "ConjugateSolver", "LBFGS", "LBFGSWolfe", "Adam", "LINE_SEARCHES", "LBFGS_PAPER",
           "LBFGS_BACKTRACKING", "LBFGS_HIGH_PRECISION", "LBFGS_WOLFE", "ADAM_PAPER", "SOLVERS", "SHRINK",
           "SHRINK_LARGE_BATCH", "LARGE_BATCH", "shrink_for", "solver",
           "conjugates", "best_of", "normalized_traces"]

Potential = Callable[[jax.Array], jax.Array]
"""A potential on single points, ``f: (D,) -> ()``."""


class ConjugateResult(NamedTuple):
    """What a conjugate solve returns (one target; a leading batch axis for a batch).

    Attributes:
      x: the minimiser x_hat of J(.; y), i.e. grad f*(y), the inverse transport of y.
      value: f*(y) = -J(x_hat; y).
      num_iter: solver iterations taken.
      grad_norm: ||grad_x J(x_hat; y)||_inf at the returned point.
      trace: J after iteration 0, 1, ..., max_iter (the final value repeated after the solver stops)
        when the solver has ``record_trace=True``, else None.
      converged: whether the solve met its tolerance (``grad_norm < gtol`` with no failed step) rather
        than stopping at the iteration cap or on a failed line search.
    """

    x: jax.Array
    value: jax.Array
    num_iter: jax.Array
    grad_norm: jax.Array
    trace: Optional[jax.Array] = None
    converged: Optional[jax.Array] = None


# ----------------------------------------------------------------------------------------------------
# A batch of objectives J(.; y_i), and the state of their solves. Every array has the targets first.

class _Objective(NamedTuple):
    """J(x; y) = f(x) - <x, y> for each row y of ``y`` (n, D), evaluated row by row."""

    f: Potential
    y: jax.Array

    def single(self, y: jax.Array) -> Callable[[jax.Array], jax.Array]:
        """J(.; y) for one target."""
        return lambda x: self.f(x) - jnp.vdot(x, y)

    def value(self, x: jax.Array) -> jax.Array:
        """J(x_i; y_i) for each row, (n,)."""
        return jax.vmap(lambda x, y: self.single(y)(x))(x, self.y)

    def value_and_grad(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """J(x_i; y_i) and grad_x J(x_i; y_i) for each row, (n,) and (n, D)."""
        return jax.vmap(lambda x, y: jax.value_and_grad(self.single(y))(x))(x, self.y)


class _Iterate(NamedTuple):
    """The current point of n solves."""

    x: jax.Array  # (n, D)
    value: jax.Array  # (n,) J(x; y)
    grad: jax.Array  # (n, D) grad_x J(x; y)
    k: jax.Array  # (n,) iterations completed
    ok: jax.Array  # (n,) False once a step failed (no acceptable step size)
    trace: Optional[jax.Array]  # (n, max_iter + 1) J after each iteration, when recorded
    memory: Any  # the solver's own state (L-BFGS pairs, optimiser moments), targets first


class _Tick(NamedTuple):
    """What a solver's tick returns: the new point (the old one where no step was taken), whether the
    step failed, the solver's memory, and which targets completed an iteration on this tick."""

    x: jax.Array
    value: jax.Array
    grad: jax.Array
    ok: jax.Array
    memory: Any
    completed: jax.Array


class ConjugateSolver(Protocol):
    """A tolerance, an iteration cap, and one tick of the solver on a batch (see the module docstring).

    ``start(x0)`` is the solver's memory for n targets starting at x0 (n, D); ``tick(J, it)`` evaluates J
    at one point per target and returns the :class:`_Tick`. It computes every row; the caller keeps the
    point, the iteration count and the trace of the targets that had stopped (a stopped target never
    resumes, so its memory is never read again).
    """

    gtol: float
    max_iter: int
    record_trace: bool

    def start(self, x0: jax.Array) -> Any: ...

    def tick(self, J: _Objective, it: _Iterate) -> _Tick: ...

    def solve(self, f: Potential, y: jax.Array, x_init: Optional[jax.Array] = None) -> ConjugateResult: ...


def _rows(mask: jax.Array, like: jax.Array) -> jax.Array:
    """``mask`` (n,) broadcast against an array whose first axis holds the n targets."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def _where_rows(mask: jax.Array, new: Any, old: Any) -> Any:
    """Leaf by leaf, the rows of ``new`` where ``mask`` holds, else those of ``old``."""
    return jax.tree.map(lambda a, b: jnp.where(_rows(mask, a), a, b), new, old)


def _rowdot(a: jax.Array, b: jax.Array) -> jax.Array:
    """<a_i, b_i> for each row."""
    return jnp.sum(a * b, axis=-1)


def _inf_norm(g: jax.Array) -> jax.Array:
    """||g_i||_inf for each row."""
    return jnp.max(jnp.abs(g), axis=-1)


def _check(gtol: float, max_iter: int) -> None:
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1 (the solvers always take one step), got {max_iter}")
    if not gtol == gtol:  # NaN
        raise ValueError("gtol is NaN; use a negative gtol to run exactly max_iter iterations")


# ----------------------------------------------------------------------------------------------------
# The shared loop: ticks until every target has stopped, on shrinking working sets.

SHRINK: tuple[int, ...] = (4, 16)
"""Working sets for a solve compiled once and run many times (the W2OT training step passes
:func:`shrink_for` of its batch to :func:`conjugates`): once at most n/4 targets are still going, they go on
as a set of n/4 rows, then n/16. Each level adds one more copy of the tick to the compiled program, so a
solve that runs once (an evaluation, a figure) is better off without them. The results are the same for any
choice; the timings behind (4, 16) (batch 1024) are in ``docs/performance.md``."""

SHRINK_LARGE_BATCH: tuple[int, ...] = (8, 64, 512)
"""The working sets above :data:`LARGE_BATCH` targets (n/8, n/64, n/512): at the 2-D full profile's
batch of 10 000 the slowest few targets of a step take many more iterations than the rest, and ticking
them on n/16 = 625 rows is slower than going on down to n/512 (timings in ``docs/performance.md``)."""

LARGE_BATCH = 4096


def shrink_for(n: int) -> tuple[int, ...]:
    """The working sets for a batch of ``n`` targets solved at every training step: :data:`SHRINK` up to
    :data:`LARGE_BATCH` targets, :data:`SHRINK_LARGE_BATCH` above."""
    return SHRINK_LARGE_BATCH if n > LARGE_BATCH else SHRINK


def _going(solver: ConjugateSolver, it: _Iterate) -> jax.Array:
    """The stopping rule (module docstring), per target."""
    return it.ok & (it.k < solver.max_iter) & ((it.k == 0) | (_inf_norm(it.grad) >= solver.gtol))


def _tick(solver: ConjugateSolver, J: _Objective, it: _Iterate) -> _Iterate:
    """One tick of every target; those that had stopped keep their point, iteration count and trace."""
    going = _going(solver, it)
    step = solver.tick(J, it)
    completed = going & step.completed
    trace = it.trace
    if trace is not None:
        at = jnp.arange(trace.shape[-1]) == (it.k + 1)[:, None]
        trace = jnp.where(_rows(completed, trace) & at, step.value[:, None], trace)
    return _Iterate(*_where_rows(going, (step.x, step.value, step.grad), (it.x, it.value, it.grad)),
                    k=it.k + completed.astype(it.k.dtype), ok=it.ok & (~going | step.ok), trace=trace,
                    memory=step.memory)


def _run(solver: ConjugateSolver, f: Potential, y: jax.Array, it: _Iterate, sizes: Sequence[int]) -> _Iterate:
    """Tick the first working set (all of ``y``) until at most ``sizes[1]`` targets are going, gather those
    into a working set of that size, recurse, and scatter the results back."""
    J = _Objective(f, y)
    stop = sizes[1] if len(sizes) > 1 else 0
    it = jax.lax.while_loop(lambda it: jnp.sum(_going(solver, it)) > stop, lambda it: _tick(solver, J, it), it)
    if len(sizes) == 1:
        return it
    rows = jax.lax.top_k(_going(solver, it).astype(jnp.int32), sizes[1])[1]  # every going row is among them
    tail = _run(solver, f, y[rows], jax.tree.map(lambda a: a[rows], it), sizes[1:])
    return jax.tree.map(lambda a, b: a.at[rows].set(b), it, tail)


def conjugates(solver: ConjugateSolver, f: Potential, y: jax.Array, x_init: Optional[jax.Array] = None, *,
               shrink: Sequence[int] = ()) -> ConjugateResult:
    """Solve the conjugate of every row of ``y`` (n, D), warm-started from the rows of ``x_init`` (or ``y``).

    ``shrink`` lists the divisors of n that give the working sets; the default ``()`` ticks the whole batch
    until every target is done, and :func:`shrink_for` is the choice for a solve run many times. The results do
    not depend on it (module docstring).
    """
    x0 = y if x_init is None else x_init
    n = y.shape[0]
    sizes = [n]
    for divisor in shrink:
        if divisor < 1:
            raise ValueError(f"shrink holds divisors of the batch (>= 1), got {tuple(shrink)}")
        if n // divisor >= 1 and n // divisor < sizes[-1]:
            sizes.append(n // divisor)
    value, grad = _Objective(f, y).value_and_grad(x0)
    trace = jnp.repeat(value[:, None], solver.max_iter + 1, axis=1) if solver.record_trace else None
    start = _Iterate(x0, value, grad, jnp.zeros(n, jnp.int32), jnp.ones(n, bool), trace, solver.start(x0))
    end = _run(solver, f, y, start, sizes)
    trace = end.trace
    if trace is not None:  # after the last iteration: the final value
        trace = jnp.where(jnp.arange(trace.shape[-1]) > end.k[:, None], end.value[:, None], trace)
    grad_norm = _inf_norm(end.grad)
    return ConjugateResult(end.x, -end.value, end.k, grad_norm, trace, converged=end.ok & (grad_norm < solver.gtol))


def best_of(first: ConjugateResult, second: ConjugateResult) -> ConjugateResult:
    """Per target, the solve that reached the lower J (the larger f*(y)): two starts of one batch of targets.

    For a non-convex f, J(.; y) may have several basins and a warm start can settle in a shallow one; the
    solver's f*(y) is then too small, and a dual objective built on it too large (the weak-duality check of
    :func:`otlib.amos2023.toy2d_training.duality_table`). Solving again from another start and keeping the better
    minimum can only bring f*(y) closer to the exact conjugate. Ties keep ``first``; the ``trace`` is kept
    only when both solves recorded one.
    """
    pick = first.value >= second.value

    def choose(a: Optional[jax.Array], b: Optional[jax.Array]) -> Optional[jax.Array]:
        return None if a is None or b is None else jnp.where(_rows(pick, a), a, b)

    return ConjugateResult(*(choose(a, b) for a, b in zip(first, second)))


class _SolveOne:
    """``solve`` for one target, shared by the solvers: a batch of one row."""

    def solve(self, f: Potential, y: jax.Array, x_init: Optional[jax.Array] = None) -> ConjugateResult:
        """Minimise J(.; y) from ``x_init`` (``y`` when None) for one target y (D,)."""
        x0 = y if x_init is None else x_init
        result = conjugates(self, f, y[None], x0[None])
        return jax.tree.map(lambda a: a[0], result)


# ----------------------------------------------------------------------------------------------------
# Armijo line searches: step sizes base^-k, sufficient decrease J(x + t d) <= J(x) + c1 t <grad J, d>.

def _armijo(value: jax.Array, slope: jax.Array, t: jax.Array, new_value: jax.Array, c1: float) -> jax.Array:
    return new_value <= value + c1 * t * slope  # False for NaN


# ----------------------------------------------------------------------------------------------------
# L-BFGS (Nocedal and Wright 2006, Alg. 7.4 and 7.5): the two-loop recursion over the last m pairs.

class _History(NamedTuple):
    """The last m pairs s = x_{k+1} - x_k, r = grad_{k+1} - grad_k, oldest first, one (n, D) array per
    pair (so each step of the recursion reads one contiguous array); rho = 1/<s, r> (0: empty)."""

    s: tuple[jax.Array, ...]
    r: tuple[jax.Array, ...]
    rho: tuple[jax.Array, ...]


def _two_loop(grad: jax.Array, memory: _History) -> jax.Array:
    """The quasi-Newton direction -H_k grad with H_k^0 = gamma I, gamma = <s, r>/<r, r> of the newest pair."""
    q, alphas = grad, []
    for s, r, rho in zip(reversed(memory.s), reversed(memory.r), reversed(memory.rho)):  # newest first
        alpha = rho * _rowdot(s, q)
        q = q - alpha[:, None] * r
        alphas.append(alpha)
    s_new, r_new, rho_new = memory.s[-1], memory.r[-1], memory.rho[-1]
    gamma = jnp.where(rho_new > 0, _rowdot(s_new, r_new) / jnp.maximum(_rowdot(r_new, r_new), 1e-30), 1.0)
    p = gamma[:, None] * q
    for s, r, rho, alpha in zip(memory.s, memory.r, memory.rho, reversed(alphas)):  # oldest first
        beta = rho * _rowdot(r, p)
        p = p + (alpha - beta)[:, None] * s
    return -p


def _remember(memory: _History, s: jax.Array, r: jax.Array, accept: jax.Array) -> _History:
    """Where ``accept``, append the newest pair and drop the oldest; pairs without positive curvature
    <s, r> are skipped."""
    sr = _rowdot(s, r)
    fresh = accept & (sr > 1e-10 * jnp.sqrt(_rowdot(s, s) * _rowdot(r, r)))
    shift = lambda buf, new: tuple(jnp.where(_rows(fresh, old), nxt, old)  # noqa: E731
                                   for old, nxt in zip(buf, buf[1:] + (new,)))
    return _History(shift(memory.s, s), shift(memory.r, r), shift(memory.rho, jnp.where(fresh, 1.0 / sr, 0.0)))


class _LBFGSMemory(NamedTuple):
    history: _History
    direction: jax.Array  # (n, D) the current iteration's search direction
    trial: jax.Array  # (n,) the backtracking trial under way (0: a new iteration starts)


def _parallel_armijo(solver: LBFGS, J: _Objective, it: _Iterate) -> _Tick:
    """One whole iteration per tick: every candidate step at once, the largest acceptable one kept."""
    memory = it.memory
    d = _two_loop(it.grad, memory.history)
    steps = solver.base ** -jnp.arange(solver.num_evaluations, dtype=it.x.dtype)
    values = jax.vmap(lambda t: J.value(it.x + t * d))(steps)  # (num_evaluations, n)
    acceptable = _armijo(it.value, _rowdot(it.grad, d), steps[:, None], values, solver.c1)
    ok = acceptable.any(axis=0)
    t = steps[jnp.argmax(acceptable, axis=0)]
    x = jnp.where(_rows(ok, d), it.x + t[:, None] * d, it.x)
    value, grad = J.value_and_grad(x)
    history = _remember(memory.history, x - it.x, grad - it.grad, ok)
    return _Tick(x, value, grad, ok, memory._replace(history=history), jnp.ones_like(ok))


def _backtracking_armijo(solver: LBFGS, J: _Objective, it: _Iterate) -> _Tick:
    """One candidate per tick: 1, 1/base, 1/base^2, ... until Armijo holds (each evaluated once)."""
    memory = it.memory
    new_iteration = memory.trial == 0
    d = jnp.where(_rows(new_iteration, it.x), _two_loop(it.grad, memory.history), memory.direction)
    t = solver.base ** -memory.trial.astype(it.x.dtype)
    x = it.x + t[:, None] * d
    value, grad = J.value_and_grad(x)
    accept = _armijo(it.value, _rowdot(it.grad, d), t, value, solver.c1)
    failed = ~accept & (memory.trial + 1 >= solver.num_evaluations)
    history = _remember(memory.history, x - it.x, grad - it.grad, accept)
    trial = jnp.where(accept | failed, 0, memory.trial + 1)
    new = _where_rows(accept, (x, value, grad), (it.x, it.value, it.grad))
    return _Tick(*new, ~failed, _LBFGSMemory(history, d, trial), accept | failed)


LINE_SEARCHES: dict[str, Callable[..., _Tick]] = {
    "parallel": _parallel_armijo,
    "backtracking": _backtracking_armijo,
}
"""Armijo line searches for :class:`LBFGS` by name: ``search(solver, J, iterate) -> tick``."""


@dataclasses.dataclass(frozen=True)
class LBFGS(_SolveOne):
    """L-BFGS with an Armijo line search (Amos's ``w2ot/conjugate_solver.py``; defaults: his
    ``config/conjugate_solver/lbfgs.yaml``, the paper's).

    Attributes:
      gtol: stop once ||grad J||_inf < gtol (negative: never; runs exactly ``max_iter`` steps).
      max_iter: iteration cap.
      history: pairs kept by the two-loop recursion (10 in the reference code).
      line_search: ``"parallel"`` or ``"backtracking"`` (:data:`LINE_SEARCHES`).
      base: candidate step sizes are ``base^-k`` (1.5 in the reference code).
      num_evaluations: number of candidates (10 parallel, 30 backtracking in the reference configs).
      c1: Armijo's sufficient-decrease constant (1e-4 in the reference code).
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

    def start(self, x0: jax.Array) -> _LBFGSMemory:
        zeros = jnp.zeros_like(x0)
        empty = _History((zeros,) * self.history, (zeros,) * self.history,
                         (jnp.zeros(x0.shape[:1], x0.dtype),) * self.history)
        return _LBFGSMemory(empty, zeros, jnp.zeros(x0.shape[:1], jnp.int32))

    def tick(self, J: _Objective, it: _Iterate) -> _Tick:
        return LINE_SEARCHES[self.line_search](self, J, it)


@dataclasses.dataclass(frozen=True)
class LBFGSWolfe(_SolveOne):
    """L-BFGS with the strong-Wolfe zoom line search (``optax.lbfgs`` + ``scale_by_zoom_linesearch``).

    The reference code's ``linesearch: wolfe`` option (JAX's zoom search, at most 20 steps);
    here the update and line search are optax's (one whole iteration per tick, vmapped over targets),
    only the stopping rule is shared with :class:`LBFGS`.
    """

    gtol: float = 0.1  # lbfgs.yaml
    max_iter: int = 100  # lbfgs.yaml
    history: int = 10
    max_linesearch_steps: int = 20  # maxls of the reference code's zoom search
    record_trace: bool = False

    def __post_init__(self) -> None:
        _check(self.gtol, self.max_iter)

    def _optimizer(self) -> optax.GradientTransformationExtraArgs:
        return optax.lbfgs(memory_size=self.history, linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=self.max_linesearch_steps, verbose=False))

    def start(self, x0: jax.Array) -> Any:
        return jax.vmap(self._optimizer().init)(x0)

    def tick(self, J: _Objective, it: _Iterate) -> _Tick:
        opt = self._optimizer()

        def one(x, value, grad, state, y):
            updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=J.single(y))
            return x + updates, optax.tree.get(state, "value"), optax.tree.get(state, "grad"), state

        x, value, grad, state = jax.vmap(one)(it.x, it.value, it.grad, it.memory, J.y)
        return _Tick(x, value, grad, value <= it.value, state, jnp.ones_like(it.ok))


@dataclasses.dataclass(frozen=True)
class Adam(_SolveOne):
    """Adam with a cosine-decayed step size (Amos's ``config/conjugate_solver/adam.yaml``)."""

    gtol: float = 0.1  # adam.yaml
    max_iter: int = 100  # adam.yaml
    learning_rate: float = 0.1  # adam.yaml, decayed by cosine to learning_rate * final_factor
    final_factor: float = 1e-4  # adam.yaml
    b1: float = 0.9  # optax default, as in adam.yaml
    b2: float = 0.999
    record_trace: bool = False

    def __post_init__(self) -> None:
        _check(self.gtol, self.max_iter)

    def _optimizer(self) -> optax.GradientTransformation:
        schedule = optax.cosine_decay_schedule(self.learning_rate, self.max_iter, alpha=self.final_factor)
        return optax.adam(schedule, b1=self.b1, b2=self.b2)

    def start(self, x0: jax.Array) -> Any:
        return jax.vmap(self._optimizer().init)(x0)  # one step count per target

    def tick(self, J: _Objective, it: _Iterate) -> _Tick:
        updates, state = jax.vmap(self._optimizer().update)(it.grad, it.memory)
        x = it.x + updates
        value, grad = J.value_and_grad(x)
        return _Tick(x, value, grad, jnp.isfinite(value), state, jnp.ones_like(it.ok))


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


def normalized_traces(traces: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Min-max normalise J per target over all curves, as in the paper's conjugation-convergence figure.

    ``traces`` maps a curve's name to the ``trace`` of a batched solve, (n, T) each (T may differ); every
    target's values are mapped to [0, 1] by that target's minimum and maximum over all the curves.
    """
    low = jnp.min(jnp.stack([t.min(axis=-1) for t in traces.values()]), axis=0)[:, None]
    high = jnp.max(jnp.stack([t.max(axis=-1) for t in traces.values()]), axis=0)[:, None]
    return {name: (t - low) / jnp.maximum(high - low, 1e-12) for name, t in traces.items()}
