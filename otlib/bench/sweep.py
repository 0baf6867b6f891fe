"""A notebook's table cells and training runs as batch jobs, one job per cell, through submitit (Slurm or
local processes).

Three notebooks divide their work into cells that a job can compute in the notebook's place:

* ``w2_benchmark_hd``: one cell per row and D (:func:`otlib.bench.hd_table.table_cell`, a validated JSON
  record in the cell store :mod:`otlib.bench.cells`), :class:`CellSpec`;
* ``enot2024_ablation``: one run per D, each the whole (τ, λ) grid (:func:`otlib.enot2024.ablation.grid_runs`);
* ``vegan2017_pot_vs_vae``: one run per model and per λ of the trade-off sweep, seeds vmapped
  (:mod:`otlib.vegan2017.comparison`).

A run (:class:`RunSpec`) is a :class:`otlib.core.train.Run`: its checkpoint, named by its fingerprint, is
the stored cell, and the notebook's own ``run.train(folder)`` returns a finished one at once.

:func:`plan` enumerates the cells that the notebook's parameters imply; :func:`submit` sends one job per
cell that is neither stored nor queued (a Slurm job array, at most ``max_parallel`` running at once; the local
executor starts at most ``max_parallel`` processes and :func:`wait` tops them up); :func:`statuses` tells each
cell's state; :func:`wait` follows them, resubmits a failed cell at most ``max_retries`` times, and returns
when every cell is done or out of tries. The notebook run afterwards only gathers the stored cells.

A job runs exactly the notebook's code for its cell (the same function, key, budget and folder), so it
writes through the same store and checkpoints after every chunk of the driver. It is
:class:`submitit.helpers.Checkpointable`: a job preempted or at its time limit is requeued by submitit and
resumes from the driver's checkpoint, and so does a job killed outright and submitted again. Each job writes
a small JSON status (running, done, or failed with its traceback) next to submitit's logs, so the state of a
sweep is read without unpickling anything.

Submission refuses an HD cell whose stored record was made with another configuration (steps, seeds, or
budget tag), as the notebook's store would not reuse it: delete the record or choose another folder. A run
with other parameters is another file (its name carries its fingerprint), so runs never conflict.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import submitit

from otlib.bench import cells, hd_table
from otlib.core.checkpoint import CheckpointCorruptError, CheckpointMismatchError
from otlib.core.files import atomic_write_text
from otlib.core.progress import progress_bar
from otlib.core.train import Run

__all__ = ["CellSpec", "RunSpec", "CellJob", "ConfigurationError", "NOTEBOOKS", "hd_budget", "hd_cells", "plan",
           "jobs_dir", "statuses", "submit", "wait", "format_statuses", "cells_of", "DEFAULT_MAX_RETRIES"]

DEFAULT_MAX_RETRIES = 2
"""A failed cell is submitted again at most this many times (so at most 1 + this many attempts)."""

ACTIVE = ("pending", "running")
TODO = ("missing", "unfinished", "failed")


class ConfigurationError(ValueError):
    """A cell is stored (or queued) with a configuration other than the one asked for."""


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """One cell of the HD table: what a job needs to run it exactly as the notebook does."""

    notebook: str
    row: str
    dim: int
    folder: str
    budget: hd_table.Budget
    seed: int

    @property
    def name(self) -> str:
        return f"{self.row}, D={self.dim}"

    @property
    def path(self) -> Path:
        return cells.cell_path(Path(self.folder), self.row, self.dim)

    @property
    def key(self) -> str:
        """The cell's identity in a sweep's job file: its record's file name."""
        return self.path.name

    @property
    def checkpoint(self) -> Path:
        return self.path.with_suffix(".ckpt.npz")

    def signature(self) -> dict:
        return hd_table.cell_signature(self.row, self.budget)

    def describe(self) -> str:
        sig = self.signature()
        return f"{sig['steps']} steps x {sig['seeds']} seeds"

    def stored(self) -> tuple[str, Optional[str]]:
        """``("done" | "conflict" | "unfinished" | "missing", error)`` from what the folder holds."""
        try:
            record = cells.load_cell(Path(self.folder), self.row, self.dim)
        except Exception as err:  # an invalid record is recomputed, as the notebook's store does
            record, error = None, f"invalid record: {err}"
        else:
            error = None
        sig = self.signature()
        if record is not None and cells.cell_matches(record, sig["steps"], sig["seeds"], sig["tag"]):
            return "done", None
        if record is not None:
            return "conflict", (f"{self.path} was made with steps={record.get('steps')}, seeds={record.get('seeds')}, "
                                f"tag={record.get('tag', '')!r}; asked for steps={sig['steps']}, "
                                f"seeds={sig['seeds']}, tag={sig['tag']!r}")
        return ("unfinished" if self.checkpoint.exists() else "missing"), error

    def compute(self) -> dict:
        import jax

        record = hd_table.table_cell(self.row, self.dim, budget=self.budget, folder=Path(self.folder),
                                     key=jax.random.key(self.seed), progress=True)
        return {"row": self.row, "dim": self.dim, "values": record["values"]}


