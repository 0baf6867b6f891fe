"""python -m otlib.sweep --executor slurm against a real single-node Slurm started on this machine.

The fixture writes a ``slurm.conf`` (one node, ``localhost``, with this machine's cores and memory; one
partition), starts ``munged``, ``slurmctld`` and ``slurmd`` in the foreground as children of this process,
and on every exit path cancels the cluster's jobs and stops the three daemons. ``.ci/run`` installs Debian's
``slurm-wlm`` and ``munge``; where they are missing or the daemons do not start, the tests are skipped with
the reason (and the daemons' last log lines), never passed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from otlib.bench import cells
from otlib import sweep as sweep_cli

DAEMONS = ("munged", "slurmctld", "slurmd")


def _which(name: str) -> str | None:
    """``name`` on ``$PATH`` or in the system folders (daemons live in /usr/sbin, not always on a user's path)."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.8)
    return 1024


def _conf(root: Path) -> str:
    return "\n".join([
        "ClusterName=otlibtest",
        "SlurmctldHost=localhost(127.0.0.1)",
        "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={root}/munge/sock",
        f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log", f"SlurmdLogFile={root}/log/slurmd.log",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
        "SchedulerType=sched/backfill", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "ReturnToService=2", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={_mem_mb()} State=UNKNOWN",
        "PartitionName=otlib Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        ""])


def _tail(path: Path, n: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def slurm(request):
    """A running single-node Slurm; yields the folder of its configuration and logs."""
    missing = [d for d in (*DAEMONS, "sbatch", "squeue", "scancel", "sinfo") if _which(d) is None]
    if missing:
        pytest.skip(f"SLURM NOT TESTED: {', '.join(missing)} not installed (.ci/run installs Debian's slurm-wlm "
                    f"and munge: apt-get install -y slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("SLURM NOT TESTED: starting munged, slurmctld and slurmd here needs root")
    key = Path("/etc/munge/munge.key")
    root = Path(tempfile.mkdtemp(prefix="otlib-slurm-"))
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir()
    root.chmod(0o755)
    (root / "munge").chmod(0o755)
    if key.exists():
        shutil.copy(key, root / "munge" / "munge.key")
    else:
        (root / "munge" / "munge.key").write_bytes(os.urandom(128))
    (root / "munge" / "munge.key").chmod(0o600)
    conf = root / "slurm.conf"
    conf.write_text(_conf(root))
    old_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    procs: list[subprocess.Popen] = []

    def teardown():
        # Cancel this cluster's jobs first (a failed test may leave some), then stop the daemons.
        subprocess.run(["scancel", "--user", str(os.geteuid())], capture_output=True, timeout=30)
        end = time.monotonic() + 30
        while time.monotonic() < end and subprocess.run(["squeue", "-h"], capture_output=True, text=True,
                                                         timeout=30).stdout.strip():
            time.sleep(0.5)
        for proc in reversed(procs):
            _stop(proc)
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
        shutil.rmtree(root, ignore_errors=True)

    request.addfinalizer(teardown)
    out = open(root / "log" / "daemons.out", "w")
    sock = root / "munge" / "sock"
    commands = {
        "munged": ["munged", "-F", "--force", f"--socket={sock}", f"--key-file={root}/munge/munge.key",
                   f"--pid-file={root}/munge/pid", f"--seed-file={root}/munge/seed",
                   f"--log-file={root}/log/munged.log"],
        "slurmctld": ["slurmctld", "-D", "-f", str(conf)],
        "slurmd": ["slurmd", "-D", "-f", str(conf), "-N", "localhost"],
    }
    start = time.monotonic()
    for name, command in commands.items():
        command = [_which(command[0]), *command[1:]]
        procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        if name == "munged":
            end = time.monotonic() + 20
            while not sock.exists() and time.monotonic() < end and procs[-1].poll() is None:
                time.sleep(0.1)
    end = time.monotonic() + 60
    state = ""
    while time.monotonic() < end:
        if any(p.poll() is not None for p in procs):
            break
        info = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
        state = info.stdout.strip()
        if state == "idle":
            break
        time.sleep(0.5)
    if state != "idle":
        dead = [n for n, p in zip(commands, procs) if p.poll() is not None]
        pytest.skip(f"SLURM NOT TESTED: the single-node cluster did not come up (node state {state!r}, "
                    f"exited: {dead or 'none'}):\n{_tail(root / 'log' / 'daemons.out')}\n"
                    f"{_tail(root / 'log' / 'slurmctld.log')}\n{_tail(root / 'log' / 'slurmd.log')}")
    print(f"single-node Slurm up in {time.monotonic() - start:.1f} s ({os.cpu_count()} CPUs)", file=sys.stderr)
    yield root


@pytest.mark.slow
def test_slurm_sweep_of_two_cells(slurm, w2bench_data, tmp_path, monkeypatch, capsys):
    """Two HD-table cells (ENOT at D = 2 and 4, a few hundred steps) as one Slurm job array; --wait follows
    them until both are stored; --status then says done with their job ids."""
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    folder = tmp_path / "cells"
    args = ["--notebook", "w2_benchmark_hd", "--profile", "quick", "--folder", str(folder), "-p", "dims=[2, 4]",
            "-p", "rows=['ENOT']", "-p", "enot_steps=300", "-p", "enot_seeds=2", "-p", "enot_hidden=[32, 32]",
            "-p", "batch_size=128", "-p", "n_eval=1024", "-p", "peer=false"]
    slurm_options = ["--executor", "slurm", "--partition", "otlib", "--gpus-per-job", "0", "--cpus-per-job", "1",
                     "--time-min", "15", "--max-parallel", "2"]
    start = time.perf_counter()
    assert sweep_cli.main([*args, *slurm_options]) == 0
    assert "2 jobs submitted" in capsys.readouterr().out
    assert sweep_cli.main([*args, "--status"]) == 0
    queued = capsys.readouterr().out
    assert all(line.split()[0] in ("pending", "running", "done") for line in queued.splitlines()
               if "ENOT, D=" in line), queued
    # Submitting again while they are queued submits nothing; --wait follows them to the end.
    code = sweep_cli.main([*args, *slurm_options, "--wait", "--poll-s", "2"])
    out = capsys.readouterr().out
    wall = time.perf_counter() - start
    assert code == 0, out
    assert "0 jobs submitted" in out and "2 cells: 2 done" in out, out
    assert sweep_cli.main([*args, "--status"]) == 0
    status = capsys.readouterr().out
    with capsys.disabled():
        print(f"\n--- Slurm sweep: {wall:.0f} s from submission to both cells stored; --status printed while "
              f"queued:\n{queued}--- and at the end:\n{status}")
    lines = [line for line in status.splitlines() if "ENOT, D=" in line]
    assert len(lines) == 2 and all(line.split()[0] == "done" and "_" in line.split("job ")[1] for line in lines), \
        status  # array tasks: job ids like 12_0
    for dim in (2, 4):
        record = cells.load_cell(folder, "ENOT", dim)
        assert record["steps"] == 300 and record["seeds"] == 2
        assert all(v is not None and 0 < v < 100 for v in record["values"]), record["values"]
    logs = sorted((tmp_path / "jobs" / "logs").glob("*_log.err"))
    assert len(logs) == 2, logs


@pytest.mark.slow
def test_slurm_job_preempted_is_requeued_and_resumes(slurm, w2bench_data, tmp_path, monkeypatch):
    """A running job gets Slurm's preemption signals (SIGTERM, then SIGUSR2, as ``scancel --signal`` sends them
    and as submitit's own tests do): submitit checkpoints the call and asks Slurm to requeue the job, which
    runs again under the same job id and resumes from the driver's checkpoint. It ends with the values of
    the same cell run without interruption, in one attempt (a requeue is not a retry)."""
    import dataclasses
    import json

    from otlib.bench import sweep
    from otlib.report.reproduce import discover, parameters_of, parse_overrides, resolve_parameters

    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    notebook = discover()["w2_benchmark_hd"]
    overrides = ["dims=[2]", "rows=['ENOT']", "enot_seeds=2", "enot_hidden=[32, 32]", "batch_size=128",
                 "n_eval=1024", "peer=false"]
    params = {**parameters_of(notebook), **resolve_parameters(notebook, "quick", parse_overrides(overrides))}
    budget = dataclasses.replace(sweep.hd_budget(params), enot_steps=3000, chunk_size=100)
    whole, preempted = (sweep.hd_cells(params, tmp_path / name / "cells", budget=budget)[0]
                        for name in ("whole", "preempted"))
    options = dict(executor="slurm", partition="otlib", gpus_per_job=0, cpus_per_job=1, time_min=15,
                   log=lambda m: None)
    start = time.perf_counter()
    sweep.submit([whole, preempted], **options)
    end = time.monotonic() + 600
    while not preempted.checkpoint.exists():
        assert time.monotonic() < end, "the job wrote no checkpoint in 10 minutes"
        time.sleep(0.2)
    job_id = json.loads(sweep._status_path(preempted).read_text())["job_id"]
    for sig in ("SIGTERM", "USR2"):
        subprocess.run(["scancel", job_id, "--signal", sig], check=True, capture_output=True, timeout=60)
    final = sweep.wait([whole, preempted], poll_s=2, timeout_s=900, progress=False, **options)
    wall = time.perf_counter() - start
    assert [s["state"] for s in final] == ["done", "done"], sweep.format_statuses(final)
    assert [s["attempts"] for s in final] == [1, 1]
    err = Path(final[1]["log"]).read_text()
    out = Path(final[1]["log"]).with_suffix(".out").read_text()
    assert "Caught signal SIGUSR2" in err and "preempted" in err, err[-2000:]
    assert out.count(f"cell ENOT, D=2, job {job_id}") == 2 and "resuming from its checkpoint" in out, out[-2000:]
    a, b = sweep.cells_of([whole, preempted])
    assert a["values"] == b["values"], (a["values"], b["values"])  # the resumed run is the uninterrupted one
    print(f"\n--- Slurm preemption: job {job_id} requeued and resumed; {wall:.0f} s for both cells")
