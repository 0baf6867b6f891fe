"""Training curves of the table cells: a stored cell keeps its loss per chunk and its evaluations, which the HD
notebook draws."""

from __future__ import annotations

import jax
import numpy as np

from otlib.bench import cells
from test_train import regression_method


def test_a_stored_cell_keeps_its_training_curves(tmp_path):
    record = cells.run_cell(tmp_path, "toy", 4, regression_method, steps=100, seeds=2, key=jax.random.key(0),
                            metric="w_error", chunk_size=20, eval_every=50, progress=False)
    history, evals = record["history"], record["evals"]
    assert history["step"][-1] == 100 and np.all(np.diff(history["step"]) > 0) and len(history["step"]) >= 5
    assert np.asarray(history["loss"]).shape == (len(history["step"]), 2)
    assert evals["step"] == [50, 100] and np.asarray(evals["w_error"]).shape == (2, 2)
    assert np.asarray(history["loss"])[-1].mean() < np.asarray(history["loss"])[0].mean()
    again = cells.load_cell(tmp_path, "toy", 4)  # the curves are part of the checksummed, validated record
    assert again["history"] == history