@functools.lru_cache(maxsize=8)
def _runs_of(notebook: str, params_json: str) -> dict[str, Run]:
    """The notebook's runs for these parameters (built once per process: building loads data)."""
    return RUN_NOTEBOOKS[notebook](json.loads(params_json))


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of a notebook (:class:`otlib.core.train.Run`), named by the notebook's parameters."""

    notebook: str
    run_name: str
    folder: str
    params_json: str  # the notebook's resolved parameters, JSON: the job builds the run from them again

    @property
    def run(self) -> Run:
        return _runs_of(self.notebook, self.params_json)[self.run_name]

    @property
    def name(self) -> str:
        return self.run_name

    @property
    def checkpoint(self) -> Path:
        return self.run.checkpoint(self.folder)

    @property
    def key(self) -> str:
        """The run's identity in a sweep's job file: its checkpoint's file name (which holds its fingerprint)."""
        return self.checkpoint.name

    def signature(self) -> dict:
        return {"steps": self.run.num_steps, "seeds": self.run.num_seeds, "tag": self.key}

    def describe(self) -> str:
        return f"{self.run.num_steps} steps x {self.run.num_seeds} seeds"

    def stored(self) -> tuple[str, Optional[str]]:
        try:
            stored = self.run.stored(self.folder)
        except (CheckpointCorruptError, CheckpointMismatchError) as err:
            return "missing", f"unusable checkpoint: {err}"
        if stored is None:
            return "missing", None
        return ("done" if stored["finished"] else "unfinished"), None

    def compute(self) -> dict:
        result = self.run.train(self.folder, progress=True)
        final = {name: np.asarray(values[-1]).tolist() for name, values in result.evals.items() if name != "step"}
        return {"run": self.run_name, "steps": result.steps, "final": final}


def hd_budget(params: dict[str, Any]) -> hd_table.Budget:
    """The :class:`~otlib.bench.hd_table.Budget` that ``w2_benchmark_hd`` builds from its parameters."""
    return hd_table.Budget(w2ot_steps=params["w2ot_steps"], w2ot_pretrain_steps=params["w2ot_pretrain_steps"],
                           w2ot_seeds=params["w2ot_seeds"], enot_steps=params["enot_steps"],
                           enot_seeds=params["enot_seeds"], enot_hidden=tuple(params["enot_hidden"]),
                           batch_size=params["batch_size"], n_eval=params["n_eval"])


def hd_cells(params: dict[str, Any], folder: Path, *, budget: Optional[hd_table.Budget] = None) -> list[CellSpec]:
    """The cells ``run_table`` trains for ``w2_benchmark_hd``'s parameters, in its order (D, then row;
    the OTT-JAX row when ``peer`` is set and installed). ``budget`` replaces the one the parameters imply."""
    budget = hd_budget(params) if budget is None else budget
    rows = list(params["rows"])
    unknown = [r for r in rows if r not in hd_table.ROWS]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; choose from {list(hd_table.ROWS)}")
    if params.get("peer") and hd_table.peer_available():
        rows.append(hd_table.PEER_ROW)
    return [CellSpec("w2_benchmark_hd", row, int(dim), str(folder), budget, int(params.get("seed", 0)))
            for dim in params["dims"] for row in rows]


