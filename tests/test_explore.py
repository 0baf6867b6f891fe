"""The 2-D explorer (otlib.report.explore): its settings, its compile keys, and one real ENOT run driven
through the explorer's own entry point, as the Train button drives it."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.data.toy2d import AMOS_PAIRS, ENOT_PAIRS
from otlib.report import explore
from otlib.report.explore import Settings


def test_pairs_are_amos_ten_and_the_enot_tutorial_ones():
    assert explore.PAIRS[:10] == AMOS_PAIRS and len(AMOS_PAIRS) == 10
    assert set(ENOT_PAIRS) <= set(explore.PAIRS)


@pytest.mark.parametrize("bad, message", [
    ({"pair": "nowhere"}, "unknown 2-D pair"),
    ({"method": "sinkhorn"}, "unknown method"),
    ({"amortization": "magic"}, "unknown amortization row"),
    ({"cost": "euclidean"}, "unknown cost"),
    ({"steps": 150}, "multiple of 100"),
    ({"steps": 0}, "multiple of 100"),
    ({"batch_size": 0}, "batch_size"),
])
def test_settings_refuse_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        Settings(**bad)


def test_learning_rate_defaults_to_the_method_s():
    assert Settings(method="w2ot").lr == explore.LEARNING_RATES["w2ot"]
    assert Settings(method="enot").lr == explore.LEARNING_RATES["enot"]
    assert Settings(method="enot", learning_rate=0.5).lr == 0.5


def test_compile_key_ignores_the_seed_and_the_other_method_s_knobs():
    base = Settings(method="enot")
    assert explore.compile_key(base) == explore.compile_key(dataclasses.replace(base, seed=7))
    assert explore.compile_key(base) == explore.compile_key(dataclasses.replace(base, amortization="cycle_none"))
    assert explore.compile_key(base) != explore.compile_key(dataclasses.replace(base, tau=0.9))
    assert explore.compile_key(base) != explore.compile_key(dataclasses.replace(base, steps=200))
    w2ot = Settings(method="w2ot")
    assert explore.compile_key(w2ot) == explore.compile_key(dataclasses.replace(w2ot, tau=0.5, cost="pnorm_3"))
    assert explore.compile_key(w2ot) != explore.compile_key(dataclasses.replace(w2ot, amortization="cycle_none"))


def test_build_makes_each_method_for_one_pair():
    w2ot = explore.build(Settings(method="w2ot", pair="gauss_sq", steps=300))
    assert w2ot.name.startswith("w2ot") and w2ot.config[1] == ("gauss_sq",) and w2ot.config[2] == ("gauss_sq",)
    enot = explore.build(Settings(method="enot", cost="pnorm_1.5", tau=0.9, lam=0.3))
    assert enot.name.startswith("enot") and enot.config.tau == 0.9 and enot.config.lam == 0.3
    assert enot.config.cost == explore.COSTS["pnorm_1.5"]


def test_explorer_trains_like_its_button(monkeypatch):
    """Two presses of Train through :meth:`Explorer.train`: the first compiles, the second (another seed)
    says it reuses the compiled step; both learn maps far better than doing nothing, and the ENOT maps
    are the cost's twist of the drawn potentials (T = x - grad f for the quadratic cost, Eq. 11)."""
    pytest.importorskip("ipywidgets")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    ui = explore.Explorer(Settings(method="enot", pair="moons", steps=400, batch_size=128, seed=3))
    statuses = []
    original = ui._set_status
    monkeypatch.setattr(ui, "_set_status", lambda text: (statuses.append(text), original(text)))
    first = ui.train()
    assert ui.runs == 1 and ui.outcome is first
    assert ui.progress.value == ui.progress.max == 400 and ui.progress.bar_style == "success"
    assert "Done: 400 steps" in ui.status.value
    assert not first.diverged and first.result.steps == 400
    s = first.sinkhorn
    assert np.isfinite([s["forward"], s["inverse"], s["source_target"]]).all(), s
    assert s["forward"] < 0.3 * s["source_target"] and s["inverse"] < 0.3 * s["source_target"], s
    assert len(first.figure.axes) == 5 and first.figure.axes[1].get_title().startswith("$T")
    assert statuses[0].startswith("Compiling the training step"), statuses
    x = first.maps.pair.source(jax.random.key(0), 64)
    grad_f = jax.grad(lambda z: jnp.sum(first.maps.potential(z)))(x)
    np.testing.assert_allclose(first.maps.forward(x), x - grad_f, rtol=1e-5, atol=1e-5)

    statuses.clear()
    second = ui.train(seed=4)
    assert statuses[0].startswith("Reusing the compiled step"), statuses
    assert ui.runs == 2 and second.settings.seed == 4 and ui.controls["seed"].value == 4
    assert not np.allclose(second.result.history["loss"], first.result.history["loss"])
    assert "Reusing" not in " ".join(statuses[1:])


def test_explorer_refuses_an_unknown_control():
    pytest.importorskip("ipywidgets")
    ui = explore.Explorer()
    with pytest.raises(ValueError, match="unknown setting"):
        ui.settings(temperature=3)
    ui.controls["method"].value = "w2ot"
    assert ui.controls["tau"].disabled and not ui.controls["amortization"].disabled
    assert ui.controls["learning_rate"].value == explore.LEARNING_RATES["w2ot"]
