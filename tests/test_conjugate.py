"""Conjugate solvers against the closed-form conjugate of a quadratic; line-search details."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.ot import conjugate
from otlib.ot.conjugate import LBFGS, SOLVERS

DIM = 8


def _quadratic():
    """f(x) = 1/2 x'Ax + b'x with A SPD, eigenvalues in [1, 3]: f*(y) = 1/2 (y-b)'A^-1(y-b), argmin A^-1(y-b)."""
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (DIM, DIM)))
    a = q @ jnp.diag(jnp.linspace(1.0, 3.0, DIM)) @ q.T
    b = 0.5 * jax.random.normal(jax.random.key(1), (DIM,))
    f = lambda x: 0.5 * x @ a @ x + b @ x  # noqa: E731
    y = jax.random.normal(jax.random.key(2), (64, DIM))
    x_star = jnp.linalg.solve(a, (y - b).T).T
    value_star = 0.5 * jnp.sum((y - b) * x_star, axis=-1)
    return f, y, x_star, value_star


@pytest.fixture(scope="module")
def quadratic():
    return _quadratic()


_solve = jax.jit(conjugate.conjugates, static_argnums=(0, 1))
"""One compilation per (solver, potential): cold and warm starts share it."""


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_solver_recovers_the_closed_form_conjugate(name, quadratic):
    f, y, x_star, value_star = quadratic
    solver = SOLVERS[name]
    cold = _solve(solver, f, y, y)
    warm = _solve(solver, f, y, x_star + 0.01 * jax.random.normal(jax.random.key(3), x_star.shape))
    for result in (cold, warm):
        assert bool((result.grad_norm < solver.gtol).all()), f"{name} did not reach gtol {solver.gtol}"
        # For a quadratic, grad J = A (x - x*), so ||x - x*||_2 <= sqrt(D) gtol / lambda_min (lambda_min = 1),
        # and J(x) - J(x*) = 1/2 g'A^-1 g <= D gtol^2 / 2.
        assert float(jnp.linalg.norm(result.x - x_star, axis=-1).max()) <= np.sqrt(DIM) * solver.gtol
        assert float(jnp.abs(result.value - value_star).max()) <= 0.5 * DIM * solver.gtol ** 2 + 1e-4
        assert bool((result.num_iter >= 1).all())  # always at least one step
        assert bool(result.converged.all())
    assert float(warm.num_iter.mean()) < float(cold.num_iter.mean())


def test_a_solve_stopped_by_its_iteration_cap_is_flagged_unconverged(quadratic):
    f, y, _, _ = quadratic
    capped = conjugate.conjugates(dataclasses.replace(conjugate.LBFGS_HIGH_PRECISION, max_iter=1, gtol=1e-6), f, y, y)
    assert not bool(capped.converged.any())
    np.testing.assert_array_equal(capped.converged, capped.grad_norm < 1e-6)


def test_high_precision_is_precise(quadratic):
    f, y, x_star, value_star = quadratic
    result = _solve(conjugate.LBFGS_HIGH_PRECISION, f, y, y)
    np.testing.assert_allclose(result.x, x_star, atol=2e-3)
    np.testing.assert_allclose(result.value, value_star, rtol=1e-5, atol=1e-5)


def test_parallel_and_backtracking_armijo_take_the_same_steps(quadratic):
    # Both accept the largest base^-k satisfying Armijo; only how the candidates are evaluated differs.
    f, y, _, _ = quadratic
    parallel = _solve(LBFGS(gtol=1e-3, line_search="parallel"), f, y, y)
    sequential = _solve(LBFGS(gtol=1e-3, line_search="backtracking"), f, y, y)
    # In exact arithmetic the iterates are the same; in float32 a candidate within rounding of Armijo's
    # bound can go either way (the two evaluate J in differently batched programs), so compare the rows
    # within the solver's accuracy sqrt(D) gtol / lambda_min, and nearly all rows exactly.
    np.testing.assert_array_equal(parallel.num_iter, sequential.num_iter)
    np.testing.assert_allclose(parallel.x, sequential.x, atol=np.sqrt(DIM) * 1e-3)
    assert int(jnp.sum(jnp.abs(parallel.x - sequential.x).max(-1) > 1e-5)) <= 0.05 * y.shape[0]


def test_backtracking_evaluates_each_step_size_once():
    # f = 2||x||^2 from x = y: the first direction is -3y; steps 1 and 1/1.5 fail Armijo, 1/1.5^2 passes.
    # Evaluations: 1 at the start + 3 trials; the reference code evaluates step 1 twice, 5.
    calls = []

    def f(x):
        jax.debug.callback(lambda: calls.append(1))
        return 2.0 * jnp.sum(x * x)

    solver = LBFGS(gtol=-1.0, max_iter=1, line_search="backtracking")
    result = jax.jit(lambda y: solver.solve(f, y, y))(jnp.ones(3))
    jax.effects_barrier()
    assert len(calls) == 4
    np.testing.assert_allclose(result.x, -jnp.ones(3) / 3, rtol=1e-6)


def test_negative_gtol_runs_exactly_max_iter(quadratic):
    f, y, _, _ = quadratic
    for solver in (LBFGS(gtol=-1.0, max_iter=3), conjugate.Adam(gtol=-1.0, max_iter=7)):
        assert set(np.asarray(_solve(solver, f, y, y).num_iter).tolist()) == {solver.max_iter}