def ablation_runs(params: dict[str, Any]) -> dict[str, Run]:
    """``enot2024_ablation``'s runs (one per D), built as its cell builds them."""
    from otlib.enot2024.ablation import grid_runs

    runs = grid_runs(params["dims"], params["taus"], params["lams"], num_steps=params["num_steps"],
                     num_seeds=params["num_seeds"], batch_size=params["batch_size"], hidden=params["hidden"],
                     learning_rate=params["learning_rate"], n_eval=params["n_eval"], seed=params["seed"])
    return {run.name: run for run in runs.values()}


def pot_runs(params: dict[str, Any]) -> dict[str, Run]:
    """``vegan2017_pot_vs_vae``'s runs: the three models, then WAE-MMD at each λ of the sweep."""
    from otlib.vegan2017.comparison import model_runs, setup, sweep_runs

    comparison = setup(params["data_name"], architecture=params["architecture"], hidden=params["hidden"],
                       latent_dim=params["latent_dim"], batch_size=params["batch_size"],
                       learning_rate=params["learning_rate"], lr_decay_epochs=params["lr_decay_epochs"])
    common = {"seed": params["seed"], "num_steps": params["num_steps"], "chunk_size": params["chunk_size"]}
    models = model_runs(comparison, num_seeds=params["num_seeds"], lam_mmd=params["lam_mmd"],
                        lam_gan=params["lam_gan"], adversary_hidden=params["adversary_hidden"],
                        adversary_lr=params["adversary_lr"], **common)
    sweeps = sweep_runs(comparison, sweep_lams=params["sweep_lams"], sweep_seeds=params["sweep_seeds"], **common)
    return {run.name: run for run in [*models.values(), *sweeps.values()]}


RUN_NOTEBOOKS: dict[str, Callable[[dict[str, Any]], dict[str, Run]]] = {
    "enot2024_ablation": ablation_runs, "vegan2017_pot_vs_vae": pot_runs}
"""The notebooks whose work is stored as :class:`~otlib.core.train.Run` checkpoints, and how their
parameters build those runs."""


def _run_cells(notebook: str) -> Callable[[dict[str, Any], Path], list[RunSpec]]:
    def specs(params: dict[str, Any], folder: Path) -> list[RunSpec]:
        params_json = json.dumps(params, sort_keys=True)
        return [RunSpec(notebook, name, str(folder), params_json) for name in _runs_of(notebook, params_json)]
    return specs


NOTEBOOKS: dict[str, Callable[[dict[str, Any], Path], list]] = {
    "w2_benchmark_hd": hd_cells, **{name: _run_cells(name) for name in RUN_NOTEBOOKS}}
"""The notebooks whose work is stored as cells, and how their parameters enumerate them."""


def plan(notebook: str, params: dict[str, Any], folder: Path) -> list[CellSpec | RunSpec]:
    """The cells that ``notebook`` run with ``params`` computes, stored under ``folder``."""
    if notebook not in NOTEBOOKS:
        raise ValueError(f"{notebook} does not store its work as table cells; the notebooks that do: "
                         f"{', '.join(NOTEBOOKS)} (run the others with python -m otlib.reproduce)")
    return NOTEBOOKS[notebook](params, Path(folder))


def jobs_dir(folder: Path) -> Path:
    """Where a sweep over the cells in ``folder`` keeps its job file, job statuses and submitit's logs:
    ``jobs/`` beside ``folder``."""
    return Path(folder).parent / "jobs"


def _status_path(spec: CellSpec | RunSpec) -> Path:
    return jobs_dir(Path(spec.folder)) / "status" / f"{spec.key.split('.')[0]}.json"


