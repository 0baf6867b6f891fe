"""``python -m otlib.sweep --notebook NAME [--profile quick|full] [-p NAME=VALUE ...] [--executor slurm|local]``:
a notebook's table cells and training runs as batch jobs (see :mod:`otlib.bench.sweep`).

Without ``--status`` or ``--dry-run`` it submits one job per cell that is missing, unfinished or failed
(with tries left) and returns; ``--wait`` then follows the jobs until every cell is done. ``--status``
prints each cell's state. The parameters are the notebook's, checked as ``python -m otlib.reproduce``
checks them, and the cells go where the notebook looks for them, so running the notebook afterwards
only gathers them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from otlib.bench import sweep
from otlib.core.paths import results_dir
from otlib.report.reproduce import (ParameterError, data_dir_env, discover, parameters_of, parse_overrides,
                                    resolve_parameters)

__all__ = ["main", "cells_folder"]


def cells_folder(notebook: str, profile: str) -> Path:
    """Where ``notebook`` stores its cells: ``results/<profile>/<notebook>/cells`` (``nb.results_dir / "cells"``)."""
    return results_dir(profile, notebook, "cells")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otlib.sweep", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", required=True, help=f"one of: {', '.join(sweep.NOTEBOOKS)}")
    parser.add_argument("--profile", choices=("quick", "full"), default="full")
    parser.add_argument("-p", dest="params", action="append", default=[], metavar="NAME=VALUE",
                        help="override a notebook parameter (value read as YAML), as python -m otlib.reproduce")
    parser.add_argument("--folder", type=Path, help="cells folder (default: the notebook's, "
                                                    "results/<profile>/<notebook>/cells)")
    parser.add_argument("--executor", choices=("slurm", "local"), default="slurm")
    parser.add_argument("--partition", help="Slurm partition")
    parser.add_argument("--gpus-per-job", type=int, help="GPUs per job (Slurm default 1; local default: "
                                                         "this shell's devices)")
    parser.add_argument("--cpus-per-job", type=int, help="CPUs per job (Slurm's --cpus-per-task)")
    parser.add_argument("--mem-gb", type=float, help="memory per job (Slurm's --mem)")
    parser.add_argument("--time-min", type=int, default=720, help="time limit per job in minutes; a job that "
                        "reaches it is requeued and resumes from its checkpoint (default 720)")
    parser.add_argument("--max-parallel", type=int, help="jobs running at once (Slurm: the array's limit; "
                        "local: processes)")
    parser.add_argument("--max-retries", type=int, default=sweep.DEFAULT_MAX_RETRIES,
                        help=f"resubmit a failed cell at most this many times (default {sweep.DEFAULT_MAX_RETRIES})")
    parser.add_argument("--dry-run", action="store_true", help="print the jobs it would submit, submit nothing")
    parser.add_argument("--status", action="store_true", help="print each cell's state, submit nothing")
    parser.add_argument("--wait", action="store_true", help="after submitting, follow the jobs until all finish")
    parser.add_argument("--poll-s", type=float, default=30.0, help="seconds between checks with --wait")
    args = parser.parse_args(argv)

    notebooks = discover()
    if args.notebook not in notebooks:
        print(f"error: no notebook named {args.notebook}; available: {', '.join(notebooks)}", file=sys.stderr)
        return 2
    folder = args.folder or cells_folder(args.notebook, args.profile)
    data_env, data_line = data_dir_env()  # the benchmark files, found as python -m otlib.reproduce finds them
    os.environ.update(data_env)  # jobs inherit it
    print(data_line, flush=True)
    try:
        notebook = notebooks[args.notebook]
        params = {**parameters_of(notebook),
                  **resolve_parameters(notebook, args.profile, parse_overrides(args.params))}
        specs = sweep.plan(args.notebook, params, folder)
    except (ParameterError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.notebook} ({args.profile}): {len(specs)} cells in {folder}", flush=True)
    if args.status:
        states = sweep.statuses(specs)
        print(sweep.format_statuses(states, max_retries=args.max_retries))
        return 0
    options = dict(executor=args.executor, partition=args.partition, gpus_per_job=args.gpus_per_job,
                   time_min=args.time_min, max_parallel=args.max_parallel, cpus_per_job=args.cpus_per_job,
                   mem_gb=args.mem_gb)
    try:
        submitted = sweep.submit(specs, max_retries=args.max_retries, dry_run=args.dry_run, **options)
        if args.dry_run:
            print(f"{len(submitted)} jobs would be submitted")
            return 0
        print(f"{len(submitted)} jobs submitted; logs in {sweep.jobs_dir(folder) / 'logs'}", flush=True)
        if not args.wait:
            return 0
        states = sweep.wait(specs, poll_s=args.poll_s, max_retries=args.max_retries, **options)
    except sweep.ConfigurationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError, subprocess.CalledProcessError) as err:  # no sbatch here, or it refused
        print(f"error: {args.executor} submission failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    print(sweep.format_statuses(states, max_retries=args.max_retries))
    return 0 if all(s["state"] == "done" for s in states) else 1


if __name__ == "__main__":
    sys.exit(main())
