"""Resumable table cells and the papers' cell format."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import jax
import pytest

from otlib.bench import cells
from otlib.core.train import train
from test_train import regression_method


def test_format_cell():
    assert cells.format_cell([1.0, 3.0]) == "2.00 ± 1.00"
    assert cells.format_cell([None, None]) == ">100"
    assert cells.format_cell([150.0, 170.0]) == ">100"
    assert cells.format_cell([1.0, None, 3.0]) == "2.00 ± 1.00 †1"


def test_finished_cells_are_skipped(tmp_path):
    key = jax.random.key(0)
    record = cells.run_cell(tmp_path, "Toy & SGD", 4, regression_method, steps=100, seeds=2, key=key,
                             metric="w_error", chunk_size=50, progress=False)
    assert cells.cell_path(tmp_path, "Toy & SGD", 4).name == "Toy_SGD__D4.json"
    assert len(record["values"]) == 2 and record["steps"] == 100

    def must_not_build():
        raise AssertionError("a finished cell was recomputed")

    again = cells.run_cell(tmp_path, "Toy & SGD", 4, must_not_build, steps=100, seeds=2, key=key,
                            metric="w_error", chunk_size=50, progress=False)
    assert again == record
    with pytest.raises(AssertionError, match="recomputed"):  # another budget is not silently reused
        cells.run_cell(tmp_path, "Toy & SGD", 4, must_not_build, steps=200, seeds=2, key=key, metric="w_error")


def test_an_interrupted_cell_resumes_from_its_checkpoint(tmp_path):
    key, method = jax.random.key(3), regression_method()
    ckpt = cells.cell_path(tmp_path, "toy", 2).with_suffix(".ckpt.npz")
    train(method, key, 200, num_seeds=2, chunk_size=50, checkpoint=ckpt, until=100, progress=False)  # "killed"
    record = cells.run_cell(tmp_path, "toy", 2, lambda: method, steps=200, seeds=2, key=key, metric="w_error",
                             chunk_size=50, progress=False)
    full = train(method, key, 200, num_seeds=2, chunk_size=50, progress=False)
    assert record["values"] == pytest.approx(full.final("w_error").tolist(), rel=0, abs=0)
    assert not ckpt.exists()


# ------------------------------------------------------------------------------------------------
# Stored records are validated on load (schema and checksum); an invalid one is reported and recomputed.


def _valid_record(folder, row="toy", dim=2) -> dict:
    return cells.store_cell(folder, row, dim, {"steps": 100, "seeds": 2, "tag": "", "metric": "w_error",
                                               "values": [0.5, None], "diverged": [False, True],
                                               "train_s": 1.0, "compile_s": None, "wall_s": 2.0})


def _json(path):
    return json.loads(path.read_text())


_INVALID = {
    "truncated JSON": lambda text, rec: text[: len(text) // 2],
    "empty object": lambda text, rec: "{}",
    "not an object": lambda text, rec: "[1, 2]",
    "steps as a string": lambda text, rec: json.dumps(_resign({**rec, "steps": "100"})),
    "values of the wrong length": lambda text, rec: json.dumps(_resign({**rec, "values": [0.5]})),
    "a value as a string": lambda text, rec: json.dumps(_resign({**rec, "values": ["0.5", None]})),
    "another row's record": lambda text, rec: json.dumps(_resign({**rec, "row": "other"})),
    "plausible edited value": lambda text, rec: json.dumps({**rec, "values": [0.05, None]}),
    "no checksum": lambda text, rec: json.dumps({k: v for k, v in rec.items() if k != "sha256"}),
    "not UTF-8": lambda text, rec: "\udcff",
}


def _resign(record: dict) -> dict:
    """A record with a correct checksum (as a writer with a bug would store it): the schema must catch it."""
    return {**record, "sha256": cells._record_hash(record)}


@pytest.mark.parametrize("case", list(_INVALID))
def test_invalid_record_is_reported_by_name_and_not_used(tmp_path, case):
    _valid_record(tmp_path)
    path = cells.cell_path(tmp_path, "toy", 2)
    text = path.read_text()
    bad = _INVALID[case](text, _json(path))
    path.write_bytes(bad.encode("utf-8", "surrogateescape"))
    with pytest.warns(cells.InvalidCellWarning, match=str(path.name)) as record:
        assert cells.load_cell(tmp_path, "toy", 2) is None
    assert str(path) in str(record[0].message) and "recomputed" in str(record[0].message)


def test_valid_record_loads_as_stored(tmp_path):
    stored = _valid_record(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cells.load_cell(tmp_path, "toy", 2) == stored
    assert "sha256" not in stored and "sha256" in _json(cells.cell_path(tmp_path, "toy", 2))


def test_edited_cell_is_recomputed_not_reused(tmp_path):
    key = jax.random.key(0)
    record = cells.run_cell(tmp_path, "toy", 2, regression_method, steps=100, seeds=2, key=key, metric="w_error",
                            chunk_size=50, progress=False)
    path = cells.cell_path(tmp_path, "toy", 2)
    tampered = {**_json(path), "values": [0.001, 0.002]}  # plausible, and cheaper than training
    path.write_text(json.dumps(tampered))
    built = []
    with pytest.warns(cells.InvalidCellWarning, match="checksum"):
        again = cells.run_cell(tmp_path, "toy", 2, lambda: built.append(1) or regression_method(), steps=100,
                               seeds=2, key=key, metric="w_error", chunk_size=50, progress=False)
    assert built == [1]
    assert again["values"] == record["values"] and again["values"] != [0.001, 0.002]
    assert cells.load_cell(tmp_path, "toy", 2) == again


def test_checkpoint_of_another_configuration_is_discarded(tmp_path):
    """A cell stopped mid-run under one budget, then run under another: recomputed, not a crash."""
    key = jax.random.key(0)
    ckpt = cells.cell_path(tmp_path, "toy", 2).with_suffix(".ckpt.npz")
    train(regression_method(), key, 300, num_seeds=2, chunk_size=50, checkpoint=ckpt, until=100, progress=False)
    with pytest.warns(cells.InvalidCellWarning, match="another configuration"):
        record = cells.run_cell(tmp_path, "toy", 2, regression_method, steps=100, seeds=2, key=key,
                                metric="w_error", chunk_size=50, progress=False)
    assert record["steps"] == 100 and not ckpt.exists()


# ------------------------------------------------------------------------------------------------
# One writer per cell: a second run stops at once with a clear message, or waits.

_HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from pathlib import Path
import jax
from otlib.bench import cells
from test_train import regression_method

folder, ready = Path(sys.argv[1]), Path(sys.argv[1]) / "ready"

def build():  # runs inside the cell's lock: say so, then hold it a while
    ready.write_text("locked")
    time.sleep(float(sys.argv[3]))
    return regression_method()

cells.run_cell(folder, "toy", 2, build, steps=100, seeds=2, key=jax.random.key(0), metric="w_error",
               chunk_size=50, progress=False, tag="budget A")
"""


