"""ENOT race: ``python -m otlib.bench enot --dim D [--steps N]`` on the W2-benchmark pair ``hd(D)``.

Two races of otlib against OTT-JAX 0.6.0's ``ExpectileNeuralDual`` (only when ``ott.neural`` imports;
its values are ``null`` otherwise) on the same machine:

1. **Speed, same work.** OTT's defaults on both sides: potentials MLP [128]*4 ELU, batch 1024,
   Adam(3e-4, b1 0.9, b2 0.9), tau 0.99, λ 1, N steps, each drawing fresh batches from the benchmark
   (otlib inside its scanned step, OTT from Python iterators of jitted samplers). The two runs are
   interleaved: stretches of :data:`INTERLEAVE_STEPS` steps, one chunk of otlib's driver then one call of
   OTT's ``train_fn`` (:class:`PeerENOT`), each side timed on its own clock, so both see the same moments
   of the machine (run one after the other, the ratio followed the machine's drift; figures in
   ``docs/performance.md``).
   Reported: steps/s of each (compilation excluded) and their ratio; otlib's achieved GFLOP/s (its step's
   FLOPs from XLA's cost analysis over its measured time per step) next to ``matmul_gflops_per_s``, the
   rate of a jitted chain of (1024x128) @ (128x128) products measured just before and just after race 1
   (their mean: a shared 2-core machine drifts by tens of percent over minutes). Because the machine's
   speed drifts between those two readings and race 1's minutes of training, a paired reading follows
   race 1 (:func:`paired_rates`): short windows of otlib's scanned step and of a matmul chain of the same
   FLOPs, alternated, their ratio taken window by window, and the median of those ratios reported
   (``otlib_matmul_share``): both sides then see the same moments of the machine. OTT-JAX's rate is
   given for the same work per step (otlib's FLOPs at OTT's steps/s). ``--batch-size`` changes race 1's
   batch on both sides: at a small batch the arithmetic is cheap and each side's fixed cost per step
   decides, as on a GPU (OTT's Python loop, batch iterators and dispatches against one compiled scan
   per chunk).
2. **Quality, same wall time.** OTT's run of race 1 takes W seconds; otlib then trains the
   configuration it recommends (:data:`RECOMMENDED`) for as many steps as fit in W (its speed measured
   on a short calibration run), with its cosine schedule spread over exactly that budget. Reported:
   forward L2-UVP % of each (:func:`otlib.w2bench.l2_uvp`, 2^14 samples, one key for both).

The last line printed is one JSON record with the keys ``method``, ``dim``, ``steps``,
``otlib_steps_per_s``, ``peer_steps_per_s``, ``ratio``, ``otlib_l2_uvp``, ``peer_l2_uvp``,
``otlib_gflops_per_s``, ``matmul_gflops_per_s`` (then a few extra keys: the paired reading, the peer's rate,
race 2's budget).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import statistics
import time
import unittest.mock
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp

from otlib import w2bench
from otlib.enot2024.enot import ENOTConfig, enot, transport
from otlib.core.train import train
from otlib.bench import batches, peer_missing

__all__ = ["INTERLEAVE_STEPS", "RECOMMENDED", "SAME_AS_OTT", "PeerENOT", "main", "matmul_gflops_per_s", "paired_rates",
           "race_otlib", "race_peer", "step_flops"]

SAME_AS_OTT = ENOTConfig.from_ott(hidden=(128, 128, 128, 128), act="elu", tau=0.99, lam=1.0, learning_rate=3e-4,
                                  b1=0.9, b2=0.9, schedule="constant", batch_size=1024)
"""Race 1: OTT-JAX 0.6.0 ``ExpectileNeuralDual``'s defaults at the paper's HD batch size (its λ = 1 on
‖x − y‖² is λ = 2 on our ½‖x − y‖²: :meth:`~otlib.enot2024.enot.ENOTConfig.from_ott`)."""

RECOMMENDED = ENOTConfig(parameterisation="correlation", hidden=(128, 128, 128, 128), act="elu", tau=0.99, lam=1.0,
                         learning_rate=1e-3, b1=0.9, b2=0.99, schedule="cosine", final_lr_fraction=1e-2,
                         batch_size=256)
"""Race 2: the correlation form (the authors' HD choice) on the same MLP, for a short budget: batch 256 (more
steps than batch 1024 in the same time), Adam(1e-3, 0.9, 0.99) with a cosine schedule spread over the known
budget, OTT's tau = 0.99 and λ = 1 (better than the paper's 0.9, 0.3 at this budget). ``num_steps`` is set from
the wall-time budget. The step size 3e-3 diverged at D = 64; 1e-3 did not (the measurements are in
``docs/performance.md``)."""

MATMUL_SHAPE = (1024, 128, 128)

INTERLEAVE_STEPS = 500
"""Race 1 alternates stretches of this many steps, otlib's then OTT-JAX's."""


def _cost_flops(compiled: Any) -> float:
    """FLOPs from XLA's cost analysis (a dict, or a one-element list of dicts in some versions)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis["flops"])


