"""Table cells as jobs (otlib.bench.sweep, python -m otlib.sweep) with submitit's local executor: real
subprocesses that write the same cell store the notebook reads."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import signal
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from otlib.bench import cells, hd_table, sweep
from otlib.core.paths import notebooks_dir
from otlib.report.reproduce import discover, parameters_of, parse_overrides, resolve_parameters
from otlib import sweep as sweep_cli

TINY = ["-p", "rows=['ENOT']", "-p", "enot_steps=300", "-p", "enot_seeds=2", "-p", "enot_hidden=[32, 32]",
        "-p", "batch_size=128", "-p", "n_eval=1024", "-p", "peer=false"]
"""A few hundred ENOT steps per cell at D = 2 and 4: a cell's job takes seconds after its compilation."""


def _params(*overrides: str) -> dict:
    """The notebook's quick parameters with ``-p`` overrides, as ``python -m otlib.sweep`` resolves them."""
    notebook = discover()["w2_benchmark_hd"]
    return {**parameters_of(notebook), **resolve_parameters(notebook, "quick", parse_overrides(overrides[1::2]))}


def test_budget_is_the_notebooks():
    """The sweep builds the Budget exactly as the notebook's cell does (evaluated from its source)."""
    nb = json.loads(notebooks_dir("w2_benchmark_hd.ipynb").read_text())
    params = _params(*TINY)
    for cell in nb["cells"]:
        source = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
        for node in ast.parse(source).body if "hd_table.Budget(" in source else ():
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "budget":
                expected = eval(compile(ast.Expression(node.value), "nb", "eval"), {"hd_table": hd_table, **params})
                assert sweep.hd_budget(params) == expected
                return
    pytest.fail("no `budget = hd_table.Budget(...)` in w2_benchmark_hd")


def test_plan_lists_the_notebooks_cells_in_its_order(tmp_path):
    params = _params("-p", "dims=[4, 16]", "-p", "rows=['ENOT', 'W2OT NN: Objective & None']", "-p", "peer=false")
    specs = sweep.plan("w2_benchmark_hd", params, tmp_path)
    assert [(s.row, s.dim) for s in specs] == [("ENOT", 4), ("W2OT NN: Objective & None", 4), ("ENOT", 16),
                                               ("W2OT NN: Objective & None", 16)]
    assert {s.path.parent for s in specs} == {tmp_path}
    with pytest.raises(ValueError, match="does not store its work as table cells"):
        sweep.plan("amos2023_2d", {}, tmp_path)
    with pytest.raises(ValueError, match="unknown rows"):
        sweep.plan("w2_benchmark_hd", {**params, "rows": ["W2OT XYZ"]}, tmp_path)


def test_dry_run_and_refusal_of_another_configuration(tmp_path, capsys):
    folder = tmp_path / "cells"
    args = ["--notebook", "w2_benchmark_hd", "--profile", "quick", "--folder", str(folder), "-p", "dims=[2, 4]",
            *TINY, "--executor", "local"]
    assert sweep_cli.main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would submit (local): ENOT, D=2: 300 steps x 2 seeds" in out and "ENOT, D=4" in out
    assert "2 jobs would be submitted" in out
    assert not sweep.jobs_dir(folder).exists(), "a dry run submits nothing"

    # A record of D = 4 made with another budget: the whole submission is refused, naming the cell.
    other = dataclasses.replace(sweep.hd_budget(_params(*TINY)), enot_steps=200)
    cells.store_cell(folder, "ENOT", 4, {"steps": 200, "seeds": 2, "tag": repr(other), "values": [1.0, 2.0]})
    assert sweep_cli.main(args) == 2
    err = capsys.readouterr().err
    assert "refusing to submit" in err and "ENOT, D=4" in err and "steps=200" in err
    assert not sweep.jobs_dir(folder).exists()
    assert sweep_cli.main([*args, "--status"]) == 0
    out = capsys.readouterr().out
    assert "missing" in out and "conflict" in out


