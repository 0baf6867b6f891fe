"""Command line for the W2 benchmark of Korotin et al. 2021 (arXiv:2106.01954).

    python -m otlib.w2bench baselines --dims 2 4 8 16 [--seeds 3] [--n 16384] [--data-dir DIR]
    python -m otlib.w2bench constants [--dims 2 4 ... 128]

``baselines`` prints the identity and linear forward L2-UVP per D (mean +- std over seeds) next to the
published rows; ``constants`` (re)estimates m, s, Var(Q) and writes ``data/w2bench_hd_constants.json``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from otlib.core.files import ChecksumError, sha256_file
from otlib.w2bench import files
from otlib.w2bench.dense_icnn import load_dense_icnn_params
from otlib.w2bench.hd import CONSTANTS_N_SAMPLES, constants_path, estimate_constants, write_constants
from otlib.w2bench.baselines import baseline_table
from otlib.w2bench.metrics import DEFAULT_N
from otlib.w2bench.torchfile import CorruptCheckpointError, UnsafePickleError, UnsupportedCheckpointError

__all__ = ["main"]


def _dims(values: list[int]) -> list[int]:
    for d in values:
        files.check_dim(d)
    return values


def _baselines(args: argparse.Namespace) -> None:
    dims = _dims(args.dims)
    print(f"W2 benchmark HD (Mix3toMix10): forward L2-UVP %, n = {args.n} per evaluation, "
          f"{args.seeds} seed(s), mean +- std")
    head = f"{'D':>4} | {'identity (otlib)':>17} {'paper':>6} | {'linear (otlib)':>15} {'paper':>6}"
    print(head)
    print("-" * len(head))
    for d in dims:  # one D at a time, so each row prints as soon as it is ready
        row = baseline_table([d], seeds=args.seeds, n=args.n, data_dir=args.data_dir, progress=False).loc[d]
        print(f"{d:>4} | {row.identity:8.2f} +- {row.identity_std:5.2f} {row.identity_paper:>6.1f} | "
              f"{row.linear:7.2f} +- {row.linear_std:4.2f} {row.linear_paper:>6.1f}", flush=True)


def _constants(args: argparse.Namespace) -> None:
    dims = _dims(args.dims)
    out = constants_path()
    for d in dims:
        t0 = time.perf_counter()
        p1 = files.fetch(d, 1, data_dir=args.data_dir)
        p2 = files.fetch(d, 2, data_dir=args.data_dir)
        entry = estimate_constants(d, load_dense_icnn_params(p1), load_dense_icnn_params(p2),
                                   n_samples=args.n_samples)
        entry.update(sha256_v1=sha256_file(p1), sha256_v2=sha256_file(p2))
        write_constants(out, {d: entry}, n_samples=args.n_samples)
        print(f"D={d:>3}: s = {entry['scale']:.6f}, ||m|| = {np.linalg.norm(entry['shift']):.4f}, "
              f"Var(Q) = {entry['var_target']:.4f} ({time.perf_counter() - t0:.0f} s) -> {out}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otlib.w2bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("baselines", help="identity and linear L2-UVP vs the published rows")
    b.add_argument("--dims", type=int, nargs="+", default=[2, 4, 8, 16], help="dimensions (2, 4, ..., 256)")
    b.add_argument("--seeds", type=int, default=3, help="number of seeds (keys 0..seeds-1)")
    b.add_argument("--n", type=int, default=DEFAULT_N, help="samples per evaluation and per moment fit")
    b.add_argument("--data-dir", default=None, help="folder holding {D}_v{k}.pt (else $OTLIB_DATA_DIR, "
                                                    "data/w2bench/, download)")
    c = sub.add_parser("constants", help="estimate m, s, Var(Q) and write data/w2bench_hd_constants.json")
    c.add_argument("--dims", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64, 128])
    c.add_argument("--n-samples", type=int, default=CONSTANTS_N_SAMPLES, help=argparse.SUPPRESS)
    c.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    if getattr(args, "seeds", 1) < 1 or getattr(args, "n", 2) < 2:
        parser.error("--seeds must be >= 1 and --n >= 2")
    try:
        {"baselines": _baselines, "constants": _constants}[args.command](args)
    except (ValueError, FileNotFoundError, ChecksumError, UnsafePickleError, CorruptCheckpointError,
            UnsupportedCheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
