"""The training progress bar says when it is compiling, instead of sitting at 0 with no word."""

from __future__ import annotations

import jax

from otlib.core.train import train
from test_train import regression_method


def test_the_bar_says_compiling_then_shows_the_loss(monkeypatch, capsys):
    monkeypatch.setenv("TQDM_DISABLE", "0")
    monkeypatch.setenv("OTLIB_PROGRESS", "text")
    train(regression_method(), jax.random.key(0), 60, chunk_size=25, eval_every=50, progress=True)
    err = capsys.readouterr().err
    assert "compiling the 25-step chunk" in err and "compiling the 10-step chunk" in err
    assert "evaluating (compiling the evaluation)" in err
    assert err.rindex("compiling the 25-step chunk") < err.rindex("loss=")
