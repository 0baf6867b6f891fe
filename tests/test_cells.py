"""Resumable table cells and the papers' cell format."""

from __future__ import annotations

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
