"""An interactive 2-D explorer: train W2OT (Amos 2023, arXiv:2210.12153) or ENOT (Buzun et al. 2024,
arXiv:2403.03777) on one 2-D pair and draw the panels of the papers' 2-D figures.

:func:`run` trains one :class:`Settings` with the shared driver (:func:`otlib.core.train.train`) and returns
an :class:`Outcome`: the run, the learned maps as :class:`otlib.amos2023.plots2d.DualMaps`, the debiased
Sinkhorn divergences of Amos's 2-D metric (:func:`otlib.amos2023.toy2d_training.sinkhorn_table`) and the
figure of :func:`otlib.amos2023.plots2d.overview` (samples, push-forward, pull-back, potential contours).
:class:`Explorer` puts ipywidgets controls and a Train button around :meth:`Explorer.train`, which is
what the button calls and what code calls headless.

Compilation: every setting but the seed enters the compiled step (widths, batch and the pair as shapes;
learning rate, schedule length, tau and lambda as constants). The driver compiles a step per call, so
:func:`enable_compilation_cache` turns on JAX's persistent compilation cache: a run that differs from an
earlier one only by its seed loads the compiled programs instead of compiling them again.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, Optional

import jax
import numpy as np

from otlib.amos2023 import plots2d, toy2d_training
from otlib.amos2023.amortization import ROWS
from otlib.amos2023.plots2d import DualMaps
from otlib.core.paths import ROOT
from otlib.core.train import RunResult, train
from otlib.data.toy2d import AMOS_PAIRS, ENOT_PAIRS
from otlib.data.toy2d import pair as get_pair
from otlib.enot2024 import enot as enot_method
from otlib.ot.costs import PNormP, SqEuclidean

__all__ = ["CHUNK", "COSTS", "METHODS", "PAIRS", "Explorer", "Outcome", "Settings", "build", "compile_key",
           "enable_compilation_cache", "run"]

PAIRS: tuple[str, ...] = AMOS_PAIRS + ENOT_PAIRS
"""Amos's ten 2-D pairs, then the three of the OTT-JAX ENOT tutorial."""
METHODS: tuple[str, ...] = ("w2ot", "enot")
COSTS: dict[str, Any] = {"sq_euclidean": SqEuclidean(), "pnorm_1.5": PNormP(1.5), "pnorm_3": PNormP(3.0)}
"""ENOT's translation-invariant costs with a Legendre transform (Buzun et al. 2024, Eq. 11-12), so both maps
and both potentials exist to be drawn."""
LEARNING_RATES: dict[str, float] = {"w2ot": 1e-2, "enot": 2e-3}
"""Each method's learning rate in the quick 2-D notebooks (``amos2023_2d``, ``enot2024_costs``)."""
CHUNK = 100
"""Steps per compiled chunk: the progress bar moves this often; steps are a multiple of it."""
EPSILON = 0.05
"""Sinkhorn's ε in units of the target's variance (as ``amos2023_2d``)."""
SAMPLES = 512
"""Samples per measure for the Sinkhorn divergence (w2ot and the ENOT tutorial)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """One run of the explorer.

    Attributes:
      pair: a name of :data:`PAIRS`.
      method: ``"w2ot"`` or ``"enot"``.
      amortization: W2OT's amortization row (:data:`otlib.amos2023.amortization.ROWS`).
      tau, lam: ENOT's expectile and the regulariser's weight λ (Eq. 13).
      cost: ENOT's cost, a key of :data:`COSTS`.
      steps: training steps, a multiple of :data:`CHUNK`.
      batch_size: samples of each measure per step.
      learning_rate: the optimiser's peak step size; None for the method's :data:`LEARNING_RATES`.
      seed: the run's PRNG seed.
    """

    pair: str = "moons"
    method: str = "w2ot"
    amortization: str = "regression_lbfgs"
    tau: float = 0.99
    lam: float = 1.0
    cost: str = "sq_euclidean"
    steps: int = 500
    batch_size: int = 256
    learning_rate: Optional[float] = None
    seed: int = 0

    def __post_init__(self) -> None:
        get_pair(self.pair)
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {METHODS}")
        if self.amortization not in ROWS:
            raise ValueError(f"unknown amortization row {self.amortization!r}; choose one of {sorted(ROWS)}")
        if self.cost not in COSTS:
            raise ValueError(f"unknown cost {self.cost!r}; choose one of {sorted(COSTS)}")
        if self.steps < CHUNK or self.steps % CHUNK:
            raise ValueError(f"steps must be a positive multiple of {CHUNK}, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @property
    def lr(self) -> float:
        """The learning rate used: the given one or the method's default."""
        return LEARNING_RATES[self.method] if self.learning_rate is None else float(self.learning_rate)


