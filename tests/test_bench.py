"""The race's readings (``otlib.bench.enot``): FLOPs and paired rates on a step whose cost is known, and the
interleaving of race 1 with OTT-JAX's run."""

import dataclasses
import math
import sys

import jax
import jax.numpy as jnp
import pytest

from otlib import w2bench
from otlib.bench.enot import (MATMUL_SHAPE, SAME_AS_OTT, PeerENOT, matmul_gflops_per_s, paired_rates, race_otlib,
                              race_peer, step_flops)
from otlib.core.method import Method

M, K, N = MATMUL_SHAPE
LAYERS = 8


def _matmul_method() -> Method:
    """A "training step" that is a chain of ``LAYERS`` matmuls of the race's shape, and nothing else."""
    w = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (K, N)))[0]

    def step(h: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
        del key
        for _ in range(LAYERS):
            h = h @ w
        return h, {"loss": jnp.sum(h)}

    return Method(name="matmul", init=lambda key: jax.random.normal(key, (M, K)), step=step)


def test_step_flops_counts_the_matmuls():
    assert step_flops(_matmul_method()) == pytest.approx(2.0 * M * K * N * LAYERS, rel=0.05)


def test_paired_rates_of_a_matmul_step_is_about_one():
    """A step made of the chain's own products runs at the chain's rate: a share near 1, whatever the machine."""
    method = _matmul_method()
    rates = paired_rates(method, method.init(jax.random.key(0)), step_flops(method), steps=20, rounds=5)
    assert 0.6 < rates["share"] < 1.6, rates
    assert all(math.isfinite(v) and v > 0 for v in rates.values())


def test_matmul_rate_is_positive_and_finite():
    assert 0 < matmul_gflops_per_s(depth=8, repeats=2) < math.inf


def test_a_peer_that_fails_to_import_is_skipped_with_its_reason(monkeypatch, capsys):
    """OTT-JAX installed but one of its imports failing (as on a machine with its own JAX stack): null, and why."""
    monkeypatch.setitem(sys.modules, "ott.neural.methods.expectile_neural_dual", None)  # import -> ImportError
    assert race_peer(bench=None, steps=2, seed=0) is None
    out = capsys.readouterr().out
    assert "OTT-JAX not run" in out and "ott.neural.methods.expectile_neural_dual" in out and "peers" in out


def test_race_one_interleaves_the_peer_chunk_by_chunk(w2bench_data):
    """Race 1's interleaving: after each of otlib's chunks OTT-JAX catches up to the same step, on its own clock."""
    pytest.importorskip("ott.neural.methods.expectile_neural_dual")
    bench = w2bench.hd(2)
    peer = PeerENOT.start(bench, seed=0, batch_size=64)
    assert int(peer.solver.state_f.step) == 2 and peer.steps == 0  # the two compiling steps are not timed
    seen: list[int] = []

    def advance(step: int) -> None:
        seen.append(step)
        peer.advance_to(step)

    ours = race_otlib(dataclasses.replace(SAME_AS_OTT, batch_size=64), bench, 30, seed=0, chunk_size=10,
                      after_chunk=advance)
    peer.advance_to(30)  # already there: a no-op
    assert seen == [10, 20, 30] and peer.steps == 30
    assert int(peer.solver.state_f.step) == 32  # every step updates both networks
    theirs = peer.result()
    assert theirs["steps"] == ours["steps"] == 30
    assert theirs["train_s"] > 0 and math.isfinite(theirs["l2_uvp"]) and math.isfinite(ours["l2_uvp"])