def _best_seconds(run: Callable[[int], Any], repeats: int) -> float:
    """The shortest wall time of ``run(1)``, ..., ``run(repeats)`` (results awaited), after a warm-up ``run(0)``."""
    jax.block_until_ready(run(0))
    best = math.inf
    for i in range(1, repeats + 1):
        t0 = time.perf_counter()
        jax.block_until_ready(run(i))
        best = min(best, time.perf_counter() - t0)
    return best


def _matmul_chain(depth: int) -> tuple[Callable[[], jax.Array], float]:
    """A jitted chain of ``depth`` (1024x128) @ (128x128) products (the race's layer shape) and its FLOPs.

    The chain cycles through 64 orthogonal matrices, so its activations keep their norm however long it is
    (no overflow, no denormals to slow it down).
    """
    m, k, n = MATMUL_SHAPE
    cycle = min(depth, 64)
    reps = max(1, round(depth / cycle))
    a = jax.random.normal(jax.random.key(0), (m, k))
    ws = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (cycle, k, n)))[0]
    layers = lambda h: jax.lax.scan(lambda h, w: (h @ w, None), h, ws)[0]  # noqa: E731
    chain = jax.jit(lambda h: jax.lax.fori_loop(0, reps, lambda _, h: layers(h), h))
    return functools.partial(chain, a), 2.0 * m * k * n * cycle * reps


def matmul_gflops_per_s(depth: int = 64, repeats: int = 7) -> float:
    """The machine's rate on the race's own matmul shape: a scanned chain of (1024x128) @ (128x128).

    This is race 1's reference rate: one product per ``lax.scan`` iteration. It is not the machine's peak
    (unrolled chains run faster, ``docs/performance.md``), so shares of this rate near or above 100 % are
    possible.
    """
    chain, flops = _matmul_chain(depth)
    return flops / _best_seconds(lambda i: chain(), repeats) / 1e9


def step_flops(method: Any) -> float:
    """FLOPs of one step of ``method`` (one seed) from XLA's cost analysis."""
    state = method.init(jax.random.key(0))
    return _cost_flops(jax.jit(method.step).lower(state, jax.random.key(1)).compile())


