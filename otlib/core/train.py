"""The one driver: any :class:`~otlib.core.method.Method`, seeds vmapped, steps scanned, runs resumable.

``train(method, key, num_seeds=...)`` does, in order:

1. split ``key`` into one init key and one training key per seed and ``vmap`` ``method.init``;
2. run the steps in chunks; each chunk is one compiled ``jax.lax.scan`` over ``vmap(method.step)``,
   so Python is out of the hot loop and a table cell's 5 to 10 seeds cost about one run on a GPU.
   The key of step ``t`` of a seed is ``fold_in(seed_key, t)``: a run resumed at any chunk boundary
   draws exactly the batches of an uninterrupted one;
3. watch ``metrics["loss"]`` of every seed at every step: once it is NaN or above
   ``divergence_threshold`` (1e5, Amos 2023's rule) in magnitude, that seed is frozen at its last good
   state and reported as diverged (tables print ">100"); the others go on, and the run never raises;
4. between chunks: update a progress bar, evaluate (``vmap(method.evaluate)``) every ``eval_every``
   steps, and write a checkpoint atomically (:mod:`otlib.core.checkpoint`) when a path is given. A call
   with the same checkpoint path resumes from it; ``until`` stops early at a step (a time budget, or a
   simulated interruption in tests); ``after_chunk`` runs the caller's own work there, off the clock
   (the speed races interleave a peer's training with otlib's this way).

When more than one device is visible (several GPUs, or ``--xla_force_host_platform_device_count``), the
seed axis is laid on a one-axis device mesh (``jax.sharding``): each device trains its share of the
seeds, the seed count padded up to a multiple of the devices used with copies of the last seed (dropped
again from every result and checkpoint, so a checkpoint resumes on any number of devices). With one device,
or one seed, nothing changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from otlib.core import checkpoint as ckpt
from otlib.core.method import Method
from otlib.core.progress import progress_bar

__all__ = ["train", "Run", "RunResult", "DIVERGENCE_THRESHOLD", "freeze_diverged", "live_mean", "fingerprint"]

DIVERGENCE_THRESHOLD = 1e5
"""|loss| above this (or NaN) ends a seed as diverged (Amos 2023, w2ot ``run_train``)."""


@dataclasses.dataclass
class RunResult:
    """What a run returns. Arrays with a seed axis have it first for states, last for logs.

    Attributes:
      method: the method's name.
      state: the final training states, stacked over seeds (leading axis ``num_seeds``).
      steps: steps completed (``num_steps`` unless stopped by ``until`` or all seeds diverged).
      num_steps: steps asked for.
      history: ``{"step": (L,), name: (L, num_seeds)}``: each metric averaged over each chunk.
      evals: ``{"step": (E,), name: (E, num_seeds)}``: the evaluations between chunks.
      diverged: ``(num_seeds,)`` booleans; ``diverged_at``: the step it happened (-1 if not).
      compile_s: time spent compiling; ``train_s``: time spent running steps (compilation excluded); both
        summed over every call that trained this run, when it was resumed from a checkpoint.
      start_step: the step this call started from (its checkpoint's; ``steps`` when it was read back finished).
    """

    method: str
    state: Any
    steps: int
    num_steps: int
    history: dict[str, np.ndarray]
    evals: dict[str, np.ndarray]
    diverged: np.ndarray
    diverged_at: np.ndarray
    compile_s: float
    train_s: float
    start_step: int = 0

    @property
    def num_seeds(self) -> int:
        return int(self.diverged.shape[0])

    @property
    def steps_per_s(self) -> float:
        """Training steps per second of wall time (all seeds advance together; compilation excluded)."""
        return self.steps / self.train_s if self.train_s > 0 else float("nan")

    @property
    def finished(self) -> bool:
        return self.steps >= self.num_steps or bool(self.diverged.all())

    def seed(self, i: int) -> Any:
        """The final training state of seed ``i`` (the stacked states without their seed axis)."""
        if not -self.num_seeds <= i < self.num_seeds:
            raise IndexError(f"seed {i} out of range: this run trained {self.num_seeds} seed(s)")
        return jax.tree.map(lambda a: a[i], self.state)

    def final(self, name: str) -> np.ndarray:
        """The last evaluation of ``name`` per seed, NaN for diverged seeds."""
        if name not in self.evals:
            raise KeyError(f"no evaluation named {name!r}; evaluated: {sorted(k for k in self.evals if k != 'step')}")
        values = np.asarray(self.evals[name][-1], dtype=float).copy()
        values[self.diverged] = np.nan
        return values

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record (for result tables)."""
        out: dict[str, Any] = {
            "method": self.method, "steps": self.steps, "num_steps": self.num_steps,
            "num_seeds": self.num_seeds, "diverged": self.diverged.tolist(),
            "compile_s": round(self.compile_s, 3), "train_s": round(self.train_s, 3),
            "steps_per_s": round(self.steps_per_s, 3),
        }
        for name in self.evals:
            if name != "step" and len(self.evals[name]):
                out[f"final_{name}"] = [None if math.isnan(v) else float(v) for v in self.final(name)]
        return out


def _all_finite(tree) -> jax.Array:
    """Per member (leading axis): whether every floating-point value of ``tree`` is finite."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.stack([jnp.isfinite(x.reshape(x.shape[0], -1)).all(axis=1) for x in leaves]).all(axis=0)


def freeze_diverged(alive: jax.Array, loss: jax.Array, new_state, old_state, *,
                    threshold: float = DIVERGENCE_THRESHOLD) -> tuple[Any, jax.Array]:
    """The one divergence rule, for any stack of independent runs (seeds, grid cells, 2-D pairs).

    Member ``i`` (leading axis of every leaf) stays alive while its step's loss is finite with
    ``|loss| <= threshold`` (Amos 2023's rule, his w2ot ``run_train``) and the update left every value of its
    state finite (the loss was computed before the update). A member that fails keeps its last good state
    for good. Returns ``(state, alive)``.
    """
    alive = alive & jnp.isfinite(loss) & (jnp.abs(loss) <= threshold) & _all_finite(new_state)

    def select(new: jax.Array, old: jax.Array) -> jax.Array:
        return jnp.where(alive.reshape(alive.shape + (1,) * (new.ndim - 1)), new, old)

    return jax.tree.map(select, new_state, old_state), alive


def live_mean(values: jax.Array, alive: jax.Array) -> jax.Array:
    """Mean of ``values`` over the live members (NaN when none is alive)."""
    total = jnp.sum(jnp.where(alive, values, 0.0))
    return jnp.where(alive.any(), total / jnp.maximum(jnp.sum(alive), 1), jnp.nan)


def _seed_step(method: Method, num_seeds: int):
    """``method.step`` over the seed axis: ``vmap``, or for one seed a plain call (XLA then emits the
    unbatched program; a batch-of-one ``vmap`` can make random sampling and nested vmaps slower)."""
    if num_seeds > 1:
        return jax.vmap(method.step)

    def step(state, keys):
        new, metrics = method.step(jax.tree.map(lambda a: a[0], state), keys[0])
        return jax.tree.map(lambda a: jnp.asarray(a)[None], (new, metrics))

    return step


def _chunk_fn(method: Method, threshold: float, num_seeds: int):
    """One chunk: ``scan`` over steps of the seed-batched step, each seed frozen by :func:`freeze_diverged`."""
    vstep = _seed_step(method, num_seeds)

    def chunk(carry, train_keys, steps):
        def body(carry, t):
            state, alive, diverged_at = carry
            keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(train_keys)
            new_state, metrics = vstep(state, keys)
            state, keep = freeze_diverged(alive, metrics["loss"], new_state, state, threshold=threshold)
            diverged_at = jnp.where(alive & ~keep, t, diverged_at)
            metrics = {k: jnp.where(alive, v, jnp.nan) for k, v in metrics.items()}
            return (state, keep, diverged_at), metrics

        carry, metrics = jax.lax.scan(body, carry, steps)
        means = {k: jnp.nanmean(v, axis=0) for k, v in metrics.items()}
        return carry, means

    return chunk


class _SeedLayout:
    """Where the seed axis lives: on one device, or split over a mesh of the visible devices.

    ``pad`` appends copies of the last seed up to ``padded`` seeds (a multiple of the devices used),
    ``unpad`` drops them, ``shard`` puts a padded tree on the mesh along its leading axis. With one device,
    or one seed, all three return their argument.
    """

    def __init__(self, num_seeds: int):
        devices = jax.devices()
        used = min(len(devices), num_seeds)
        self.num_seeds = num_seeds
        self.padded = -(-num_seeds // used) * used
        self.sharding = None
        self.replicated = None
        if used > 1:
            mesh = jax.sharding.Mesh(np.asarray(devices[:used]), ("seeds",))
            self.sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))
            self.replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def pad(self, tree):
        extra = self.padded - self.num_seeds
        if not extra:
            return tree
        index = np.minimum(np.arange(self.padded), self.num_seeds - 1)
        return jax.tree.map(lambda a: a[index], tree)

    def unpad(self, tree):
        if self.padded == self.num_seeds:
            return tree
        return jax.tree.map(lambda a: a[:self.num_seeds], tree)

    def shard(self, tree):
        return tree if self.sharding is None else jax.device_put(tree, self.sharding)

    def jit(self, fn, *, seeds_in: tuple[bool, ...], seeds_out, **kwargs):
        """``jax.jit(fn)``, with the arguments and outputs flagged ``True`` split over the mesh."""
        if self.sharding is None:
            return jax.jit(fn, **kwargs)
        def where(flag: bool):
            return self.sharding if flag else self.replicated

        return jax.jit(fn, in_shardings=tuple(where(f) for f in seeds_in),
                       out_shardings=jax.tree.map(where, seeds_out), **kwargs)


def _stack_logs(rows: list[dict[str, np.ndarray]], steps: list[int]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"step": np.asarray(steps, dtype=np.int64)}
    for name in (rows[0] if rows else {}):
        out[name] = np.stack([np.asarray(r[name], dtype=np.float64) for r in rows])
    return out


def _num_steps(method: Method, num_steps: Optional[int]) -> int:
    """The run's step count: the configuration's (``method.num_steps``), or ``num_steps`` where the method
    fixes none; a disagreement between the two is an error, never a silently shortened schedule."""
    if num_steps is None:
        if method.num_steps is None:
            raise ValueError(f"train({method.name!r}): give num_steps (this method's configuration fixes no step count)")
        return int(method.num_steps)
    if method.num_steps is not None and int(num_steps) != method.num_steps:
        raise ValueError(f"train({method.name!r}, num_steps={num_steps}) but its configuration schedules "
                         f"{method.num_steps} steps (num_steps sets the learning-rate schedule's length): build "
                         f"the method with num_steps={num_steps}, or leave num_steps out and pass until={num_steps} "
                         f"to stop early on the configured schedule")
    return int(num_steps)


def fingerprint(method: Method, key: jax.Array, num_steps: int, num_seeds: int) -> str:
    """What makes a run the same run (and a checkpoint its own): method, configuration, steps, seeds, key."""
    return json.dumps({"method": method.name, "config": repr(method.config), "num_steps": int(num_steps),
                       "num_seeds": int(num_seeds), "key": np.asarray(jax.random.key_data(key)).tolist()})


def train(method: Method, key: jax.Array, num_steps: Optional[int] = None, *, num_seeds: int = 1, chunk_size: int = 1000,
          eval_every: Optional[int] = None, checkpoint: Optional[str | Path] = None,
          until: Optional[int] = None, progress: bool = True,
          divergence_threshold: float = DIVERGENCE_THRESHOLD,
          after_chunk: Optional[Callable[[int], None]] = None) -> RunResult:
    """Train ``num_seeds`` independent copies of ``method`` for ``num_steps`` steps (see module doc).

    Args:
      method: the method record.
      key: the run's PRNG key (``jax.random.key(seed)``); seed ``i`` uses ``split(key, num_seeds)[i]``.
      num_steps: total steps; by default the configuration's (``method.num_steps``), and it must agree with
        it where the configuration sets one (see :func:`_num_steps`).
      num_seeds: seeds trained at once with ``vmap`` (split over the devices when several are visible).
      chunk_size: steps per compiled ``scan`` (and per progress-bar update and checkpoint).
      eval_every: evaluate every this many steps (rounded to chunk ends) and always at the end;
        ``None`` evaluates only at the end. Ignored when the method has no ``evaluate``.
      checkpoint: a file path; the state is written there atomically after every chunk and a later
        call with the same path resumes from it (a finished run is returned at once).
      until: stop after this step (a chunk boundary is forced there); resume later from ``checkpoint``.
      progress: draw a progress bar (quiet under ``TQDM_DISABLE=1``).
      divergence_threshold: |loss| above this, or NaN, freezes a seed as diverged.
      after_chunk: called with the number of steps done after each chunk (after its checkpoint), outside
        the timed region: ``train_s`` does not include it.
    """
    num_steps = _num_steps(method, num_steps)
    if num_steps < 1 or num_seeds < 1 or chunk_size < 1:
        raise ValueError(f"num_steps, num_seeds and chunk_size must be >= 1, got {num_steps}, {num_seeds}, {chunk_size}")
    if eval_every is not None:
        chunk_size = min(chunk_size, eval_every)
    stop = num_steps if until is None else min(int(until), num_steps)

    init_key, train_key, eval_key = jax.random.split(key, 3)
    layout = _SeedLayout(num_seeds)
    train_keys = layout.shard(layout.pad(jax.random.split(train_key, num_seeds)))
    states = jax.jit(jax.vmap(method.init))(layout.pad(jax.random.split(init_key, num_seeds)))
    carry = (states, jnp.ones(layout.padded, bool), jnp.full(layout.padded, -1, jnp.int32))

    history_rows: list[dict[str, np.ndarray]] = []
    history_steps: list[int] = []
    eval_rows: list[dict[str, np.ndarray]] = []
    eval_steps: list[int] = []
    step, extra = 0, {}
    run_id = fingerprint(method, key, num_steps, num_seeds)
    if checkpoint is not None and Path(checkpoint).exists():
        carry, extra = ckpt.restore(checkpoint, layout.unpad(carry), run_id)
        carry = layout.pad(carry)
        step = int(extra["step"])
        history_rows, history_steps = extra["history_rows"], extra["history_steps"]
        eval_rows, eval_steps = extra["eval_rows"], extra["eval_steps"]
    start_step = step

    # Donating the carry lets XLA update the state in place; the CPU backend cannot and would warn.
    donate = (0,) if jax.default_backend() != "cpu" else ()
    carry = layout.shard(carry)
    chunk = layout.jit(_chunk_fn(method, divergence_threshold, layout.padded), seeds_in=(True, True, False),
                       seeds_out=(True, True), donate_argnums=donate)
    evaluate = None
    if method.evaluate is not None:
        evaluate = layout.jit(lambda s, k: jax.vmap(method.evaluate)(s, layout.pad(jax.random.split(k, num_seeds))),
                              seeds_in=(True, False), seeds_out=True)

    compiled: dict[int, Any] = {}
    compile_s = float(extra.get("compile_s", 0.0)) if step else 0.0
    train_s = float(extra.get("train_s", 0.0)) if step else 0.0

    def run_chunk(carry, start: int, length: int):
        nonlocal compile_s, train_s
        steps = jnp.arange(start, start + length, dtype=jnp.int32)
        if length not in compiled:
            t0 = time.perf_counter()
            compiled[length] = chunk.lower(carry, train_keys, steps).compile()
            compile_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        carry, means = compiled[length](carry, train_keys, steps)
        means = layout.unpad(jax.device_get(means))
        train_s += time.perf_counter() - t0
        return carry, means

    def run_eval(carry, at: int):
        nonlocal compile_s
        t0 = time.perf_counter()
        values = layout.unpad(jax.device_get(evaluate(carry[0], jax.random.fold_in(eval_key, at))))
        compile_s += time.perf_counter() - t0  # evaluation is not training time
        eval_rows.append({k: np.asarray(v) for k, v in values.items()})
        eval_steps.append(at)

    with progress_bar(total=stop, desc=method.name, disable=not progress, initial=step) as bar:
        while step < stop and bool(np.asarray(carry[1]).any()):
            length = min(chunk_size, stop - step)
            if eval_every is not None:
                length = min(length, eval_every - step % eval_every)
            if length not in compiled:  # say so: a first compilation can take longer than the chunk itself
                bar.set_postfix_str(f"compiling the {length}-step chunk", refresh=True)
            carry, means = run_chunk(carry, step, length)
            step += length
            history_rows.append({k: np.asarray(v) for k, v in means.items()})
            history_steps.append(step)
            if evaluate is not None and ((eval_every is not None and step % eval_every == 0) or step == num_steps):
                bar.set_postfix_str("evaluating" + ("" if eval_rows else " (compiling the evaluation)"), refresh=True)
                run_eval(carry, step)
            if checkpoint is not None:
                ckpt.save(checkpoint, layout.unpad(carry), run_id, step=step, history_rows=history_rows,
                          history_steps=history_steps, eval_rows=eval_rows, eval_steps=eval_steps,
                          finished=step >= num_steps or not bool(np.asarray(carry[1]).any()),
                          compile_s=compile_s, train_s=train_s)
            if after_chunk is not None:
                after_chunk(step)
            bar.update(length)
            loss = np.nanmean(means["loss"]) if np.isfinite(means["loss"]).any() else float("nan")
            bar.set_postfix(loss=f"{loss:.4g}", alive=f"{int(np.asarray(layout.unpad(carry[1])).sum())}/{num_seeds}")

    if evaluate is not None and (not eval_steps or eval_steps[-1] != step):
        run_eval(carry, step)
    carry = layout.unpad(carry)
    alive, diverged_at = jax.device_get(carry[1:])
    return RunResult(method=method.name, state=carry[0], steps=step, num_steps=num_steps,
                     history=_stack_logs(history_rows, history_steps), evals=_stack_logs(eval_rows, eval_steps),
                     diverged=~np.asarray(alive), diverged_at=np.asarray(diverged_at),
                     compile_s=compile_s, train_s=train_s, start_step=start_step)


_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]*")


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """One named call of :func:`train` that a notebook makes: built by the library, so that a batch job
    (:mod:`otlib.bench.sweep`) can train it in the notebook's place and the notebook then reads it back.

    Its checkpoint is ``<folder>/<name>-<hash>.ckpt.npz``, the hash taken over the run's :func:`fingerprint`:
    a run with other parameters is another file, so two configurations never overwrite each other, and a
    finished run is returned at once by :meth:`train` without a step.
    """

    name: str
    method: Method
    key: jax.Array
    num_steps: int
    num_seeds: int = 1
    chunk_size: int = 1000
    eval_every: Optional[int] = None

    def __post_init__(self):
        if not _RUN_NAME.fullmatch(self.name):
            raise ValueError(f"run name {self.name!r} must be letters, digits and _.=+- (it names a file)")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.method, self.key, self.num_steps, self.num_seeds)

    def checkpoint(self, folder: str | Path) -> Path:
        tag = hashlib.sha256(self.fingerprint.encode()).hexdigest()[:12]
        return Path(folder) / f"{self.name}-{tag}.ckpt.npz"

    def stored(self, folder: str | Path) -> Optional[dict[str, Any]]:
        """``{"step", "finished"}`` of its checkpoint in ``folder`` (``None`` when there is none), read from
        the checkpoint's record alone (:func:`otlib.core.checkpoint.peek`; :meth:`train` checks the rest)."""
        path = self.checkpoint(folder)
        if not path.exists():
            return None
        extra = ckpt.peek(path, self.fingerprint)
        step = int(extra.get("step", 0))
        return {"step": step, "finished": bool(extra.get("finished", step >= self.num_steps))}

    def train(self, folder: Optional[str | Path] = None, *, progress: bool = True) -> RunResult:
        """:func:`train` with this run's arguments, checkpointed in ``folder`` (resumed, or returned at once
        when finished there); ``folder=None`` keeps nothing."""
        path = None
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            path = self.checkpoint(folder)
        return train(self.method, self.key, self.num_steps, num_seeds=self.num_seeds, chunk_size=self.chunk_size,
                     eval_every=self.eval_every, checkpoint=path, progress=progress)
