"""The driver: seeds, evaluation, resume after an interruption, divergence reporting."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from otlib.core.checkpoint import CheckpointMismatchError
from otlib.core.method import Method
from otlib.core.train import Run, train


def regression_method(lr: float = 0.05, name: str = "toy") -> Method:
    """Fit y = 3x - 1 by SGD on fresh batches: a method small enough to test the driver with."""
    tx = optax.adam(lr)

    def init(key):
        params = {"w": jax.random.normal(key, ()), "b": jnp.zeros(())}
        return {"params": params, "opt": tx.init(params)}

    def loss_fn(params, x):
        return jnp.mean((params["w"] * x + params["b"] - (3.0 * x - 1.0)) ** 2)

    def step(state, key):
        x = jax.random.normal(key, (64,))
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], x)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, {"loss": loss}

    def evaluate(state, key):
        return {"w_error": jnp.abs(state["params"]["w"] - 3.0)}

    return Method(name, init, step, evaluate, config=("toy", lr))


def test_seeds_train_and_evaluate():
    result = train(regression_method(), jax.random.key(0), 300, num_seeds=3, chunk_size=100, eval_every=100,
                   progress=False)
    assert result.steps == 300 and result.num_seeds == 3
    assert result.history["loss"].shape == (3, 3)
    assert list(result.evals["step"]) == [100, 200, 300]
    assert np.all(result.final("w_error") < 0.05)
    assert not result.diverged.any()
    w = np.asarray(result.state["params"]["w"])
    assert w.shape == (3,)


def test_after_chunk_runs_at_each_chunk_end_off_the_clock():
    """The hook sees the steps done after every chunk, and its time is not training time."""
    seen: list[int] = []

    def slow_hook(step: int) -> None:
        seen.append(step)
        time.sleep(0.3)

    result = train(regression_method(), jax.random.key(0), 250, chunk_size=100, progress=False,
                   after_chunk=slow_hook)
    assert seen == [100, 200, 250]
    assert result.train_s < 0.5, result.train_s  # 3 x 0.3 s of sleep would be 0.9 s


def test_resume_matches_uninterrupted(tmp_path):
    method, key = regression_method(), jax.random.key(1)
    full = train(method, key, 250, num_seeds=2, chunk_size=50, progress=False)
    path = tmp_path / "run.npz"
    first = train(method, key, 250, num_seeds=2, chunk_size=50, checkpoint=path, until=100, progress=False)
    assert first.steps == 100 and not first.finished
    resumed = train(method, key, 250, num_seeds=2, chunk_size=50, checkpoint=path, progress=False)
    assert resumed.steps == 250
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(full.state), jax.device_get(resumed.state))
    np.testing.assert_array_equal(full.history["loss"], resumed.history["loss"])


def test_checkpoint_of_another_run_is_refused(tmp_path):
    path = tmp_path / "run.npz"
    train(regression_method(), jax.random.key(1), 100, chunk_size=50, checkpoint=path, progress=False)
    with pytest.raises(CheckpointMismatchError, match="another run"):
        train(regression_method(lr=0.1), jax.random.key(1), 100, chunk_size=50, checkpoint=path, progress=False)


def test_a_named_run_is_stored_by_its_fingerprint_and_read_back(tmp_path):
    """Run.train checkpoints under a name that carries the run's fingerprint: a stopped run reports its step,
    a finished one is returned at once with the same values, and another configuration is another file."""
    run = Run("toy", regression_method(), jax.random.key(3), 200, num_seeds=2, chunk_size=50, eval_every=100)
    assert run.stored(tmp_path) is None
    train(run.method, run.key, 200, num_seeds=2, chunk_size=50, eval_every=100, checkpoint=run.checkpoint(tmp_path),
          until=100, progress=False)
    assert run.stored(tmp_path) == {"step": 100, "finished": False}
    done = run.train(tmp_path, progress=False)
    assert run.stored(tmp_path) == {"step": 200, "finished": True} and done.train_s > 0
    again = run.train(tmp_path, progress=False)
    assert again.steps == again.start_step == 200 and again.train_s == done.train_s  # read back, times kept
    np.testing.assert_array_equal(again.final("w_error"), done.final("w_error"))
    other = Run("toy", regression_method(lr=0.1), jax.random.key(3), 200, num_seeds=2)
    assert other.checkpoint(tmp_path) != run.checkpoint(tmp_path) and other.stored(tmp_path) is None
    with pytest.raises(ValueError, match="names a file"):
        Run("../escape", run.method, run.key, 200)


def test_divergence_is_reported_not_raised():
    # lr 1e3 on SGD explodes; only the seed that blows up is frozen, and the run returns normally.
    tx = optax.sgd(1e3)
    good = regression_method()

    def init(key):
        params = {"w": jnp.zeros(()), "b": jnp.zeros(())}
        return {"params": params, "opt": tx.init(params)}

    def step(state, key):
        x = 3.0 * jax.random.normal(key, (64,))
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((p["w"] * x - 3 * x) ** 2))(state["params"])
        updates, opt = tx.update(grads, state["opt"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, {"loss": loss}

    bad = Method("exploding", init, step, good.evaluate)
    result = train(bad, jax.random.key(0), 200, num_seeds=2, chunk_size=50, progress=False)
    assert result.diverged.all()
    assert (result.diverged_at >= 0).all() and (result.diverged_at < 50).all()
    assert result.steps == 50  # all seeds diverged: the run stops at the end of that chunk
    assert np.isnan(result.final("w_error")).all()
    assert np.isfinite(np.asarray(result.state["params"]["w"])).all()  # frozen at the last good state


def test_a_seed_whose_update_leaves_nan_is_frozen_before_it():
    """The loss of a step is computed before its update: a finite loss with NaN parameters after the
    update must still end the seed, on its last finite state."""
    def init(key):
        return {"w": jnp.ones(())}

    def step(state, key):
        new = {"w": jnp.where(state["w"] > 3.5, jnp.nan, state["w"] + 1.0)}
        return new, {"loss": state["w"]}

    result = train(Method("nan-update", init, step), jax.random.key(0), 10, chunk_size=5, progress=False)
    assert result.diverged.all() and result.diverged_at.tolist() == [3]
    assert float(result.state["w"][0]) == 4.0


def test_single_and_batched_seed_paths_agree():
    method, key = regression_method(), jax.random.key(5)
    one = train(method, key, 60, num_seeds=1, chunk_size=30, progress=False)
    assert np.asarray(one.state["params"]["w"]).shape == (1,)
    assert one.history["loss"].shape == (2, 1)


# ----------------------------------------------------------------------------------------------------
# The one divergence rule, the step count, one seed out of a run.

def test_freeze_diverged_keeps_the_last_good_state_of_each_member():
    from otlib.core.train import freeze_diverged, live_mean

    old = {"w": jnp.array([1.0, 2.0, 3.0, 4.0]), "v": jnp.ones((4, 2))}
    new = {"w": jnp.array([1.5, 2.5, jnp.nan, 4.5]), "v": 2 * jnp.ones((4, 2))}
    loss = jnp.array([0.1, jnp.inf, 0.2, 10.0])
    alive = jnp.array([True, True, True, False])
    state, still = freeze_diverged(alive, loss, new, old, threshold=5.0)
    # member 0 steps; 1 has an infinite loss; 2 a NaN in its new state; 3 was dead already (and its loss too big)
    np.testing.assert_array_equal(still, [True, False, False, False])
    np.testing.assert_array_equal(state["w"], [1.5, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(state["v"][:, 0], [2.0, 1.0, 1.0, 1.0])
    assert float(live_mean(jnp.array([1.0, 5.0, 7.0, 9.0]), still)) == 1.0
    assert np.isnan(float(live_mean(jnp.ones(4), jnp.zeros(4, bool))))


def test_the_step_count_lives_in_the_configuration():
    base = regression_method()
    method = Method(base.name, base.init, base.step, base.evaluate, config=base.config, num_steps=40)
    assert train(method, jax.random.key(0), chunk_size=20, progress=False).steps == 40  # taken from the method
    with pytest.raises(ValueError, match="schedules 40 steps.*until=60"):
        train(method, jax.random.key(0), 60, progress=False)
    early = train(method, jax.random.key(0), until=20, chunk_size=20, progress=False)
    assert (early.steps, early.num_steps, early.finished) == (20, 40, False)
    with pytest.raises(ValueError, match="give num_steps"):
        train(base, jax.random.key(0), progress=False)


def test_seed_takes_one_seed_out_of_a_run():
    result = train(regression_method(), jax.random.key(0), 20, num_seeds=3, chunk_size=20, progress=False)
    for i in range(3):
        assert float(result.seed(i)["params"]["w"]) == float(result.state["params"]["w"][i])
    with pytest.raises(IndexError, match="3 seed"):
        result.seed(3)