def test_failed_cells_report_their_log_and_retry_at_most_max_retries(tmp_path, monkeypatch):
    """The job book says cell D=2 ran as Slurm job 41_0 and D=4 as 42_0, and their jobs wrote failures."""
    specs = sweep.plan("w2_benchmark_hd", _params("-p", "dims=[2, 4]", *TINY), tmp_path / "cells")
    book = {"cells": {}}
    for spec, job, attempts in zip(specs, ("41_0", "42_0"), (1, 3)):
        book["cells"][spec.key] = {"cell": spec.name, "attempts": attempts, "tag": spec.signature()["tag"],
                                   "jobs": [{"job_id": job, "executor": "slurm", "submitted": 0.0,
                                             "stdout": f"/logs/{job}_0_log.out", "stderr": f"/logs/{job}_0_log.err"}]}
        sweep._write_status(spec, state="failed", job_id=job, error="FloatingPointError: nan")
    sweep._save_jobs(tmp_path / "cells", book)

    monkeypatch.setattr(sweep, "_squeue", lambda: None)  # no Slurm to ask: never taken for ended
    assert [s["state"] for s in sweep.statuses(specs)] == ["unknown", "unknown"]
    assert sweep.submit(specs, executor="slurm", dry_run=True, log=lambda m: None) == []

    monkeypatch.setattr(sweep, "_squeue", lambda: {})  # asked: neither job is queued any more
    states = sweep.statuses(specs)
    assert [s["state"] for s in states] == ["failed", "failed"]
    text = sweep.format_statuses(states)
    assert "FloatingPointError: nan; log /logs/41_0_0_log.err" in text and "attempt 3 of 3" in text
    said = []
    planned = sweep.submit(specs, executor="slurm", dry_run=True, log=said.append)
    assert [p["cell"] for p in planned] == ["ENOT, D=2"]  # D=4 has failed 3 times: 1 + max_retries
    assert any("not resubmitted (failed 3 times): ENOT, D=4" in m for m in said)

    monkeypatch.setattr(sweep, "_squeue", lambda: {"41_0": "PENDING", "42_0": "RUNNING"})
    assert [s["state"] for s in sweep.statuses(specs)] == ["pending", "running"]


@pytest.fixture
def quiet_jobs(w2bench_data, monkeypatch):
    """Jobs inherit this environment: the shared benchmark files, the CPU, no bars."""
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return w2bench_data