def compile_key(settings: Settings) -> Settings:
    """What the compiled programs depend on: the settings without the seed (and without the other
    method's fields)."""
    if settings.method == "w2ot":
        unused = {"tau": 0.0, "lam": 0.0, "cost": "sq_euclidean"}
    else:
        unused = {"amortization": "regression_lbfgs"}
    return dataclasses.replace(settings, seed=0, learning_rate=settings.lr, **unused)


def enable_compilation_cache(path: Optional[str] = None) -> str:
    """Turn on JAX's persistent compilation cache (``$JAX_COMPILATION_CACHE_DIR`` when set, else
    ``.jax_cache/`` under the repository root, the test suite's) unless one is already set; return its path."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    folder = path or str(ROOT / ".jax_cache")
    jax.config.update("jax_compilation_cache_dir", folder)
    return folder


def build(settings: Settings):
    """The :class:`otlib.core.method.Method` that :func:`run` trains."""
    pair = get_pair(settings.pair)
    if settings.method == "w2ot":
        config = dataclasses.replace(
            toy2d_training.TOY2D_CONFIG, widths=(64, 64), amortizer_widths=(64, 64),
            amortization=settings.amortization, batch_size=settings.batch_size, num_steps=settings.steps,
            learning_rate=settings.lr, pretrain_steps=1001)
        # gauss_sq's warm starts can sit in a shallow basin of J: solve from x = y too, as amos2023_2d does.
        restart = [pair.name] if pair.name == "gauss_sq" else []
        return toy2d_training.w2ot_pairs(config, [pair.name], pair_axis="loop", restart=restart)
    config = enot_method.ENOTConfig(
        cost=COSTS[settings.cost], hidden=(64, 64, 64), tau=settings.tau, lam=settings.lam,
        learning_rate=settings.lr, b1=0.9, b2=0.999, schedule="cosine", final_lr_fraction=1e-2,
        batch_size=settings.batch_size, num_steps=settings.steps)
    return enot_method.enot(config, pair.source, pair.target, dim=2)


# ENOT's maps and potentials, jitted with the state as an argument (one compilation per configuration).
_enot_forward = jax.jit(enot_method.transport)
_enot_inverse = jax.jit(enot_method.inverse)
_enot_g = jax.jit(enot_method.potential)


@jax.jit
def _enot_f(state: enot_method.ENOTState, x: jax.Array) -> jax.Array:
    cfg = state.config
    return enot_method.FORMS[cfg.parameterisation].potential(cfg, state.f, x)


def _maps(settings: Settings, result: RunResult) -> DualMaps:
    if settings.method == "w2ot":
        return toy2d_training.dual_maps(toy2d_training.pair_states(result), [settings.pair])[0]
    state = jax.tree.map(lambda a: a[0], result.state)
    # The maps depend on the cost and the networks only: drop the training knobs from the static config so
    # that runs differing in them share the compiled maps.
    c = state.config
    state = dataclasses.replace(state, config=enot_method.ENOTConfig(
        cost=c.cost, parameterisation=c.parameterisation, hidden=c.hidden, act=c.act))
    return DualMaps(pair=get_pair(settings.pair), potential=functools.partial(_enot_f, state),
                    forward=functools.partial(_enot_forward, state), inverse=functools.partial(_enot_inverse, state),
                    conjugate=functools.partial(_enot_g, state))


_ENOT_COLUMNS = (r"$\mu$ and $\nu$", r"$T:\ \mu \to \nu$", r"$T^{-1}:\ \nu \to \mu$", "$f$", "$g$")


@dataclasses.dataclass
class Outcome:
    """What :func:`run` returns.

    Attributes:
      settings: the run's settings.
      result: the driver's :class:`~otlib.core.train.RunResult`.
      maps: the learned maps and potentials.
      sinkhorn: ``forward`` S(T(X), Y), ``inverse`` S(T⁻¹(Y), X) and ``source_target`` S(X, Y) (cost
        ‖x − y‖², ε = :data:`EPSILON` σ²(ν), :data:`SAMPLES` fresh samples each).
      figure: the overview panels.
      wall_s: the whole call's wall time.
    """

    settings: Settings
    result: RunResult
    maps: DualMaps
    sinkhorn: dict[str, float]
    figure: Any
    wall_s: float

    @property
    def diverged(self) -> bool:
        return bool(self.result.diverged.any())

    def summary(self) -> str:
        """One line of the numbers (what the notebook prints and asserts on)."""
        s = self.sinkhorn
        return (f"{self.settings.method} on {self.settings.pair}: {self.result.steps} steps, "
                f"final loss {np.nanmean(self.result.history['loss'][-1]):.4g}; Sinkhorn divergence "
                f"S(T(X), Y) = {s['forward']:.4g}, S(T^-1(Y), X) = {s['inverse']:.4g}, "
                f"doing nothing S(X, Y) = {s['source_target']:.4g} "
                f"(ratio {s['forward'] / s['source_target']:.3f})")


def run(settings: Settings, *, on_status: Optional[Callable[[str], None]] = None,
        on_progress: Optional[Callable[[int, int], None]] = None, resolution: int = 48) -> Outcome:
    """Train ``settings`` with the shared driver, then score and draw it (see the module docstring).

    Args:
      settings: what to train.
      on_status: called with a line of text at each phase (compiling, training, drawing).
      on_progress: called with ``(steps done, steps)`` after every chunk; without it the driver draws its
        own progress bar.
      resolution: grid side of the contour panels.
    """
    status = on_status or (lambda text: None)
    start = time.perf_counter()
    key = compile_key(settings)
    if key in _COMPILED:
        status(f"Reusing the compiled step of this configuration (only the seed changed): training "
               f"{settings.steps} steps…")
    else:
        status("Compiling the training step for this configuration (once per configuration: a later run that "
               "changes only the seed reuses it)…")
    started = []

    def after_chunk(done: int) -> None:
        if not started:
            started.append(True)
            _COMPILED.add(key)
            status(f"Training {settings.method} on {settings.pair}…")
        if on_progress is not None:
            on_progress(done, settings.steps)

    result = train(build(settings), jax.random.key(settings.seed), settings.steps, chunk_size=CHUNK,
                   progress=on_progress is None, after_chunk=after_chunk)
    status("Drawing the panels and computing the Sinkhorn divergences…")
    maps = _maps(settings, result)
    if result.diverged.any():
        sinkhorn = {"forward": float("nan"), "inverse": float("nan"), "source_target": float("nan")}
        figure = None
    else:
        table = toy2d_training.sinkhorn_table([maps], jax.random.key(settings.seed + 2), SAMPLES, epsilon=EPSILON,
                                              epsilon_scale="target_variance")
        sinkhorn = {k: float(table.loc[settings.pair, k]) for k in ("forward", "inverse", "source_target")}
        figure = plots2d.overview([maps], jax.random.key(settings.seed + 1), resolution=resolution)
        if settings.method == "enot":
            for ax, title in zip(figure.axes, _ENOT_COLUMNS):
                ax.set_title(title)
        figure.suptitle(f"{settings.method.upper()} on {settings.pair}, {result.steps} steps: "
                        f"S(T#μ, ν) = {sinkhorn['forward']:.3g} (doing nothing: {sinkhorn['source_target']:.3g})",
                        fontsize=9, y=1.02)
    wall = time.perf_counter() - start
    status(f"Done: {result.steps} steps in {wall:.1f} s ({result.compile_s:.1f} s compiling, "
           f"{result.train_s:.1f} s training).")
    return Outcome(settings, result, maps, sinkhorn, figure, wall)


_COMPILED: set[Settings] = set()
"""Compile keys of the runs this process has trained (their programs are compiled or in the cache)."""


class Explorer:
    """ipywidgets controls around :func:`run`: the Train button calls :meth:`train`, as code may.

    Display the object in a notebook (``Explorer()`` as a cell's last line, or ``display(explorer.widget)``).
    """

    def __init__(self, settings: Settings = Settings()) -> None:
        import ipywidgets as w

        enable_compilation_cache()
        style = {"description_width": "95px"}
        layout = w.Layout(width="260px")
        self.controls: dict[str, Any] = {
            "pair": w.Dropdown(options=PAIRS, value=settings.pair, description="pair", style=style, layout=layout),
            "method": w.ToggleButtons(options=METHODS, value=settings.method, description="method", style=style),
            "amortization": w.Dropdown(options=sorted(ROWS), value=settings.amortization,
                                       description="amortization", style=style, layout=layout),
            "tau": w.BoundedFloatText(value=settings.tau, min=0.5, max=0.999, step=0.01, description="tau",
                                      style=style, layout=layout),
            "lam": w.BoundedFloatText(value=settings.lam, min=0.0, max=10.0, step=0.1, description="lambda",
                                      style=style, layout=layout),
            "cost": w.Dropdown(options=sorted(COSTS), value=settings.cost, description="cost", style=style,
                               layout=layout),
            "steps": w.BoundedIntText(value=settings.steps, min=CHUNK, max=100_000, step=CHUNK,
                                      description="steps", style=style, layout=layout),
            "batch_size": w.BoundedIntText(value=settings.batch_size, min=16, max=16_384, step=64,
                                           description="batch size", style=style, layout=layout),
            "learning_rate": w.BoundedFloatText(value=settings.lr, min=1e-5, max=1.0, step=1e-4,
                                                description="learning rate", style=style, layout=layout),
            "seed": w.BoundedIntText(value=settings.seed, min=0, max=2 ** 31 - 1, description="seed", style=style,
                                     layout=layout),
        }
        self.button = w.Button(description="Train", button_style="primary", icon="play")
        self.progress = w.IntProgress(value=0, min=0, max=settings.steps, description="steps",
                                      bar_style="info", style=style, layout=w.Layout(width="420px"))
        self.status = w.HTML(value="Press Train.")
        self.figure = w.Output()
        self.log = w.Output()
        self.runs = 0
        self.outcome: Optional[Outcome] = None
        self.controls["method"].observe(self._method_changed, names="value")
        self.button.on_click(self._clicked)
        self._method_changed({"new": settings.method, "old": None})
        c = self.controls
        w2ot_box = w.VBox([w.HTML("<b>W2OT</b> (Amos 2023)"), c["amortization"]])
        enot_box = w.VBox([w.HTML("<b>ENOT</b> (Buzun et al. 2024)"), c["tau"], c["lam"], c["cost"]])
        common = w.VBox([c["pair"], c["steps"], c["batch_size"], c["learning_rate"], c["seed"]])
        self.widget = w.VBox([c["method"], w.HBox([common, w2ot_box, enot_box]),
                              w.HBox([self.button, self.progress]), self.status, self.figure, self.log])
        for widget, name in ((self.widget, "explorer"), (self.progress, "progress"), (self.status, "status"),
                             (self.figure, "figure"), (self.button, "train")):
            widget.add_class(f"otlib-{name}")  # names for the browser test

    def _ipython_display_(self) -> None:
        from IPython.display import display

        bundle = dict(self.widget._repr_mimebundle_())
        bundle["text/plain"] = ("otlib 2-D explorer (ipywidgets): its controls and Train button need a running "
                                "kernel, e.g. in JupyterLab")
        display(bundle, raw=True)

    def _method_changed(self, change: dict) -> None:
        is_w2ot = change["new"] == "w2ot"
        self.controls["amortization"].disabled = not is_w2ot
        for name in ("tau", "lam", "cost"):
            self.controls[name].disabled = is_w2ot
        if change["old"] is not None:
            self.controls["learning_rate"].value = LEARNING_RATES[change["new"]]

    def settings(self, **overrides: Any) -> Settings:
        """The controls' values as :class:`Settings`, with ``overrides`` set on the controls first."""
        for name, value in overrides.items():
            if name not in self.controls:
                raise ValueError(f"unknown setting {name!r}; choose among {sorted(self.controls)}")
            self.controls[name].value = value
        return Settings(**{name: control.value for name, control in self.controls.items()})

    def _set_status(self, text: str) -> None:
        self.status.value = text

    def _set_progress(self, done: int, total: int) -> None:
        self.progress.max = total
        self.progress.value = done
        self.progress.description = f"{done}/{total}"

    def train(self, **overrides: Any) -> Outcome:
        """Train with the controls' settings (``overrides`` first set on them) and redraw: what Train does."""
        from IPython.display import clear_output, display
        import matplotlib.pyplot as plt

        settings = self.settings(**overrides)
        self.button.disabled = True
        self.progress.bar_style = "info"
        self._set_progress(0, settings.steps)
        try:
            outcome = run(settings, on_status=self._set_status, on_progress=self._set_progress)
        except Exception as error:
            self.progress.bar_style = "danger"
            self._set_status(f"Failed: {type(error).__name__}: {error}")
            raise
        finally:
            self.button.disabled = False
        self.runs += 1
        self.outcome = outcome
        self.progress.bar_style = "danger" if outcome.diverged else "success"
        with self.figure:
            clear_output(wait=True)
            if outcome.figure is None:
                print(f"run {self.runs}: diverged at step {int(outcome.result.diverged_at.max())}")
            else:
                display(outcome.figure)
                plt.close(outcome.figure)
                print(f"run {self.runs}: {outcome.summary()}")
        return outcome

    def _clicked(self, _button: Any) -> None:
        with self.log:
            self.log.clear_output()
            self.train()