def _write_status(spec: CellSpec | RunSpec, **fields: Any) -> None:
    path = _status_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"cell": spec.name, "time": time.time(), **fields}, indent=1) + "\n")


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class CellJob(submitit.helpers.Checkpointable):
    """The job: run one cell with the notebook's code; requeued after preemption or a time limit
    (submitit resubmits the same call, which resumes from the driver's checkpoint)."""

    def __call__(self, spec: CellSpec | RunSpec) -> dict:
        import jax

        os.environ.setdefault("OTLIB_PROGRESS", "text")
        # The notebooks' precision (otlib.report.notebook.start), so a job's cell is the notebook's.
        jax.config.update("jax_default_matmul_precision", "highest")
        try:
            job_id = submitit.JobEnvironment().job_id
        except RuntimeError:
            job_id = "?"
        _write_status(spec, state="running", job_id=job_id, pid=os.getpid(), host=os.uname().nodename)
        resume = spec.checkpoint.exists()
        print(f"{spec.notebook}: cell {spec.name}, job {job_id}: "
              + ("resuming from its checkpoint" if resume else "starting"), flush=True)
        try:
            summary = spec.compute()
        except Exception as err:
            _write_status(spec, state="failed", job_id=job_id, error=f"{type(err).__name__}: {err}",
                          traceback=traceback.format_exc())
            raise
        except BaseException as err:  # submitit's requeue at preemption exits this way, and so does Ctrl-C
            _write_status(spec, state="interrupted", job_id=job_id, error=f"interrupted ({type(err).__name__})")
            raise
        _write_status(spec, state="done", job_id=job_id)
        return summary


# ----------------------------------------------------------------------------------------------- job file

def _job_file(folder: Path) -> Path:
    return jobs_dir(folder) / "jobs.json"


def _load_jobs(folder: Path) -> dict:
    return _read_json(_job_file(folder)) or {"cells": {}}


def _save_jobs(folder: Path, jobs: dict) -> None:
    path = _job_file(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(jobs, indent=1, sort_keys=True) + "\n")


def _squeue() -> Optional[dict[str, str]]:
    """Slurm's queue: job id (``123`` or array task ``123_4``) -> state (``PENDING``, ``RUNNING``, ...);
    ``None`` when ``squeue`` cannot be asked (then no Slurm job is taken for ended)."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return dict(line.split("|", 1) for line in out.stdout.split() if "|" in line)


def _pid_alive(pid: int) -> bool:
    """Whether a local job's controller process still runs (a zombie child is reaped and counts as ended)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _job_state(job: dict, queue: Optional[dict[str, str]]) -> Optional[str]:
    """``"pending"`` or ``"running"`` while the scheduler holds the job, ``"unknown"`` when Slurm cannot be
    asked, else ``None`` (the job has ended)."""
    if job["executor"] == "local":
        return "running" if _pid_alive(int(job["job_id"])) else None
    if queue is None:
        return "unknown"
    state = queue.get(job["job_id"])
    if state is None:
        return None
    return "running" if state in ("RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED") else "pending"


def statuses(specs: Sequence[CellSpec | RunSpec]) -> list[dict]:
    """Each cell's state: ``done``, ``conflict`` (stored with another configuration), ``pending``,
    ``running``, ``failed`` (its job ended without storing the cell: the error and log are given),
    ``unknown`` (a Slurm job, and ``squeue`` failed), ``unfinished`` (a checkpoint and no job) or
    ``missing``; with its job, attempts and log."""
    by_folder: dict[str, dict] = {}
    queue, asked = None, False
    out = []
    for spec in specs:
        jobs = by_folder.setdefault(spec.folder, _load_jobs(Path(spec.folder)))
        entry = jobs["cells"].get(spec.key)
        info: dict[str, Any] = {"cell": spec.name, "row": getattr(spec, "row", None),
                                "dim": getattr(spec, "dim", None), "spec": spec,
                                "attempts": entry["attempts"] if entry else 0, "job": None, "log": None,
                                "error": None}
        if entry:
            info.update(job=entry["jobs"][-1]["job_id"], log=entry["jobs"][-1]["stderr"])
        stored, info["error"] = spec.stored()
        if stored in ("done", "conflict"):
            out.append({**info, "state": stored})
            continue
        sig = spec.signature()
        checkpoint = stored == "unfinished"
        if entry is None:
            out.append({**info, "state": "unfinished" if checkpoint else "missing"})
            continue
        job = entry["jobs"][-1]
        if job["executor"] == "slurm" and not asked:
            queue, asked = _squeue(), True
        active = _job_state(job, queue)
        if active == "unknown":
            out.append({**info, "state": "unknown", "error": "squeue failed: is this a Slurm host?"})
            continue
        if active:
            if entry.get("tag") != sig["tag"]:
                out.append({**info, "state": "conflict", "error": (
                    f"job {job['job_id']} is computing this cell with tag {entry.get('tag')!r}; asked for "
                    f"{sig['tag']!r}")})
            else:
                out.append({**info, "state": active})
            continue
        status = _read_json(_status_path(spec)) or {}
        if status.get("job_id") != job["job_id"]:
            status = {}  # a previous attempt's, or the job never started
        error = status.get("error") or ("killed or lost (no error recorded)" if status.get("state") == "running"
                                         else "ended without storing the cell")
        if info["error"]:
            error = f"{info['error']}; {error}"
        out.append({**info, "state": "failed", "error": error + (" (checkpoint kept)" if checkpoint else "")})
    return out