def _start_holder(folder, hold_s: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), str(Path(__file__).parent), str(hold_s)],
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    deadline = time.monotonic() + 120
    while not (folder / "ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the first run never took the cell's lock"
        time.sleep(0.05)
    return proc


def test_second_run_on_a_busy_cell_stops_at_once_then_waits(tmp_path):
    first = _start_holder(tmp_path, hold_s=3.0)
    try:
        built = []
        t0 = time.perf_counter()
        with pytest.raises(cells.CellBusyError, match=rf"'toy' D=2 .*pid {first.pid}") as exc:
            cells.run_cell(tmp_path, "toy", 2, lambda: built.append(1), steps=200, seeds=2, key=jax.random.key(0),
                           metric="w_error", chunk_size=50, progress=False, tag="budget B")
        assert time.perf_counter() - t0 < 2.0 and built == []
        assert str(cells.cell_path(tmp_path, "toy", 2)) in str(exc.value)
        # wait=True: blocks until the first run has stored the cell, then reuses it (same budget)
        again = cells.run_cell(tmp_path, "toy", 2, lambda: built.append(1), steps=100, seeds=2,
                               key=jax.random.key(0), metric="w_error", chunk_size=50, progress=False,
                               tag="budget A", wait=True)
        assert built == [] and again["tag"] == "budget A" and again["steps"] == 100
        assert first.wait(timeout=120) == 0
    finally:
        first.kill()
        first.wait()
    assert cells.load_cell(tmp_path, "toy", 2) == again


def test_a_killed_run_does_not_leave_its_cell_locked(tmp_path):
    first = _start_holder(tmp_path, hold_s=60.0)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    record = cells.run_cell(tmp_path, "toy", 2, regression_method, steps=100, seeds=2, key=jax.random.key(0),
                            metric="w_error", chunk_size=50, progress=False)
    assert record["steps"] == 100


def test_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path):
    errors = []

    def other():
        try:
            with cells.cell_lock(tmp_path, "toy", 2):
                pass
        except cells.CellBusyError as err:
            errors.append(err)

    with cells.cell_lock(tmp_path, "toy", 2):
        with cells.cell_lock(tmp_path, "toy", 2):  # store_cell inside run_cell takes it again
            pass
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(errors) == 1
    with cells.cell_lock(tmp_path, "toy", 2):  # released
        pass
