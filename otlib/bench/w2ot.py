"""Race: otlib's W2OT against OTT-JAX 0.6.0's ``W2NeuralDual`` on a W2-benchmark HD pair.

``python -m otlib.bench w2ot --dim D [--steps N] [--batch 1024] [--solver NAME] [--no-peer]``

Both sides train the Regression & L-BFGS row of Amos (2023) on ``otlib.w2bench.hd(D)``, one after the
other, with the same networks (non-convex MLP potential and residual MLP amortizer, widths
[2b, 2b, b], b = max(D, 32), ELU), batch, steps, optimiser (AdamW b1 = b2 = 0.5, weight decay 1e-4,
cosine decay from 5e-4 over the paper's 250k steps, so a short race is the start of the paper's run) and
the same conjugate-solver tolerance and iteration cap (printed).
Steps are timed after compilation, until the results are ready. Each side's forward L2-UVP is
computed with :func:`otlib.w2bench.l2_uvp` on the same 2^14 draws.

Differences that are the libraries' own, not the race's: otlib pretrains f to grad f = id inside
``init`` (untimed; the reference code does too, OTT does not); OTT's jaxopt L-BFGS stops on
||grad||_2 < gtol, otlib's (as the reference code) on ||grad||_inf < gtol; OTT's potential MLP has no
activation on its scalar output and a fixed 1/2 ||x||^2 (Amos's has both learned); OTT's amortizer is the
residual MLP ``PotentialMLP(is_potential=False)``, the same form as otlib's ``InitNN``. otlib runs its L-BFGS
on the schedule of :data:`otlib.amos2023.w2ot.DEVICE_SCHEDULES` for the device (the steps of the paper's
parallel Armijo), a batch at a time in shrinking working sets (:func:`otlib.ot.conjugate.conjugates`).

The default 200 steps time the step; they are far too few to compare quality (at D = 64 both sides are still
far from converged). Quality after 2000 steps, against the official w2ot code, is in ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Optional

import jax
import optax

from otlib import w2bench
from otlib.ot import conjugate
from otlib.nn.icnn import hd_widths
from otlib.amos2023.w2ot import DEVICE_SCHEDULES, W2OTConfig, transport, w2ot
from otlib.core.train import train
from otlib.bench import batches, peer_missing

__all__ = ["main"]

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m otlib.bench w2ot", description=__doc__.split("\n\n")[0])
    p.add_argument("--dim", type=int, required=True, help="benchmark dimension D (2..128 offline, 256 downloads)")
    p.add_argument("--steps", type=int, default=200, help="training steps of each side (default 200)")
    p.add_argument("--batch", type=int, default=1024, help="samples of each measure per step (default 1024)")
    p.add_argument("--solver", choices=sorted(conjugate.SOLVERS),
                   help="otlib's conjugate solver (default: by device, see otlib.amos2023.w2ot.DEVICE_SCHEDULES)")
    p.add_argument("--pretrain-steps", type=int, default=W2OTConfig.pretrain_steps,
                   help="otlib's identity pretraining steps, untimed (default: the paper's 10001, early exit)")
    p.add_argument("--eval-n", type=int, default=2 ** 14, help="L2-UVP samples (default 2^14, as the benchmark)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-peer", action="store_true", help="skip OTT-JAX")
    return p


def _run_otlib(bench: Any, args: argparse.Namespace, key: jax.Array) -> tuple[float, float, float]:
    """(steps/s, compile seconds, forward L2-UVP %) of otlib's W2OT."""
    config = W2OTConfig(potential="nn", amortization="regression_lbfgs", conjugate_solver=args.solver,
                        batch_size=args.batch,
                        pretrain_steps=args.pretrain_steps)
    method = w2ot(config, bench.sample_source, bench.sample_target, dim=args.dim)
    result = train(method, key, until=args.steps, chunk_size=args.steps, progress=False)
    state = result.seed(0)
    uvp = w2bench.l2_uvp(jax.jit(lambda x: transport(state, x)), bench, jax.random.key(args.seed + 1), args.eval_n)
    return result.steps_per_s, result.compile_s, uvp