@pytest.mark.slow
def test_local_sweep_two_cells_then_the_notebook_gathers_them(tmp_path, quiet_jobs, capsys, monkeypatch):
    folder = tmp_path / "cells"
    args = ["--notebook", "w2_benchmark_hd", "--profile", "quick", "--folder", str(folder), "-p", "dims=[2, 4]",
            *TINY]
    start = time.perf_counter()
    assert sweep_cli.main([*args, "--executor", "local", "--gpus-per-job", "0", "--wait", "--poll-s", "1",
                           "--time-min", "10"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    print(out, f"\n{time.perf_counter() - start:.0f} s")
    assert "2 jobs submitted" in out and "2 cells: 2 done" in out

    # A second submission finds nothing to do; --status says done.
    assert sweep_cli.main([*args, "--executor", "local"]) == 0
    assert "0 jobs submitted" in capsys.readouterr().out
    assert sweep_cli.main([*args, "--status"]) == 0
    assert capsys.readouterr().out.count(" done ") == 2

    # The notebook's own call gathers the two cells without training anything.
    def no_training(*a, **k):
        raise AssertionError("the notebook trained a cell the sweep had stored")

    monkeypatch.setattr(cells, "train", no_training)
    params = _params("-p", "dims=[2, 4]", *TINY)
    records = hd_table.run_table(params["rows"], params["dims"], budget=sweep.hd_budget(params), folder=folder,
                                 key=jax.random.key(params["seed"]), peer=False, baselines=False, progress=False)
    stored = [cells.load_cell(folder, "ENOT", d) for d in (2, 4)]
    assert [list(v) for v in records["values"]] == [s["values"] for s in stored]
    assert all(v is not None and 0 < v < 100 for s in stored for v in s["values"])


def _wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.05):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.mark.slow
def test_killed_or_preempted_job_resumes_to_the_uninterrupted_values(tmp_path, quiet_jobs):
    """Three copies of one cell in three folders: one runs through; one's process is SIGKILLed after its
    first checkpoint and, submitted again, resumes there; one is preempted (submitit's USR2) and requeued
    by submitit within the same job. All three end with the same values."""
    params = _params("-p", "dims=[2]", *TINY)
    budget = dataclasses.replace(sweep.hd_budget(params), enot_steps=2000, chunk_size=100)
    whole, killed, preempted = (sweep.hd_cells(params, tmp_path / name / "cells", budget=budget)[0]
                                for name in ("whole", "killed", "preempted"))
    options = dict(executor="local", gpus_per_job=0, time_min=10, log=lambda m: None)
    sweep.submit([whole, killed, preempted], **options)

    for spec, sig in ((killed, signal.SIGKILL), (preempted, signal.SIGUSR2)):
        _wait_for(spec.path.with_suffix(".ckpt.npz").exists, 300, f"the first checkpoint of {spec.path.parent}")
        os.kill(json.loads(sweep._status_path(spec).read_text())["pid"], sig)
    _wait_for(lambda: sweep.statuses([killed])[0]["state"] == "failed", 60, "the killed job to end")
    state, = sweep.statuses([killed])
    assert "killed or lost" in state["error"] and "checkpoint kept" in state["error"], state
    assert cells.load_cell(killed.path.parent, killed.row, killed.dim) is None

    again = sweep.submit([killed], **options)
    assert [p["resume"] for p in again] == [True]
    final = sweep.wait([whole, killed, preempted], poll_s=0.5, timeout_s=600, progress=False, **options)
    assert [s["state"] for s in final] == ["done"] * 3, final
    assert [s["attempts"] for s in final] == [1, 2, 1]  # a requeue at preemption is not a retry
    err, out = Path(final[2]["log"]).read_text(), Path(final[2]["log"]).with_suffix(".out").read_text()
    assert "Caught signal SIGUSR2" in err, err[-2000:]
    assert out.count("cell ENOT, D=2, job") == 2 and "resuming from its checkpoint" in out, out[-2000:]
    a, b, c = sweep.cells_of([whole, killed, preempted])
    assert a["values"] == b["values"] == c["values"], (a["values"], b["values"], c["values"])  # bit-exact resume
    assert not killed.path.with_suffix(".ckpt.npz").exists()


ABLATION_TINY = ["-p", "dims=[2]", "-p", "taus=[0.5, 0.9]", "-p", "lams=[0.0, 1.0]", "-p", "num_steps=60",
                 "-p", "num_seeds=2", "-p", "hidden=[16]", "-p", "batch_size=64", "-p", "n_eval=512"]
POT_TINY = ["-p", "num_steps=30", "-p", "num_seeds=2", "-p", "chunk_size=10", "-p", "sweep_lams=[0.1]",
            "-p", "sweep_seeds=1"]


def _notebook_params(name: str, overrides: list[str]) -> dict:
    notebook = discover()[name]
    return {**parameters_of(notebook), **resolve_parameters(notebook, "quick", parse_overrides(overrides[1::2]))}


def test_runs_are_planned_from_the_notebooks_parameters(tmp_path, w2bench_data):
    """The ablation has one run per D, the POT/VAE comparison one per model and per λ of its sweep; another
    configuration is another checkpoint file, so it never conflicts with a stored run."""
    params = _notebook_params("enot2024_ablation", ABLATION_TINY + ["-p", "dims=[2, 4]"])
    specs = sweep.plan("enot2024_ablation", params, tmp_path)
    assert [s.name for s in specs] == ["grid_D2", "grid_D4"]
    assert [s.describe() for s in specs] == ["60 steps x 2 seeds"] * 2
    other = sweep.plan("enot2024_ablation", {**params, "num_steps": 61}, tmp_path)
    assert {s.key for s in specs}.isdisjoint(s.key for s in other)
    assert [s["state"] for s in sweep.statuses(specs)] == ["missing", "missing"]

    params = _notebook_params("vegan2017_pot_vs_vae", POT_TINY + ["-p", "sweep_lams=[0.1, 1.0]"])
    specs = sweep.plan("vegan2017_pot_vs_vae", params, tmp_path)
    assert [s.name for s in specs] == ["VAE", "WAE-MMD", "WAE-GAN", "WAE-MMD_lam0.1", "WAE-MMD_lam1"]
    assert [s.run.num_seeds for s in specs] == [2, 2, 2, 1, 1]


def _notebook_assignments(name: str, targets: tuple[str, ...], namespace: dict) -> dict:
    """Evaluate the notebook's own ``target = ...`` statements (in its order) in ``namespace``."""
    nb = json.loads(notebooks_dir(f"{name}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or "parameters" in cell["metadata"].get("tags", []):
            continue
        for node in ast.parse("".join(cell["source"])).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) in targets:
                namespace[node.targets[0].id] = eval(compile(ast.Expression(node.value), name, "eval"), namespace)
    missing = [t for t in targets if t not in namespace]
    assert not missing, f"{name} has no statement assigning {missing}"
    return namespace


def test_the_sweep_builds_the_notebooks_runs(tmp_path, w2bench_data):
    """A job trains exactly the run the notebook trains (same checkpoint name, so the same fingerprint)."""
    from otlib.enot2024 import ablation
    from otlib.vegan2017 import comparison

    params = _notebook_params("enot2024_ablation", ABLATION_TINY)
    ns = _notebook_assignments("enot2024_ablation", ("runs",), {"grid_runs": ablation.grid_runs, **params})
    assert [s.key for s in sweep.plan("enot2024_ablation", params, tmp_path)] == \
        [run.checkpoint(tmp_path).name for run in ns["runs"].values()]

    params = _notebook_params("vegan2017_pot_vs_vae", POT_TINY)
    ns = _notebook_assignments("vegan2017_pot_vs_vae", ("comparison", "model_plan"),
                               {"setup": comparison.setup, "model_runs": comparison.model_runs, **params})
    keys = [s.key for s in sweep.plan("vegan2017_pot_vs_vae", params, tmp_path)]
    assert keys[:3] == [run.checkpoint(tmp_path).name for run in ns["model_plan"].values()]


@pytest.mark.slow
def test_local_sweep_of_training_runs_then_the_notebooks_read_them_back(tmp_path, quiet_jobs, capsys):
    """The ablation grid (one run per D) and the POT/VAE models and λ sweep (one run each) as local jobs; the
    notebooks' own calls then return the stored runs without a training step, with the jobs' values."""
    from otlib.enot2024.ablation import grid_runs
    from otlib.vegan2017.comparison import model_runs, setup, sweep_runs

    folder = tmp_path / "ablation"
    args = ["--notebook", "enot2024_ablation", "--profile", "quick", "--folder", str(folder), *ABLATION_TINY]
    assert sweep_cli.main([*args, "--executor", "local", "--gpus-per-job", "0", "--wait", "--poll-s", "1",
                           "--time-min", "10"]) == 0, capsys.readouterr()
    assert "1 cells: 1 done" in capsys.readouterr().out
    p = _notebook_params("enot2024_ablation", ABLATION_TINY)
    run = grid_runs(p["dims"], p["taus"], p["lams"], num_steps=p["num_steps"], num_seeds=p["num_seeds"],
                    batch_size=p["batch_size"], hidden=p["hidden"], learning_rate=p["learning_rate"],
                    n_eval=p["n_eval"], seed=p["seed"])[2]
    result = run.train(folder, progress=False)
    assert result.steps == result.start_step == 60 and result.train_s > 0  # read back, with the job's time
    assert result.final("l2_uvp").shape == (2, 4) and np.isfinite(result.final("l2_uvp")).all()

    folder = tmp_path / "pot"
    p = _notebook_params("vegan2017_pot_vs_vae", POT_TINY)
    specs = sweep.plan("vegan2017_pot_vs_vae", p, folder)
    final = sweep.wait(specs, poll_s=1, timeout_s=900, progress=False, executor="local", gpus_per_job=0,
                       time_min=10, max_parallel=2, log=lambda m: None)
    assert [s["state"] for s in final] == ["done"] * 4, sweep.format_statuses(final)
    comparison = setup(p["data_name"], architecture=p["architecture"], hidden=p["hidden"],
                       latent_dim=p["latent_dim"], batch_size=p["batch_size"], learning_rate=p["learning_rate"],
                       lr_decay_epochs=p["lr_decay_epochs"])
    common = dict(seed=p["seed"], num_steps=p["num_steps"], chunk_size=p["chunk_size"])
    runs = [*model_runs(comparison, num_seeds=p["num_seeds"], lam_mmd=p["lam_mmd"], lam_gan=p["lam_gan"],
                        adversary_hidden=p["adversary_hidden"], adversary_lr=p["adversary_lr"], **common).values(),
            *sweep_runs(comparison, sweep_lams=p["sweep_lams"], sweep_seeds=p["sweep_seeds"], **common).values()]
    for run in runs:
        result = run.train(folder, progress=False)
        assert result.steps == result.start_step == 30, run.name  # read back, not trained
        assert np.isfinite(result.final("reconstruction")).all(), run.name