def format_statuses(states: Sequence[dict], *, max_retries: int = DEFAULT_MAX_RETRIES) -> str:
    """One line per cell (state, cell, job, attempts, log or error) and a count per state."""
    counts: dict[str, int] = {}
    for s in states:
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    width = max((len(s["cell"]) for s in states), default=4)
    lines = [f"{len(states)} cells: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))]
    for s in states:
        line = f"  {s['state']:<10} {s['cell']:<{width}}"
        if s["job"]:
            line += f"  job {s['job']} (attempt {s['attempts']} of {1 + max_retries})"
        if s["state"] == "failed":
            line += f"  {s['error']}; log {s['log']}"
        elif s["state"] in ("conflict", "unknown"):
            line += f"  {s['error']}"
        elif s["state"] in ACTIVE:
            line += f"  log {s['log']}"
        lines.append(line)
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- submission

def _executor(kind: str, folder: Path, *, partition: Optional[str], gpus_per_job: Optional[int], time_min: int,
              max_parallel: Optional[int], cpus_per_job: Optional[int], mem_gb: Optional[float], name: str):
    logs = jobs_dir(folder) / "logs"
    if kind == "slurm":
        executor = submitit.AutoExecutor(folder=logs, cluster="slurm")
        params: dict[str, Any] = {"timeout_min": time_min, "name": name, "nodes": 1, "tasks_per_node": 1}
        gpus = 1 if gpus_per_job is None else gpus_per_job
        if gpus:  # no GPU flag at all for CPU jobs: a cluster without GPUs may refuse --gpus-per-node=0
            params["gpus_per_node"] = gpus
        if partition:
            params["slurm_partition"] = partition
        if max_parallel:
            params["slurm_array_parallelism"] = max_parallel
        if cpus_per_job:
            params["cpus_per_task"] = cpus_per_job
        if mem_gb:
            params["mem_gb"] = mem_gb
        executor.update_parameters(**params)
        return executor
    if kind == "local":
        executor = submitit.AutoExecutor(folder=logs, cluster="local")
        params = {"timeout_min": time_min, "name": name, "tasks_per_node": 1}
        if gpus_per_job is None:  # keep this process's devices (submitit's local executor would hide them)
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            params["local_setup"] = [f"export CUDA_VISIBLE_DEVICES={visible}" if visible is not None
                                     else "unset CUDA_VISIBLE_DEVICES"]
        else:
            params["gpus_per_node"] = gpus_per_job
        executor.update_parameters(**params)
        return executor
    raise ValueError(f"executor must be 'slurm' or 'local', got {kind!r}")


def submit(specs: Sequence[CellSpec | RunSpec], *, executor: str = "local", partition: Optional[str] = None,
           gpus_per_job: Optional[int] = None, time_min: int = 720, max_parallel: Optional[int] = None,
           cpus_per_job: Optional[int] = None, mem_gb: Optional[float] = None,
           max_retries: int = DEFAULT_MAX_RETRIES, dry_run: bool = False,
           log: Callable[[str], None] = print) -> list[dict]:
    """Submit one job per cell that is missing, unfinished, or failed with tries left; return what was
    (or, with ``dry_run``, would be) submitted: ``{"cell", "spec", "job", "resume"}`` per job.

    Cells done, queued or running are left alone. Raises :class:`ConfigurationError`, before submitting
    anything, when a cell is stored or queued with another configuration. ``executor="local"`` starts
    processes on this machine (at most ``max_parallel`` running at once); ``"slurm"`` submits one job
    array (``max_parallel`` as the array's limit) with ``gpus_per_job`` GPUs per job (default 1).
    """
    states = statuses(specs)
    conflicts = [s for s in states if s["state"] == "conflict"]
    if conflicts:
        raise ConfigurationError("refusing to submit: cells stored or queued with another configuration "
                                 "(delete their records or use another folder):\n"
                                 + "\n".join(f"  {s['cell']}: {s['error']}" for s in conflicts))
    todo = [s for s in states if s["state"] in TODO and s["attempts"] <= max_retries]
    for s in states:
        if s["state"] == "failed" and s["attempts"] > max_retries:
            log(f"not resubmitted (failed {s['attempts']} times): {s['cell']}: {s['error']}; log {s['log']}")
    if executor == "local" and max_parallel:
        running = sum(s["state"] in ACTIVE for s in states)
        todo = todo[:max(0, max_parallel - running)]
    if not todo:
        return []
    planned = [{"cell": s["cell"], "spec": s["spec"], "job": None,
                "resume": s["spec"].checkpoint.exists()} for s in todo]
    if dry_run:
        for p in planned:
            log(f"would submit ({executor}): {p['cell']}: {p['spec'].describe()}"
                + (", resuming from its checkpoint" if p["resume"] else ""))
        return planned
    by_folder: dict[str, list[dict]] = {}
    for p in planned:
        by_folder.setdefault(p["spec"].folder, []).append(p)
    for folder, group in by_folder.items():
        ex = _executor(executor, Path(folder), partition=partition, gpus_per_job=gpus_per_job, time_min=time_min,
                       max_parallel=max_parallel, cpus_per_job=cpus_per_job, mem_gb=mem_gb,
                       name=f"otlib-{group[0]['spec'].notebook}")
        jobs = ex.map_array(CellJob(), [p["spec"] for p in group])
        book = _load_jobs(Path(folder))
        for p, job in zip(group, jobs):
            spec = p["spec"]
            entry = book["cells"].setdefault(spec.key, {"cell": spec.name, "attempts": 0, "jobs": []})
            entry["attempts"] += 1
            entry["tag"] = spec.signature()["tag"]
            entry["jobs"].append({"job_id": str(job.job_id), "executor": executor, "submitted": time.time(),
                                  "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr)})
            p["job"] = str(job.job_id)
            log(f"submitted {p['cell']}: job {job.job_id} ({executor})" + (", resumes" if p["resume"] else ""))
        _save_jobs(Path(folder), book)
    return planned


def wait(specs: Sequence[CellSpec | RunSpec], *, poll_s: float = 10.0, timeout_s: Optional[float] = None,
         max_retries: int = DEFAULT_MAX_RETRIES, progress: bool = True,
         log: Callable[[str], None] = print, **submit_options: Any) -> list[dict]:
    """Follow the cells until each is done or failed with no tries left (a progress bar of done cells);
    a failed cell, or a waiting local one, is (re)submitted with ``submit_options``. Returns the last
    :func:`statuses`."""
    start = time.monotonic()
    with progress_bar(total=len(specs), desc="cells done", disable=not progress) as bar:
        while True:
            states = statuses(specs)
            done = sum(s["state"] == "done" for s in states)
            bar.update(done - bar.n)
            retry = [s for s in states if s["state"] in TODO and s["attempts"] <= max_retries]
            waiting = [s for s in states if s["state"] in (*ACTIVE, "unknown")]
            if retry:
                submit(specs, max_retries=max_retries, log=log, **submit_options)
            elif not waiting:
                return states
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                return statuses(specs)
            time.sleep(poll_s)


def cells_of(specs: Iterable[CellSpec]) -> list[Optional[dict]]:
    """The stored records of HD ``specs`` (``None`` where a cell is not stored)."""
    return [cells.load_cell(Path(s.folder), s.row, s.dim) for s in specs]