@pytest.mark.parametrize("name", ["lbfgs", "lbfgs_wolfe", "adam"])
def test_trace_records_the_objective(name, quadratic):
    f, y, _, _ = quadratic
    solver = dataclasses.replace(SOLVERS[name], record_trace=True)
    result = _solve(solver, f, y[:8], y[:8])
    assert result.trace.shape == (8, solver.max_iter + 1)
    np.testing.assert_allclose(result.trace[:, -1], -result.value, rtol=1e-6)  # padded with the final J
    np.testing.assert_allclose(result.trace[:, 0], jax.vmap(f)(y[:8]) - jnp.sum(y[:8] ** 2, -1), rtol=1e-5)
    if name != "adam":  # line searches guarantee decrease; Adam need not
        assert bool((jnp.diff(result.trace, axis=-1) <= 1e-5).all())
    assert _solve(SOLVERS[name], f, y, y).trace is None  # compiled above: no trace


def test_normalized_traces_share_each_targets_range():
    traces = {"a": jnp.array([[3.0, 2.0, 1.0], [10.0, 9.0, 9.0]]), "b": jnp.array([[5.0, 0.0], [9.5, 8.0]])}
    out = conjugate.normalized_traces(traces)
    np.testing.assert_allclose(out["a"], [[0.6, 0.4, 0.2], [1.0, 0.5, 0.5]])
    np.testing.assert_allclose(out["b"], [[1.0, 0.0], [0.75, 0.0]])


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_working_sets_do_not_change_the_iterates(name, quadratic):
    # Shrinking working sets only skip finished targets: every target takes the steps of its own solve. The
    # compiled programs differ in rounding, so a target may end a few 1e-4 away, or (when its gradient norm
    # lands within rounding of gtol) stop one iteration earlier or later: it still meets the tolerance.
    f, y, _, _ = quadratic
    solver = SOLVERS[name]
    one_by_one = jax.jit(jax.vmap(lambda y: solver.solve(f, y, y)))(y)
    for shrink in ((), conjugate.SHRINK, conjugate.SHRINK_LARGE_BATCH):
        batch = jax.jit(lambda y: conjugate.conjugates(solver, f, y, shrink=shrink))(y)
        same = np.asarray(batch.num_iter == one_by_one.num_iter)
        assert same.mean() >= 0.95 and int(jnp.abs(batch.num_iter - one_by_one.num_iter).max()) <= 1
        np.testing.assert_allclose(batch.x, one_by_one.x, atol=np.sqrt(DIM) * solver.gtol)
        assert bool(batch.converged.all()) and bool(one_by_one.converged.all())
    with pytest.raises(ValueError, match="divisors"):
        conjugate.conjugates(solver, f, y, shrink=(0,))


def test_the_training_step_working_sets_grow_deeper_for_large_batches():
    # HD (1024) and the quick 2-D profile (256) keep the sets measured at batch 1024; the 2-D full profile's
    # batch of 10 000 gets three levels, down to 19 rows.
    assert conjugate.shrink_for(1024) == conjugate.shrink_for(conjugate.LARGE_BATCH) == conjugate.SHRINK
    assert conjugate.shrink_for(10_000) == conjugate.SHRINK_LARGE_BATCH
    assert [10_000 // d for d in conjugate.SHRINK_LARGE_BATCH] == [1250, 156, 19]


def test_bad_settings_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="lbfgs_high_precision"):
        conjugate.solver("bfgs")
    with pytest.raises(ValueError, match="backtracking"):
        LBFGS(line_search="wolfe")
    with pytest.raises(ValueError, match="max_iter"):
        conjugate.Adam(max_iter=0)


def test_best_of_keeps_the_deeper_basin_of_a_nonconvex_objective():
    """f(x) = (x² - 1)² on R: for y = 0.5, J(x; y) = f(x) - x y has a shallow minimum near x = -0.93 and
    the global one near x = 1.06. Warm-started in the shallow basin the solver stops there; a restart from
    x = y reaches the global one, and ``best_of`` keeps it for that target (and the warm start's result
    for a target whose warm start was already in the right basin)."""
    f = lambda x: jnp.sum((x * x - 1.0) ** 2)
    y = jnp.array([[0.5], [0.5]])
    warm = conjugate.conjugates(SOLVERS["lbfgs_high_precision"], f, y, jnp.array([[-1.0], [1.2]]))
    restart = conjugate.conjugates(SOLVERS["lbfgs_high_precision"], f, y, y)
    np.testing.assert_allclose(warm.x[:, 0], [-0.93, 1.06], atol=0.02)   # roots of 4x³ - 4x = 0.5
    assert float(restart.x[0, 0]) > 1.0
    best = conjugate.best_of(warm, restart)
    np.testing.assert_allclose(best.x[:, 0], [restart.x[0, 0], warm.x[1, 0]])
    np.testing.assert_allclose(best.value, jnp.maximum(warm.value, restart.value))
    assert float(best.value[0]) > float(warm.value[0]) + 0.5   # f*(0.5) = 0.5 x - f(x) at the global argmin
    assert best.trace is None
