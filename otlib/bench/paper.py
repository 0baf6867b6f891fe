"""Long runs at the papers' budgets, kept as committed records; time to accuracy against OTT-JAX.

Three commands (``python -m otlib.bench <command> --help``):

* ``record --row ROW --dim D``: trains one HD-table cell (Buzun et al. 2024, arXiv:2403.03777, §5.1,
  Table 4; Amos 2023, arXiv:2210.12153, §5) with the driver (:func:`otlib.core.train.train`), all seeds
  at once, checkpointing every chunk to ``results/records/<name>/checkpoint.npz`` (ignored by git). After
  every evaluation (forward L2-UVP %, Korotin et al. 2021, arXiv:2106.01954, §4) it atomically rewrites
  the small JSON record ``records/<name>.json`` (tracked): the configuration, the history (step,
  wall-clock seconds, the process's CPU seconds and the machine's load average, which tell a run slowed
  by other jobs on shared cores from a slow one, L2-UVP per seed, loss per seed), the final values per
  seed, the provenance (commit, CPU model and cores, library versions, dates, wall time) and the
  status (``running``, ``finished``, ``stopped``, with the reason). It stops once the mean L2-UVP over seeds is at most
  :data:`TARGET_FACTOR` times the published value, at ``--max-steps`` (the paper's budget by default;
  the cosine schedule spans it) or at ``--max-wall-s`` (a unit of a few hours at most). Run again with
  the same arguments, it resumes from its checkpoint (a run stopped at its wall-time cap goes on when given
  a larger ``--max-wall-s``); where the checkpoint is absent (another machine) it says so and restarts.
  ``--row "ENOT (OTT-JAX 0.6.0)"`` records the peer, OTT-JAX's ``ExpectileNeuralDual`` with its defaults,
  the same way (its states saved with ``flax.serialization``).
* ``paper``: reads every record and prints the table of recorded cells and one JSON line
  ``{"cells": [{"row", "dim", "steps", "seeds", "wall_s", "l2_uvp", "published", "ratio"}, ...]}``; with
  ``--markdown``, the README's table of them instead.
* ``accuracy --dim D``: otlib's ENOT (:data:`otlib.bench.enot.RECOMMENDED`) and OTT-JAX's
  ``ExpectileNeuralDual`` (:class:`otlib.bench.enot.PeerENOT`) trained on the same pair, interleaved in
  stretches as race 1 of :mod:`otlib.bench.enot` is, each until it reaches the target L2-UVP (default
  twice the published ENOT cell) or a time cap. Each side's clock includes its compilation and its own
  training; OTT-JAX's evaluations, and otlib's reading of them, are off the clocks. Ends with one JSON
  line with ``otlib_s``, ``peer_s`` (null when it never got there), ``ratio`` (``peer_s / otlib_s``) and
  both final L2-UVPs.

:func:`plot_time_to_accuracy` draws L2-UVP against wall-clock seconds from the records.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import jax
import numpy as np

from otlib import w2bench
from otlib.bench import cells
from otlib.core.files import atomic_write_bytes, atomic_write_text
from otlib.core.paths import ROOT, results_dir, shared_dir
from otlib.core.train import train

__all__ = ["TARGET_FACTOR", "PEER_ROW", "RECORD_ROWS", "record_name", "published_value", "run_record", "load_records",
           "row_label", "paper_cells", "paper_table", "markdown_table", "plot_time_to_accuracy", "accuracy_race",
           "main_record", "main_paper", "main_accuracy"]

TARGET_FACTOR = 1.1
"""A record stops once its mean L2-UVP over seeds is at most this times the published value."""

PEER_ROW = "ENOT (OTT-JAX 0.6.0)"
RECORD_ROWS = ("ENOT", "W2OT NN: Regression & L-BFGS", "W2OT ICNN: Regression & L-BFGS", PEER_ROW)
"""Rows ``record`` trains (:data:`otlib.bench.hd_table.ROWS`' names): ENOT, W2OT's best row (Regression &
L-BFGS) with the NN and ICNN potentials, and OTT-JAX's ENOT with its defaults (the peer)."""

_PAPER_STEPS = {"ENOT": 200_000, "W2OT": 250_000}
"""The papers' budgets: ENOT 200k steps (Buzun et al. 2024, Table 4); W2OT 250k after pretraining (Amos 2023)."""
_SAFE = re.compile(r"[^a-z0-9]+")


def records_dir() -> Path:
    """``records/`` at the repository root: the committed records."""
    return ROOT / "records"


def record_name(row: str, dim: int) -> str:
    """``enot_D16``, ``w2ot_nn_regression_l_bfgs_D2``: the file-safe name of a (row, D) record."""
    return f"{_SAFE.sub('_', row.lower()).strip('_')}_D{dim}"


def published_value(row: str, dim: int) -> Optional[float]:
    """The published forward L2-UVP (%) the row is compared with: ENOT's cell, or W2OT's best row."""
    key = "ENOT" if row.startswith("ENOT") else "W2OT best" if row.startswith("W2OT") else row
    return cells.PUBLISHED_HD.get(key, {}).get("values", {}).get(int(dim))


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and not dataclasses.fields(value):
        return repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return repr(value)


_FLAT_LIST = re.compile(r"\[\s+([^\[\]{}]*?)\s+\]")


def record_json(record: dict[str, Any]) -> str:
    """Indented JSON with every list of numbers or strings on one line."""
    text = json.dumps(_jsonable(record), indent=1)
    return _FLAT_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def _floats(values: Any) -> list[Optional[float]]:
    return [None if not math.isfinite(float(v)) else round(float(v), 6) for v in np.ravel(np.asarray(values))]


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD") or None, "otlib_modified": bool(git("status", "--porcelain", "otlib"))}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> dict[str, Any]:
    """Commit, machine and library versions of this process."""
    import flax
    import optax

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {**_git_commit(), "cpu": _cpu_model(), "cores": cores, "backend": jax.default_backend(),
            "device": str(jax.devices()[0].device_kind), "python": platform.python_version(),
            "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}


def _use_shared_benchmark_files() -> None:
    """Point ``$OTLIB_DATA_DIR`` at ``../shared/w2bench/Mix3toMix10`` when it is unset and that folder exists."""
    folder = shared_dir("w2bench", "Mix3toMix10")
    if "OTLIB_DATA_DIR" not in os.environ and folder.is_dir():
        os.environ["OTLIB_DATA_DIR"] = str(folder)


def _enot_overrides(row: str, hidden: Optional[Sequence[int]], tau: Optional[float],
                    lam: Optional[float]) -> dict[str, Any]:
    """The given ``hidden``, ``tau`` and ``lam`` as :func:`otlib.enot2024.enot.paper_hd_config` overrides;
    refused for any row but otlib's ENOT."""
    overrides = {k: v for k, v in (("hidden", tuple(hidden) if hidden else None), ("tau", tau), ("lam", lam))
                 if v is not None}
    if overrides and row != "ENOT":
        raise ValueError(f"--{'/--'.join(overrides)} apply to otlib's ENOT only (W2OT's widths follow its rule "
                         f"[2b, 2b, b], b = max(D, 32); the peer keeps OTT-JAX's defaults)")
    return overrides


def _build(row: str, bench: Any, *, steps: int, hidden: Optional[Sequence[int]], n_eval: int,
           tau: Optional[float] = None, lam: Optional[float] = None):
    """The method of ``row`` at the papers' settings, its schedule spread over ``steps``; ``hidden``, ``tau``
    and ``lam`` replace ENOT's (:func:`otlib.enot2024.enot.paper_hd_config`) where given."""
    if row not in RECORD_ROWS:
        raise ValueError(f"unknown row {row!r}; choose from {list(RECORD_ROWS)}")
    overrides = _enot_overrides(row, hidden, tau, lam)
    if row == "ENOT":
        from otlib.enot2024 import enot as enot_method

        config = enot_method.paper_hd_config(num_steps=steps, **overrides)
        return enot_method.enot(config, bench.sample_source, bench.sample_target, dim=bench.dim,
                                eval_fn=w2bench.evaluator(bench, enot_method.transport, enot_method.inverse, n=n_eval))
    from otlib.bench import hd_table

    return hd_table.ROWS[row](bench, hd_table.Budget(w2ot_steps=steps, n_eval=n_eval))


class _Stop(Exception):
    """Raised from the driver's ``after_chunk`` hook to end a run early (its checkpoint is already written)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _checkpoint_extra(path: Path) -> Optional[dict[str, Any]]:
    """The JSON part of a driver checkpoint (step, logs), read without the arrays; None if absent."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["__meta__"]))["extra"]


def _array(value: Any) -> np.ndarray:
    return np.asarray(value["__array__"], dtype=float) if isinstance(value, dict) else np.asarray(value, dtype=float)


def _mean(values: Sequence[Optional[float]]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite and len(finite) == len(values) else math.nan


class _Recorder:
    """The record file of one run: opened (fresh or resumed), updated after every chunk and evaluation, closed."""

    def __init__(self, path: Path, ckpt: Path, record: dict[str, Any], log) -> None:
        self.path, self.ckpt, self.record, self.log = path, ckpt, record, log
        self.offset, self.cpu_offset = float(record["wall_s"]), float(record["cpu_s"])
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    @classmethod
    def open(cls, path: Path, ckpt: Path, config: dict[str, Any], *, checkpoint_step: Optional[int],
             fields: dict[str, Any], max_wall_s: float, log) -> tuple[Optional[_Recorder], dict[str, Any]]:
        """``(recorder, record)``; the recorder is None when the record is already done under ``config``.

        ``checkpoint_step`` is the step of the run's checkpoint (None: none). A checkpoint without a record
        of the same configuration is removed and the run restarts.
        """
        name = path.stem
        old = json.loads(path.read_text()) if path.exists() else None
        same = old is not None and old.get("config") == config
        capped = same and str(old.get("stop_reason")).startswith("wall-time cap")
        if same and old["status"] != "running" and (not capped or old["wall_s"] >= max_wall_s):
            log(f"{name}: already {old['status']} ({old.get('stop_reason')}) at step {old['steps']}; nothing to do")
            return None, old
        resume = same and checkpoint_step is not None
        if resume:
            log(f"{name}: resuming from {ckpt} at step {checkpoint_step}")
        elif same:
            log(f"{name}: checkpoint {ckpt} is absent (another machine, or removed): restarting from step 0")
        elif old is not None:
            log(f"{name}: the record {path} has another configuration; starting afresh")
        if checkpoint_step is not None and not resume:
            log(f"{name}: checkpoint at step {checkpoint_step} without a matching record: restarting from step 0")
            ckpt.unlink()
        start = checkpoint_step if resume else 0
        here = provenance()
        runs = old["provenance"]["runs"] if resume else []
        runs.append({"started": utc_now(), "from_step": start, **{k: here[k] for k in ("commit", "otlib_modified")}})
        record: dict[str, Any] = {
            "name": name, **fields, "config": config, "max_wall_s": max_wall_s, "status": "running",
            "stop_reason": None, "steps": start, "wall_s": float(old["wall_s"]) if resume else 0.0,
            "cpu_s": float(old.get("cpu_s") or 0.0) if resume else 0.0,
            "final": old.get("final") if resume else None,
            "history": [h for h in old["history"] if h["step"] <= start] if resume else [],
            "provenance": {**here, "started": old["provenance"]["started"] if resume else utc_now(), "updated": utc_now(),
                           "runs": runs, "checkpoint": str(ckpt.relative_to(ROOT)) if ckpt.is_relative_to(ROOT)
                           else str(ckpt)},
        }
        recorder = cls(path, ckpt, record, log)
        recorder.write()
        return recorder, record

    def write(self) -> None:
        self.record["provenance"]["updated"] = utc_now()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, record_json(self.record))

    def clocks(self) -> tuple[float, float]:
        return self.offset + time.perf_counter() - self.t0, self.cpu_offset + time.process_time() - self.c0

    def chunk(self, step: int) -> None:
        """After a chunk without an evaluation: the step and clocks; stop at the wall-time cap."""
        wall, cpu = self.clocks()
        self.record.update(steps=step, wall_s=round(wall, 2), cpu_s=round(cpu, 2))
        self.write()
        if wall > self.record["max_wall_s"]:
            raise _Stop(f"wall-time cap ({self.record['max_wall_s']:.0f} s)")

    def evaluation(self, step: int, values: dict[str, list], loss: Optional[list] = None) -> None:
        """After an evaluation: a history entry, the finals; stop at the target or the wall-time cap."""
        wall, cpu = self.clocks()
        rec = self.record
        rec.update(steps=step, wall_s=round(wall, 2), cpu_s=round(cpu, 2))
        entry = {"step": step, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "load": round(os.getloadavg()[0], 2),
                 "l2_uvp": values["l2_uvp"], "loss": loss}
        if "l2_uvp_inverse" in values:
            entry["l2_uvp_inverse"] = values["l2_uvp_inverse"]
        rec["history"].append(entry)
        rec["final"] = {"step": step, **values}
        mean, published, factor = _mean(values["l2_uvp"]), rec["published"], rec["config"]["target_factor"]
        self.write()
        self.log(f"{rec['name']}: step {step}, {wall:.0f} s, L2-UVP {values['l2_uvp']} (mean {mean:.4g}, "
                 f"published {published})")
        if published is not None and mean <= factor * published:
            raise _Stop(f"target reached (mean L2-UVP {mean:.4g} <= {factor} x published {published})")
        if wall > rec["max_wall_s"]:
            raise _Stop(f"wall-time cap ({rec['max_wall_s']:.0f} s)")

    def close(self, status: str, reason: str) -> dict[str, Any]:
        rec = self.record
        rec["status"], rec["stop_reason"] = status, reason
        rec["provenance"]["runs"][-1].update(ended=utc_now(), to_step=rec["steps"])
        self.write()
        self.log(f"{rec['name']}: {status} ({reason}) at step {rec['steps']}, {rec['wall_s']:.0f} s")
        return rec


def run_record(row: str, dim: int, *, seeds: int = 2, seed: int = 0, hidden: Optional[Sequence[int]] = None,
               tau: Optional[float] = None, lam: Optional[float] = None, max_steps: Optional[int] = None,
               max_wall_s: float = 7200.0, eval_every: int = 2000,
               chunk_size: int = 1000, n_eval: int = 2 ** 14, name: Optional[str] = None,
               folder: Optional[Path] = None, checkpoint_folder: Optional[Path] = None,
               target_factor: float = TARGET_FACTOR, note: str = "", log=print) -> dict[str, Any]:
    """Train or resume the record of (``row``, ``dim``); return the record (also written to its file).

    A record whose status is ``finished`` or ``stopped`` under the same configuration is returned as it is
    (one stopped at its wall-time cap goes on when ``max_wall_s`` is larger). :data:`PEER_ROW` trains
    OTT-JAX's ``ExpectileNeuralDual`` (:func:`_run_peer`).
    """
    _enot_overrides(row, hidden, tau, lam)  # refuse misplaced settings before loading anything
    _use_shared_benchmark_files()
    family = "ENOT" if row.startswith("ENOT") else "W2OT"
    steps = int(max_steps or _PAPER_STEPS[family])
    name = name or record_name(row, dim)
    path = Path(folder or records_dir()) / f"{name}.json"
    folder_ck = Path(checkpoint_folder or results_dir("records", name))
    bench = w2bench.hd(dim)
    fields = {"row": row, "dim": dim, "published": published_value(row, dim), "note": note}
    if row == PEER_ROW:
        return _run_peer(bench, path, folder_ck / "peer.msgpack", fields, seeds=seeds, seed=seed, steps=steps,
                         max_wall_s=max_wall_s, eval_every=eval_every, n_eval=n_eval, target_factor=target_factor,
                         log=log)
    ckpt = folder_ck / "checkpoint.npz"
    method = _build(row, bench, steps=steps, hidden=hidden, n_eval=n_eval, tau=tau, lam=lam)
    config = {"row": row, "dim": dim, "seeds": seeds, "seed": seed, "max_steps": steps,
              "paper_steps": _PAPER_STEPS[family], "eval_every": eval_every,
              "n_eval": n_eval, "target_factor": target_factor, "method": _jsonable(method.config)}
    extra = _checkpoint_extra(ckpt)
    recorder, record = _Recorder.open(path, ckpt, config, checkpoint_step=int(extra["step"]) if extra else None,
                                      fields=fields, max_wall_s=max_wall_s, log=log)
    if recorder is None:
        return record

    def after_chunk(step: int) -> None:
        meta = _checkpoint_extra(ckpt) if step % eval_every == 0 or step == steps else None
        if not meta or not meta["eval_steps"] or int(meta["eval_steps"][-1]) != step:
            recorder.chunk(step)
            return
        values = {k: _floats(_array(v)) for k, v in meta["eval_rows"][-1].items()}
        loss = _floats(_array(meta["history_rows"][-1]["loss"])) if meta["history_rows"] else None
        recorder.evaluation(step, values, loss)

    key = jax.random.fold_in(jax.random.key(seed), dim)
    try:
        result = train(method, key, steps, num_seeds=seeds, chunk_size=min(chunk_size, eval_every),
                       eval_every=eval_every, checkpoint=ckpt, progress=False, after_chunk=after_chunk)
    except _Stop as stop:
        return recorder.close("stopped", stop.reason)
    wall, cpu = recorder.clocks()
    final = {k: _floats(result.final(k)) for k in result.evals if k != "step"}
    record.update(steps=result.steps, wall_s=round(wall, 2), cpu_s=round(cpu, 2), diverged=result.diverged.tolist(),
                  final={"step": result.steps, **final})
    if not record["history"] or record["history"][-1]["step"] != result.steps:
        record["history"].append({"step": result.steps, "wall_s": record["wall_s"], "cpu_s": record["cpu_s"],
                                  "l2_uvp": final["l2_uvp"], "loss": None})
    return recorder.close("finished", "all seeds diverged" if result.diverged.all() else f"budget ({steps} steps)")


def _peer_batches(sample, key: jax.Array, n: int, start: int):
    """:func:`otlib.bench.batches` from batch ``start`` on (a resumed peer draws the batches it would have)."""
    draw = jax.jit(lambda k: sample(k, n))
    i = start
    while True:
        yield draw(jax.random.fold_in(key, i))
        i += 1


def _run_peer(bench: Any, path: Path, ckpt: Path, fields: dict[str, Any], *, seeds: int, seed: int, steps: int,
              max_wall_s: float, eval_every: int, n_eval: int, target_factor: float, log) -> dict[str, Any]:
    """OTT-JAX's ENOT with its defaults (:class:`otlib.bench.enot.PeerENOT`, batch 1024), seeds ``seed``,
    ``seed + 1``, ... advanced ``eval_every`` steps at a time in turn and evaluated together; its states
    (``flax.serialization``, msgpack) are the checkpoint."""
    from flax import serialization

    from otlib.bench.enot import PeerENOT, SAME_AS_OTT

    if eval_every % 2:
        raise ValueError(f"the peer alternates its two directions step by step: eval_every must be even, "
                         f"got {eval_every}")
    config = {"row": PEER_ROW, "dim": bench.dim, "seeds": seeds, "seed": seed, "max_steps": steps,
              "paper_steps": _PAPER_STEPS["ENOT"], "eval_every": eval_every, "n_eval": n_eval,
              "target_factor": target_factor, "method": {"solver": "ott.neural.methods.expectile_neural_dual."
                                                         "ExpectileNeuralDual (defaults)", **_jsonable(SAME_AS_OTT)}}
    saved = serialization.msgpack_restore(ckpt.read_bytes()) if ckpt.exists() else None
    if saved is not None and json.loads(saved["config"]) != config:
        saved = None
    recorder, record = _Recorder.open(path, ckpt, config, checkpoint_step=int(saved["step"]) if saved else None,
                                      fields=fields, max_wall_s=max_wall_s, log=log)
    if recorder is None:
        return record
    start = record["steps"]
    peers = []
    for i in range(seeds):
        peer = PeerENOT.start(bench, seed + i, SAME_AS_OTT.batch_size)
        if peer is None:
            raise RuntimeError("OTT-JAX's neural solvers do not import; install the peers extra")
        if start:
            states = saved["seeds"][str(i)]
            peer.solver.state_f = serialization.from_state_dict(peer.solver.state_f, states["f"])
            peer.solver.state_g = serialization.from_state_dict(peer.solver.state_g, states["g"])
            keys = jax.random.split(jax.random.key(seed + i), 4)  # PeerENOT.start's batch keys; 2 warm-up batches
            peer.loaders = tuple(_peer_batches(s, k, SAME_AS_OTT.batch_size, start + 2) for s, k in
                                 ((bench.sample_source, keys[1]), (bench.sample_target, keys[2])))
            peer.steps = start
        peers.append(peer)
    step = start
    try:
        while step < steps:
            step = min(step + eval_every, steps)
            for peer in peers:
                peer.advance_to(step)
            values = {"l2_uvp": _floats([w2bench.l2_uvp(jax.jit(p.solver.to_dual_potentials().transport), bench,
                                                        jax.random.key(10_000 + seed + i), n_eval)
                                         for i, p in enumerate(peers)])}
            blob = serialization.msgpack_serialize({"config": json.dumps(config), "step": step, "seeds": {
                str(i): {"f": serialization.to_state_dict(p.solver.state_f),
                         "g": serialization.to_state_dict(p.solver.state_g)} for i, p in enumerate(peers)}})
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(ckpt, blob)
            recorder.evaluation(step, values)
    except _Stop as stop:
        return recorder.close("stopped", stop.reason)
    return recorder.close("finished", f"budget ({steps} steps)")


# ----------------------------------------------------------------------------------------------------
# Reading the records.

def row_label(record: dict[str, Any]) -> str:
    """A record's row as the tables and the figure name it: the row, and for otlib's ENOT the expectile τ and
    weight λ where they are not the paper's (``ENOT (τ = 0.99, λ = 1)``), so that a record that varies them is
    not read as the paper's setting."""
    if record["row"] != "ENOT":
        return record["row"]
    from otlib.enot2024.enot import paper_hd_config

    paper, method = paper_hd_config(), record["config"]["method"]
    changed = [f"{symbol} = {method[field]:g}" for field, symbol in (("tau", "τ"), ("lam", "λ"))
               if method.get(field, getattr(paper, field)) != getattr(paper, field)]
    return f"ENOT ({', '.join(changed)})" if changed else "ENOT"


def load_records(folder: Optional[Path] = None) -> list[dict[str, Any]]:
    """Every ``records/*.json`` record, sorted by row (:func:`row_label`), D and budget."""
    folder = Path(folder or records_dir())
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return sorted(records, key=lambda r: (row_label(r), r["dim"], _schedule(r), r["name"]))


def paper_cells(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One cell per record: row (:func:`row_label`), D, steps (where it ended) and budget (its schedule's length),
    seeds, wall_s, mean L2-UVP (and std), published, ratio, status."""
    out = []
    for r in records:
        values = (r.get("final") or {}).get("l2_uvp") or []
        mean, std, ok = cells.mean_std(values) if values else (math.nan, math.nan, 0)
        mean = mean if ok else math.nan
        published = r.get("published")
        width = r["config"]["method"].get("hidden") or r["config"]["method"].get("widths")
        out.append({"row": row_label(r), "dim": r["dim"], "steps": r["steps"], "budget": _schedule(r),
                    "seeds": r["config"]["seeds"],
                    "wall_s": round(r["wall_s"], 1), "cpu_s": round(r.get("cpu_s") or 0.0, 1),
                    "l2_uvp": None if math.isnan(mean) else round(mean, 4),
                    "std": None if math.isnan(std) else round(std, 4), "published": published,
                    "ratio": round(mean / published, 3) if published and not math.isnan(mean) else None,
                    "status": r["status"], "stop_reason": r.get("stop_reason"), "width": width,
                    "machine": f"{r['provenance']['cpu']}, {r['provenance']['cores']} cores", "name": r["name"]})
    return out


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ours(cell: dict[str, Any], *, std_of_one_seed: bool = True) -> str:
    """A cell's mean L2-UVP ± std over seeds (``-`` when none is finite); without the std for one seed unless
    ``std_of_one_seed``."""
    if cell["l2_uvp"] is None:
        return "-"
    show_std = std_of_one_seed or cell["seeds"] > 1
    return f"{cell['l2_uvp']:.3f}" + (f" ± {cell['std'] or 0:.3f}" if show_std else "")


def print_table(cells_: Sequence[dict[str, Any]]) -> None:
    """The recorded cells as a text table."""
    head = (f"{'row':<32} {'D':>4} {'steps':>8} {'seeds':>5} {'wall':>9} {'CPU':>9} {'ours (%)':>16} "
            f"{'published':>9} {'ratio':>6}  status")
    print(head)
    for c in cells_:
        ours = _ours(c)
        wall, cpu = f"{c['wall_s'] / 60:.1f} min", f"{c['cpu_s'] / 60:.1f} min"
        print(f"{c['row']:<32} {c['dim']:>4} {c['steps']:>8} {c['seeds']:>5} {wall:>9} {cpu:>9} {ours:>16} "
              f"{_fmt(c['published'], '.2f'):>9} {_fmt(c['ratio'], '.2f'):>6}  {c['status']}"
              + (f" ({c['stop_reason']})" if c["stop_reason"] else ""))


def _schedule(record: dict[str, Any]) -> int:
    """The budget a record was given (its cosine schedule's length): ``max_steps`` of its configuration."""
    return int(record["config"]["max_steps"])


_ENDINGS = (("target", "target"), ("wall-time cap", "wall cap"), ("all seeds diverged", "diverged"))


def _ended(record: dict[str, Any]) -> str:
    """How a record's run ended, in a word: target, budget, wall cap, diverged, or running."""
    if record["status"] == "running":
        return "running"
    reason = str(record.get("stop_reason") or "")
    return next((word for prefix, word in _ENDINGS if reason.startswith(prefix)), "budget")


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """The recorded cells as the Markdown table the README shows (``python -m otlib.bench paper --markdown``
    prints it; a test holds the README's copy to the records): row, D, the budget (the cosine schedule's
    length), the step it ended at and why, seeds, wall time, ours (mean ± std over seeds), published, ratio,
    and the record's name."""
    lines = ["| row | D | budget (steps) | ended at | seeds | wall | ours L2-UVP (%) | published (%) | ratio "
             "| record |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for r, c in zip(records, paper_cells(records)):
        ours = _ours(c, std_of_one_seed=False)
        lines.append(f"| {c['row']} | {c['dim']} | {_schedule(r) / 1000:g}k | {c['steps'] / 1000:g}k ({_ended(r)}) "
                     f"| {c['seeds']} | {c['wall_s'] / 60:.0f} min | {ours} | {_fmt(c['published'], 'g')} "
                     f"| {_fmt(c['ratio'], '.2f')} | `{c['name']}` |")
    return "\n".join(lines) + "\n"


def paper_table(records: Sequence[dict[str, Any]]):
    """The recorded cells as a DataFrame: ours (mean ± std over seeds), published, ratio, the budget (the cosine
    schedule's length) and the step the run ended at, wall time, width, status and machine."""
    import pandas as pd

    rows = []
    for c in paper_cells(records):
        rows.append({"row": c["row"], "D": c["dim"], "ours L2-UVP (%)": _ours(c), "published (%)": c["published"],
                     "ratio": c["ratio"], "budget (steps)": c["budget"], "steps": c["steps"], "seeds": c["seeds"],
                     "wall (min)": round(c["wall_s"] / 60, 1), "CPU (min)": round(c["cpu_s"] / 60, 1),
                     "width": "x".join(map(str, c["width"] or [])) or "rule",
                     "status": c["status"] if not c["stop_reason"] else f"{c['status']}: {c['stop_reason']}",
                     "machine": c["machine"]})
    columns = ["row", "D", "ours L2-UVP (%)", "published (%)", "ratio", "budget (steps)", "steps", "seeds",
               "wall (min)", "CPU (min)", "width", "status", "machine"]
    return pd.DataFrame(rows, columns=columns).set_index(["row", "D"])


#: Line styles of a row's schedules, shortest first; dashes ("--") are the published values'.
_SCHEDULE_STYLES = ("-", ":", "-.", (0, (6, 1.5, 1, 1.5, 1, 1.5)))


def plot_time_to_accuracy(records: Sequence[dict[str, Any]], *, dims: Optional[Sequence[int]] = None,
                          clock: str = "wall_s", title: Optional[str] = None):
    """One panel per D: mean L2-UVP (%) over seeds against wall-clock seconds (log-log), a line per record
    (records of one row at one D told apart by their budget), its published value as a dashed horizontal line
    of the row's colour; one legend under the panels, so that none covers a curve. Returns the figure.

    ``clock="cpu_s"`` puts the process's CPU seconds (all its threads) on the x axis instead: the cost of a
    run whose wall time other jobs on the same cores stretched."""
    if clock not in ("wall_s", "cpu_s"):
        raise ValueError(f"clock must be 'wall_s' or 'cpu_s', got {clock!r}")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from otlib.w2bench.figures import plain_log_axis

    dims = sorted({r["dim"] for r in records} if dims is None else set(dims))
    rows = sorted({row_label(r) for r in records})
    colors = {row: f"C{i % 10}" for i, row in enumerate(rows)}
    fig, axes = plt.subplots(1, max(len(dims), 1), figsize=(3.4 * max(len(dims), 1), 3.9), squeeze=False,
                             layout="constrained")
    # A row recorded with several schedules: one line style per schedule length, the same in every panel.
    schedules = {row: sorted({_schedule(r) for r in records if row_label(r) == row}) for row in rows}
    handles: dict[str, Any] = {}
    for ax, dim in zip(axes[0], dims):
        # One line per value: ENOT's variants (other τ, λ) and OTT-JAX's ENOT share ENOT's published value, drawn
        # in the colour of the first row to name it (the rows are sorted, so ENOT's).
        published = set()
        for r in (r for r in records if r["dim"] == dim):
            row = row_label(r)
            hist = [(h.get(clock) or 0.0, _mean(h["l2_uvp"])) for h in r["history"]]
            hist = [(t, v) for t, v in hist if t > 0 and math.isfinite(v) and v > 0]
            steps = schedules[row]
            label = row if len(steps) == 1 else f"{row}, {_schedule(r):,}-step schedule"
            style = _SCHEDULE_STYLES[steps.index(_schedule(r)) % len(_SCHEDULE_STYLES)]
            if hist:
                (line,) = ax.plot(*zip(*hist), marker="o", ms=2.5, lw=1.2, color=colors[row], ls=style)
                handles.setdefault(label, line)
            if r.get("published") and r["published"] not in published:
                published.add(r["published"])
                ax.axhline(r["published"], color=colors[row], ls="--", lw=0.9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axis(ax.xaxis)
        plain_log_axis(ax.yaxis)
        ax.set_title(f"D = {dim}", fontsize=10)
        ax.set_xlabel("wall-clock seconds" if clock == "wall_s" else "CPU seconds (all threads)")
    axes[0][0].set_ylabel("forward L2-UVP (%), mean over seeds")
    handles["published value (the row's colour)"] = Line2D([], [], color="0.3", ls="--", lw=0.9)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(3, len(handles)),
               fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------------
# Time to accuracy against OTT-JAX's ENOT.

def accuracy_race(dim: int, *, target: Optional[float] = None, time_cap: float = 900.0, steps: int = 30_000,
                  seed: int = 0, stretch: Optional[int] = None, n_eval: int = 2 ** 14,
                  peer: bool = True, log=print) -> dict[str, Any]:
    """Time of each side to reach ``target`` L2-UVP (%) on ``hd(dim)``; see the module docstring.

    otlib trains :data:`otlib.bench.enot.RECOMMENDED` with its cosine schedule over ``steps``; both sides
    evaluate after every stretch of ``stretch`` steps (default :data:`otlib.bench.enot.INTERLEAVE_STEPS`).
    """
    import tempfile

    from otlib.bench import enot as enot_race
    from otlib.enot2024 import enot as enot_method

    _use_shared_benchmark_files()
    stretch = stretch or enot_race.INTERLEAVE_STEPS
    published = published_value("ENOT", dim)
    if target is None:
        if published is None:
            raise ValueError(f"no published ENOT value at D={dim}; give --target")
        target = 2.0 * published
    bench = w2bench.hd(dim)
    config = dataclasses.replace(enot_race.RECOMMENDED, num_steps=steps)
    method = enot_method.enot(config, bench.sample_source, bench.sample_target, dim=dim,
                              eval_fn=w2bench.evaluator(bench, enot_method.transport, n=n_eval))
    ours = {"s": None, "l2_uvp": math.nan, "clock": 0.0, "steps": 0}
    theirs = {"s": None, "l2_uvp": math.nan, "clock": 0.0, "steps": 0, "solver": None}

    t_start = time.perf_counter()
    if peer:
        theirs["solver"] = enot_race.PeerENOT.start(bench, seed)
        theirs["clock"] = time.perf_counter() - t_start  # its compilation (two warm-up steps)

    def peer_stretch(step: int) -> bool:
        """Advance OTT-JAX to ``step``; evaluate it off its clock; whether it is still racing."""
        p = theirs["solver"]
        if p is None or theirs["s"] is not None or theirs["clock"] > time_cap:
            return False
        before = p.train_s
        p.advance_to(step)
        theirs["clock"] += p.train_s - before
        theirs["steps"] = p.steps
        theirs["l2_uvp"] = p.result()["l2_uvp"]
        if theirs["l2_uvp"] <= target:
            theirs["s"] = theirs["clock"]
            log(f"OTT-JAX reached {target:.3g}% at step {step}, {theirs['clock']:.1f} s")
        return theirs["s"] is None and theirs["clock"] <= time_cap

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "race.npz"
        mark = {"t": time.perf_counter()}

        def after_chunk(step: int) -> None:
            ours["clock"] += time.perf_counter() - mark["t"]
            ours["steps"] = step
            meta = _checkpoint_extra(ckpt)
            if meta and meta["eval_steps"] and int(meta["eval_steps"][-1]) == step:
                ours["l2_uvp"] = float(_array(meta["eval_rows"][-1]["l2_uvp"])[0])
                if ours["s"] is None and ours["l2_uvp"] <= target:
                    ours["s"] = ours["clock"]
                    log(f"otlib reached {target:.3g}% at step {step}, {ours['clock']:.1f} s")
            peer_stretch(step)
            done = ours["s"] is not None or ours["clock"] > time_cap
            mark["t"] = time.perf_counter()
            if done:
                raise _Stop("otlib done")

        mark["t"] = time.perf_counter()
        try:
            train(method, jax.random.key(seed), steps, chunk_size=stretch, eval_every=stretch, checkpoint=ckpt,
                  progress=False, after_chunk=after_chunk)
        except _Stop:
            pass
    step = ours["steps"]
    while peer_stretch(step := step + stretch):
        pass
    ratio = theirs["s"] / ours["s"] if theirs["s"] is not None and ours["s"] else None
    return {"dim": dim, "target": target, "published": published, "time_cap_s": time_cap,
            "otlib_s": None if ours["s"] is None else round(ours["s"], 2),
            "peer_s": None if theirs["s"] is None else round(theirs["s"], 2),
            "ratio": None if ratio is None else round(ratio, 3),
            "otlib_l2_uvp": round(ours["l2_uvp"], 4), "peer_l2_uvp": None if math.isnan(theirs["l2_uvp"])
            else round(theirs["l2_uvp"], 4), "otlib_steps": ours["steps"], "peer_steps": theirs["steps"],
            "otlib_clock_s": round(ours["clock"], 2), "peer_clock_s": round(theirs["clock"], 2),
            "peer_run": theirs["solver"] is not None}


# ----------------------------------------------------------------------------------------------------
# Command lines.

def main_record(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otlib.bench record",
                                     description="Train (or resume) one HD-table cell at the paper's budget and "
                                                 "keep its record in records/<name>.json.")
    parser.add_argument("--row", default="ENOT", choices=RECORD_ROWS)
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="the run's key: fold_in(key(seed), D)")
    parser.add_argument("--hidden", type=int, nargs="+", default=None,
                        help="ENOT's hidden widths (default the paper's 512 512 512, stated for D >= 64)")
    parser.add_argument("--tau", type=float, default=None, help="ENOT's expectile τ (default the paper's 0.9)")
    parser.add_argument("--lam", type=float, default=None,
                        help="ENOT's regulariser weight λ (default the paper's 0.3)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="steps budget, and the cosine schedule's length (default the paper's: ENOT 200000, "
                             "W2OT 250000 after pretraining)")
    parser.add_argument("--max-wall-s", type=float, default=7200.0, help="stop after this much wall time (default 2 h)")
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--name", default=None, help="record name (default from row and D)")
    parser.add_argument("--note", default="", help="a sentence kept in the record (why this width, ...)")
    args = parser.parse_args(argv)
    record = run_record(args.row, args.dim, seeds=args.seeds, seed=args.seed, hidden=args.hidden, tau=args.tau,
                        lam=args.lam, max_steps=args.max_steps, max_wall_s=args.max_wall_s, eval_every=args.eval_every,
                        name=args.name, note=args.note)
    print(json.dumps({k: record[k] for k in ("name", "status", "stop_reason", "steps", "wall_s", "final")}))
    return 0


def main_paper(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otlib.bench paper",
                                     description="The table of every recorded cell, from records/*.json.")
    parser.add_argument("--folder", type=Path, default=None, help="records folder (default records/)")
    parser.add_argument("--markdown", action="store_true", help="print the README's Markdown table instead")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(load_records(args.folder)), end="")
        return 0
    table = paper_cells(load_records(args.folder))
    print_table(table)
    keys = ("row", "dim", "steps", "seeds", "wall_s", "l2_uvp", "published", "ratio")
    print(json.dumps({"cells": [{k: c[k] for k in keys} for c in table]}))
    return 0


def main_accuracy(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otlib.bench accuracy",
                                     description="Time for otlib's and OTT-JAX's ENOT to reach a target L2-UVP.")
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--target", type=float, default=None, help="L2-UVP %% (default 2x the published ENOT cell)")
    parser.add_argument("--time-cap", type=float, default=900.0, help="seconds of training per side (default 900)")
    parser.add_argument("--steps", type=int, default=30_000, help="otlib's cosine schedule length (default 30000)")
    parser.add_argument("--stretch", type=int, default=None, help="steps between evaluations (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peer", action="store_true", help="run otlib only")
    args = parser.parse_args(argv)
    out = accuracy_race(args.dim, target=args.target, time_cap=args.time_cap, steps=args.steps, seed=args.seed,
                        stretch=args.stretch, peer=not args.no_peer)
    print(f"target {out['target']:.4g}%: otlib {out['otlib_s']} s ({out['otlib_l2_uvp']}% at step "
          f"{out['otlib_steps']}), "
          f"OTT-JAX {out['peer_s']} s ({out['peer_l2_uvp']}% at step {out['peer_steps']}), ratio {out['ratio']}")
    print(json.dumps(out))
    return 0
