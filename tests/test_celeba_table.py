"""The CelebA64 methods and table: Amos's conv potential, the W2OT and ENOT CelebA configurations, the table's
bookkeeping (otlib.nn.conv, otlib.amos2023.w2ot, otlib.enot2024.enot, otlib.bench.celeba_table)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from otlib.amos2023 import w2ot
from otlib.bench import celeba_table
from otlib.core.method import Method
from otlib.enot2024 import enot
from otlib.nn.conv import ConvPotential
from otlib.w2bench import celeba

SMALL = (4, 4)


def _images(key: jax.Array, n: int) -> jax.Array:
    return jax.random.uniform(key, (n, 3 * 64 * 64), minval=-1.0, maxval=1.0)


def test_conv_potential_shapes_and_quadratic_term() -> None:
    x = _images(jax.random.key(0), 3)
    plain, full = ConvPotential(widths=SMALL, quadratic=False), ConvPotential(widths=SMALL)
    params = jax.jit(full.init)(jax.random.key(1), x)["params"]
    assert params["log_alpha"] == 0.0 and "log_alpha" not in jax.eval_shape(plain.init, jax.random.key(1), x)["params"]
    apply_full, apply_plain = jax.jit(full.apply), jax.jit(plain.apply)
    out = apply_full({"params": params}, x)
    assert out.shape == (3,) and apply_full({"params": params}, x[0]).shape == ()
    np.testing.assert_allclose(apply_full({"params": params}, x[0]), out[0], rtol=1e-6)
    without = apply_plain({"params": {k: v for k, v in params.items() if k != "log_alpha"}}, x)
    np.testing.assert_allclose(out - without, 0.5 * jnp.sum(x * x, axis=-1), rtol=1e-5)
    default = jax.eval_shape(ConvPotential().init, jax.random.key(1), x[:1])["params"]  # Amos's: 64x64 to one value
    assert [default[f"Conv_{i}"]["kernel"].shape[-1] for i in range(6)] == [128, 128, 256, 512, 1024, 1]


def test_paper_configurations() -> None:
    w = w2ot.celeba_config()
    assert (w.potential, w.learning_rate, w.pretrain_lr, w.num_steps, w.batch_size, w.cycle_weight) == \
        ("conv", 1e-4, 1e-4, 50_001, 64, 1e4)
    assert w.pretrain_bounds == (-1.0, 1.0) and w.amortization == "regression_lbfgs"
    e = enot.paper_celeba_config()
    assert (e.network, e.parameterisation, e.tau, e.lam, e.batch_size, e.num_steps) == \
        ("conv", "correlation", 0.99, 1.0, 64, 80_000)
    with pytest.raises(ValueError, match="network"):
        enot.ENOTConfig(network="conv", parameterisation="map")
    with pytest.raises(ValueError, match="network"):
        enot.ENOTConfig(network="cnn")


def test_w2ot_conv_amortizer_starts_as_the_gradient_of_f() -> None:
    """Amos's image setting: H is a second conv potential, used through its gradient, copied from f."""
    x = _images(jax.random.key(0), 4)
    pool = celeba.SamplePool(x, 0.9 * x, jnp.float32(1.0), jnp.float32(1.0))
    config = w2ot.celeba_config(widths=SMALL, amortization="objective_none", pretrain_steps=1, batch_size=2,
                                num_steps=2)
    f, h = w2ot.networks(config, pool.dim)
    assert isinstance(f, ConvPotential) and isinstance(h, ConvPotential)
    state = jax.jit(w2ot.w2ot(config, pool.sample_source, pool.sample_target, dim=pool.dim).init)(jax.random.key(1))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), state.theta, state.phi))
    np.testing.assert_allclose(w2ot.amortize(state, x), w2ot.transport(state, x), rtol=1e-6, atol=1e-6)


def test_enot_conv_potentials() -> None:
    config = enot.paper_celeba_config(hidden=SMALL)
    net = enot._potential_net(config, 12288)
    assert isinstance(net, ConvPotential) and not net.quadratic and tuple(net.widths) == SMALL


def test_per_pixel_loss_keeps_the_total() -> None:
    method = Method(name="m", init=lambda key: jnp.zeros(()),
                    step=lambda s, key: (s + 1, {"loss": jnp.float32(2.0 * celeba.DIM)}))
    wrapped = celeba_table._per_pixel_loss(method)
    state, metrics = wrapped.step(jnp.zeros(()), jax.random.key(0))
    assert float(state) == 1.0 and float(metrics["loss"]) == 2.0 and float(metrics["loss_total"]) == 2.0 * celeba.DIM
    assert dataclasses.replace(wrapped, step=method.step) == method


def test_tables_from_records() -> None:
    records = pd.DataFrame([
        {"row": "identity", "pair": "Early", "values": [30.0], "cos": [0.0], "diverged": [False], "wall_s": 0.0,
         "ms_per_step": None},
        {"row": "ENOT", "pair": "Early", "values": [0.3, 0.5], "cos": [0.99, 0.97], "diverged": [False, False],
         "wall_s": 12.0, "ms_per_step": 40.0},
        {"row": "W2OT Conv: Regression & L-BFGS", "pair": "Early", "values": [None, 0.62], "cos": [None, 0.9],
         "diverged": [True, False], "wall_s": 20.0, "ms_per_step": 80.0},
    ])
    uvp = celeba_table.l2_uvp_table(records)
    assert list(uvp.index) == ["identity", "ENOT", "W2OT Conv: Regression & L-BFGS"] and list(uvp.columns) == ["Early"]
    assert uvp.loc["ENOT", "Early"] == "0.40 ± 0.10"
    assert uvp.loc["W2OT Conv: Regression & L-BFGS", "Early"].endswith("†1")
    assert celeba_table.cos_table(records).loc["ENOT", "Early"] == "0.980 ± 0.010"
    assert celeba_table.runtime_table(records).loc["ENOT", "Early"] == "12 s | 40 ms"
    ratio = celeba_table.published_table(records).set_index("row")["ratio"]
    assert ratio["ENOT"] == pytest.approx(0.4 / 0.32) and ratio["identity"] == pytest.approx(30 / 31.2)
    assert ratio["W2OT Conv: Regression & L-BFGS"] == pytest.approx(0.62 / 0.62)
    with pytest.raises(ValueError, match="unknown rows"):
        celeba_table.run_table(["W2OT NN: Objective & None"], {}, budget=celeba_table.Budget(), folder=".",
                               key=jax.random.key(0))