def _run_ott(bench: Any, args: argparse.Namespace, key: jax.Array, gtol: float, max_iter: int
             ) -> Optional[tuple[float, float, float]]:
    """(steps/s, compile seconds, forward L2-UVP %) of OTT-JAX's W2NeuralDual, or None without OTT."""
    try:
        import flax.linen as nn
        from ott.neural.methods.neuraldual import W2NeuralDual
        from ott.neural.networks.layers.conjugate import FenchelConjugateLBFGS
        from ott.neural.networks.potentials import PotentialMLP
    except ImportError as error:
        peer_missing(error)
        return None
    widths = list(hd_widths(args.dim))
    paper = W2OTConfig()  # the same optimiser as otlib's side
    schedule = optax.cosine_decay_schedule(paper.learning_rate, paper.num_steps, alpha=paper.alpha)
    optimizer = lambda: optax.adamw(schedule, b1=paper.b1, b2=paper.b2, weight_decay=paper.weight_decay)  # noqa: E731
    dual = W2NeuralDual(
        dim_data=args.dim, neural_f=PotentialMLP(widths, act_fn=nn.elu),
        neural_g=PotentialMLP(widths, is_potential=False, act_fn=nn.elu),
        optimizer_f=optimizer(), optimizer_g=optimizer(), num_train_iters=args.steps, back_and_forth=False,
        rng=key, amortization_loss="regression",
        conjugate_solver=FenchelConjugateLBFGS(gtol=gtol, max_iter=max_iter, linesearch_type="backtracking"))
    key_x, key_y = jax.random.split(jax.random.fold_in(key, 1))
    sources = batches(bench.sample_source, key_x, args.batch)
    targets = batches(bench.sample_target, key_y, args.batch)
    state_f, state_g = dual.state_f, dual.state_g

    t0 = time.perf_counter()  # compile the step (and the samplers) on a first batch, result discarded
    first = {"source": next(sources), "target": next(targets)}
    jax.block_until_ready(dual.train_step_parallel(state_f, state_g, first))
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()  # W2NeuralDual.train_neuraldual_parallel's loop, without logging
    for _ in range(args.steps):
        state_f, state_g, *_ = dual.train_step_parallel(state_f, state_g,
                                                        {"source": next(sources), "target": next(targets)})
    jax.block_until_ready((state_f.params, state_g.params))
    steps_per_s = args.steps / (time.perf_counter() - t0)

    dual.state_f, dual.state_g = state_f, state_g
    potentials = dual.to_dual_potentials(finetune_g=False)
    uvp = w2bench.l2_uvp(jax.jit(potentials.transport), bench, jax.random.key(args.seed + 1), args.eval_n)
    return steps_per_s, compile_s, uvp


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        raise SystemExit(f"--steps and --batch must be positive, got {args.steps} and {args.batch}")
    platform = jax.devices()[0].platform
    default = DEVICE_SCHEDULES.get(platform, DEVICE_SCHEDULES["gpu"])
    args.solver = args.solver or next(name for name, s in conjugate.SOLVERS.items() if s == default)
    solver = conjugate.solver(args.solver)
    bench = w2bench.hd(args.dim)
    widths = list(hd_widths(args.dim))
    print(f"W2OT race on the W2 benchmark HD pair D={args.dim} ({platform}): Regression & L-BFGS, "
          f"MLP potential and residual MLP amortizer {widths}, batch {args.batch}, {args.steps} steps, "
          f"AdamW(5e-4, b1=b2=0.5), cosine over 250k steps")
    print(f"conjugate solver on both sides: gtol {solver.gtol}, max_iter {solver.max_iter} "
          f"(otlib {args.solver!r} on ||grad||_inf, in shrinking working sets; "
          f"OTT jaxopt L-BFGS, backtracking, on ||grad||_2, all targets at once)")
    key = jax.random.key(args.seed)

    ours_steps, ours_compile, ours_uvp = _run_otlib(bench, args, key)
    print(f"  otlib   : {ours_steps:8.2f} steps/s ({1e3 / ours_steps:7.1f} ms/step), compile {ours_compile:5.1f} s, "
          f"L2-UVP {ours_uvp:6.2f}%")
    peer = None if args.no_peer else _run_ott(bench, args, key, solver.gtol, solver.max_iter)
    if peer is None:
        print("  OTT-JAX : not run" + (" (--no-peer)" if args.no_peer else " (its import failed, see above)"))
        peer_steps = peer_uvp = ratio = None
    else:
        peer_steps, peer_compile, peer_uvp = peer
        ratio = ours_steps / peer_steps
        print(f"  OTT-JAX : {peer_steps:8.2f} steps/s ({1e3 / peer_steps:7.1f} ms/step), "
              f"compile {peer_compile:5.1f} s, L2-UVP {peer_uvp:6.2f}%")
        print(f"  otlib is {ratio:.2f}x OTT-JAX's steps/s")
    print(json.dumps({"method": "w2ot", "dim": args.dim, "steps": args.steps, "otlib_steps_per_s": ours_steps,
                      "peer_steps_per_s": peer_steps, "ratio": ratio, "otlib_l2_uvp": ours_uvp,
                      "peer_l2_uvp": peer_uvp}))
    return 0