def paired_rates(method: Any, state: Any, flops_per_step: float, steps: int = 50, rounds: int = 9
                 ) -> dict[str, float]:
    """otlib's rate against the matmul rate, read in the same moments of a drifting machine.

    Each of ``rounds`` rounds times one compiled ``lax.scan`` of ``steps`` steps of ``method`` (batches
    drawn inside, as in training) and one matmul chain of about the same FLOPs, back to back, in
    alternating order; the share is the median over rounds of (otlib's GFLOP/s) / (the matmul's GFLOP/s).
    Returns that share and the median rate of each side.
    """
    run = jax.jit(lambda s, k: jax.lax.scan(method.step, s, jax.random.split(k, steps))[0])
    chain, chain_flops = _matmul_chain(round(steps * flops_per_step / (2.0 * math.prod(MATMUL_SHAPE))))

    def seconds(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        return time.perf_counter() - t0

    ours = lambda i: run(state, jax.random.key(i))  # noqa: E731
    jax.block_until_ready((ours(0), chain()))  # compile both
    otlib_rates, matmul_rates = [], []
    for i in range(1, rounds + 1):
        if i % 2:
            t_ours = seconds(lambda: ours(i))
            t_matmul = seconds(chain)
        else:
            t_matmul = seconds(chain)
            t_ours = seconds(lambda: ours(i))
        otlib_rates.append(steps * flops_per_step / t_ours / 1e9)
        matmul_rates.append(chain_flops / t_matmul / 1e9)
    shares = [o / m for o, m in zip(otlib_rates, matmul_rates)]
    return {"share": statistics.median(shares), "otlib_gflops_per_s": statistics.median(otlib_rates),
            "matmul_gflops_per_s": statistics.median(matmul_rates)}


def _l2_uvp_of(map_fn: Callable[[jax.Array], jax.Array], bench: Any, seed: int) -> float:
    return w2bench.l2_uvp(jax.jit(map_fn), bench, jax.random.key(10_000 + seed))


def race_otlib(config: ENOTConfig, bench: Any, steps: int, seed: int, *, chunk_size: int = 1000,
               after_chunk: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train ``config`` for ``steps`` steps on ``bench`` with the driver; speed (compilation excluded), L2-UVP.

    ``after_chunk`` is the driver's hook (:func:`otlib.core.train.train`), run off otlib's clock after each
    chunk of ``chunk_size`` steps: race 1 advances OTT-JAX's run there (:class:`PeerENOT`).
    """
    config = dataclasses.replace(config, num_steps=steps)
    method = enot(config, bench.sample_source, bench.sample_target, dim=bench.dim)
    result = train(method, jax.random.key(seed), steps, chunk_size=chunk_size, progress=False,
                   after_chunk=after_chunk)
    state = result.seed(0)
    return {"steps_per_s": result.steps_per_s, "train_s": result.train_s, "steps": result.steps,
            "diverged": bool(result.diverged[0]), "method": method, "state": state,
            "l2_uvp": math.nan if result.diverged[0] else _l2_uvp_of(lambda x: transport(state, x), bench, seed)}


@contextlib.contextmanager
def _quiet_tqdm() -> Iterator[None]:
    """Disable the ``tqdm.auto.tqdm`` bars that OTT-JAX's ``train_fn`` imports when it is called."""
    import tqdm.auto

    with unittest.mock.patch.object(tqdm.auto, "tqdm", functools.partial(tqdm.auto.tqdm, disable=True)):
        yield


class PeerENOT:
    """OTT-JAX's ``ExpectileNeuralDual`` with its defaults, trained a stretch at a time on its own clock.

    :meth:`start` builds it on batches of ``batch_size`` from Python iterators of jitted benchmark samplers,
    as OTT expects, and compiles its step with two warm-up steps (one per direction); each
    :meth:`advance_to` runs its ``train_fn`` up to a step count and adds that stretch's wall time to
    ``train_s``. OTT's loop restarts its direction parity at every call, so stretches should have even
    lengths (all but the last): the roles then alternate exactly as in one long call.
    """

    def __init__(self, solver: Any, loaders: tuple[Iterator[jax.Array], Iterator[jax.Array]], bench: Any,
                 seed: int) -> None:
        self.solver, self.loaders, self.bench, self.seed = solver, loaders, bench, seed
        self.steps, self.train_s = 0, 0.0

    @classmethod
    def start(cls, bench: Any, seed: int, batch_size: int = SAME_AS_OTT.batch_size) -> PeerENOT | None:
        """The compiled peer, or ``None`` (with the failing import printed) when OTT-JAX's neural part is absent."""
        try:
            from ott.neural.methods.expectile_neural_dual import ExpectileNeuralDual
        except ImportError as error:
            peer_missing(error)
            return None
        keys = jax.random.split(jax.random.key(seed), 4)
        solver = ExpectileNeuralDual(dim_data=bench.dim, num_train_iters=2, valid_freq=2 ** 62,
                                     rng=jax.random.fold_in(keys[0], 1))
        loaders = (batches(bench.sample_source, keys[1], batch_size), batches(bench.sample_target, keys[2], batch_size))
        with _quiet_tqdm():  # OTT draws a tqdm bar (a widget in a notebook); keep the race's output clean
            solver.train_fn(*loaders, *loaders)          # compile the step (2 steps: both directions)
        jax.block_until_ready(solver.state_f.params)
        return cls(solver, loaders, bench, seed)

    def advance_to(self, step: int) -> None:
        """Train until ``step`` timed steps are done (a no-op if they are)."""
        if step <= self.steps:
            return
        self.solver.num_train_iters = step - self.steps
        with _quiet_tqdm():
            t0 = time.perf_counter()
            self.solver.train_fn(*self.loaders, *self.loaders)
            jax.block_until_ready(self.solver.state_f.params)
            self.train_s += time.perf_counter() - t0
        self.steps = step

    def result(self) -> dict[str, Any]:
        """Steps/s over the timed steps, their wall time, and the forward map's L2-UVP."""
        potentials = self.solver.to_dual_potentials()
        return {"steps_per_s": self.steps / self.train_s, "train_s": self.train_s, "steps": self.steps,
                "l2_uvp": _l2_uvp_of(lambda x: potentials.transport(x), self.bench, self.seed)}


def race_peer(bench: Any, steps: int, seed: int, batch_size: int = SAME_AS_OTT.batch_size) -> dict[str, Any] | None:
    """:class:`PeerENOT` trained for ``steps`` steps in one stretch, or ``None`` if OTT-JAX is absent."""
    peer = PeerENOT.start(bench, seed, batch_size)
    if peer is None:
        return None
    peer.advance_to(steps)
    return peer.result()


def _budget_steps(config: ENOTConfig, bench: Any, seconds: float, seed: int, calibration: int) -> int:
    """How many steps of ``config`` fit in ``seconds`` (speed from a short run, compilation excluded)."""
    rate = race_otlib(config, bench, calibration, seed)["steps_per_s"]
    return max(1, int(seconds * rate))


def _row(name: str, *values: Any) -> str:
    cells = [f"{v:>12.4g}" if isinstance(v, float) else f"{v!s:>12}" for v in values]
    return f"{name:<34}" + "".join(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otlib.bench enot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, required=True, help="benchmark dimension D (2..256)")
    parser.add_argument("--steps", type=int, default=10_000,
                        help="steps of race 1 (both sides); OTT's wall time for them is race 2's budget "
                             "(default 10000)")
    parser.add_argument("--batch-size", type=int, default=SAME_AS_OTT.batch_size,
                        help="race 1's batch, both sides (default 1024, the paper's). A small batch makes the step "
                             "cheap, so each side's fixed cost per step decides the race, as on a GPU: OTT's "
                             "Python loop against otlib's scan")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration-steps", type=int, default=500,
                        help="steps timing the recommended configuration before race 2")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="race 2's wall time when OTT-JAX is not installed (default: otlib's race-1 time)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (one step in each direction)")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    same_work = dataclasses.replace(SAME_AS_OTT, batch_size=args.batch_size)

    bench = w2bench.hd(args.dim)
    print(f"ENOT race on the W2 benchmark HD pair, D={args.dim}, {args.steps} steps, race 1 at batch "
          f"{args.batch_size}, backend {jax.default_backend()}")
    matmul_before = matmul_gflops_per_s()
    racing = PeerENOT.start(bench, args.seed, args.batch_size)
    ours = race_otlib(same_work, bench, args.steps, args.seed, chunk_size=INTERLEAVE_STEPS,
                      after_chunk=racing.advance_to if racing else None)
    matmul_after = matmul_gflops_per_s()
    matmul = 0.5 * (matmul_before + matmul_after)
    peer = racing.result() if racing else None
    flops = step_flops(ours["method"])
    gflops = flops * ours["steps_per_s"] / 1e9
    paired = paired_rates(ours["method"], ours["state"], flops)

    ratio = ours["steps_per_s"] / peer["steps_per_s"] if peer is not None else None
    budget = peer["train_s"] if peer is not None else (args.budget_s or ours["train_s"])
    quality_steps = _budget_steps(RECOMMENDED, bench, budget, args.seed, args.calibration_steps)
    best = race_otlib(RECOMMENDED, bench, quality_steps, args.seed)

    print(_row("", "otlib", "OTT-JAX"))
    print(_row("race 1: steps/s (same work)", ours["steps_per_s"], peer["steps_per_s"] if peer else "n/a"))
    print(_row("race 1: L2-UVP % after N steps", ours["l2_uvp"], peer["l2_uvp"] if peer else "n/a"))
    print(_row("race 1: GFLOP/s", gflops, gflops / ratio if peer else "n/a"))
    shares = f"otlib's race at {gflops / matmul:.0%}"
    if peer:
        shares += f", OTT-JAX's at {gflops / ratio / matmul:.0%}"
    print(f"  matmul rate {matmul:.1f} GFLOP/s (mean of {matmul_before:.1f} before race 1 and "
          f"{matmul_after:.1f} after): {shares}")
    print(f"  paired reading (9 rounds of 50 steps, each next to a matmul chain of the same FLOPs): otlib "
          f"{paired['otlib_gflops_per_s']:.1f} against {paired['matmul_gflops_per_s']:.1f} GFLOP/s, median share "
          f"{paired['share']:.0%}")
    print(_row(f"race 2: steps in {budget:.1f} s", best["steps"], args.steps if peer else "n/a"))
    print(_row("race 2: L2-UVP % (same wall time)", best["l2_uvp"], peer["l2_uvp"] if peer else "n/a"))
    if best["diverged"]:
        print(f"note: race 2 diverged (|loss| > 1e5 or NaN) within its first {best['steps']} of {quality_steps} "
              f"steps; its L2-UVP is NaN. Try another --seed, or a smaller RECOMMENDED.learning_rate")
    elif abs(best["train_s"] / budget - 1) > 0.15:
        print(f"note: race 2 trained for {best['train_s']:.1f} s against a budget of {budget:.1f} s (the machine's "
              f"speed changed after the calibration run); rerun on a quiet machine for a fair comparison")
    record = {
        "method": "enot", "dim": args.dim, "steps": args.steps,
        "otlib_steps_per_s": round(ours["steps_per_s"], 3),
        "peer_steps_per_s": round(peer["steps_per_s"], 3) if peer else None,
        "ratio": round(ratio, 3) if peer else None,
        "otlib_l2_uvp": round(best["l2_uvp"], 4),
        "peer_l2_uvp": round(peer["l2_uvp"], 4) if peer else None,
        "otlib_gflops_per_s": round(gflops, 2), "matmul_gflops_per_s": round(matmul, 2),
        "otlib_matmul_share": round(paired["share"], 3),
        "otlib_paired_gflops_per_s": round(paired["otlib_gflops_per_s"], 2),
        "matmul_paired_gflops_per_s": round(paired["matmul_gflops_per_s"], 2),
        "peer_gflops_per_s": round(gflops / ratio, 2) if peer else None,
        "otlib_step_gflop": round(flops / 1e9, 4), "budget_s": round(budget, 2),
        "otlib_quality_steps": best["steps"], "otlib_quality_s": round(best["train_s"], 2),
        "batch_size": args.batch_size,
    }
    print(json.dumps(record))
    return 0
