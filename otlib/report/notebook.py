"""What every notebook calls first: ``nb = otlib.report.notebook.start("<name>", profile=profile)``.

It sets the figure style and JAX's matmul precision, prints where the notebook runs (device, versions,
profile), and returns a :class:`Notebook`. The *profile* is ``quick`` (CPU defaults of the ``parameters``
cell) or ``full`` (``notebooks/params/full/<name>.yaml``, GPU).

Every run writes into its own folder, ``results/<profile>/<name>/<run id>/`` (its tables, figures and
parameters), so two runs never overwrite each other and no run touches a tracked file. The one exception
is ``python -m otlib.reproduce --store`` (``make notebooks``: the quick profile with its default
parameters), which sets ``$OTLIB_STORE_FIGURES`` so the figures go to the committed
``figures/<profile>/<name>/``. State meant to outlive a run (table cells, checkpoints) lives in
``results/<profile>/<name>/`` itself. The runner names the run folder in ``$OTLIB_RUN_DIR``; a run
started elsewhere (JupyterLab, nbval, Papermill) gets a fresh one.

When ``$OTLIB_PROFILE`` is set (``make test`` and ``python -m otlib.reproduce`` set it), a notebook
whose parameters say another profile stops at once: this is how CI proves it ran the quick profile.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import secrets
import warnings
from pathlib import Path
from typing import Any, Optional

from otlib.core.files import atomic_write_text
from otlib.core.paths import figures_dir, results_dir
from otlib.report.plots import savefig, style

__all__ = ["PROFILES", "Notebook", "start", "new_run_id", "ENV_RUN_DIR", "ENV_STORE_FIGURES"]

PROFILES = ("quick", "full")
ENV_RUN_DIR = "OTLIB_RUN_DIR"
ENV_STORE_FIGURES = "OTLIB_STORE_FIGURES"


def new_run_id() -> str:
    """A run folder's name: the UTC start time and a random suffix (``20261207-041502-3f9a``)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


@dataclasses.dataclass(frozen=True)
class Notebook:
    """A running notebook: its name, profile and run, and where its outputs go."""

    name: str
    profile: str
    run_id: str = dataclasses.field(default_factory=new_run_id)
    store_figures: bool = False
    root: Optional[Path] = None
    """The results folder (default ``results/``; the runner's when it names the run folder)."""

    @property
    def results_dir(self) -> Path:
        """``results/<profile>/<name>/``, shared by the notebook's runs: state that outlives a run
        (table cells, checkpoints). Created on first use."""
        path = Path(self.root or results_dir()) / self.profile / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def run_dir(self) -> Path:
        """``results/<profile>/<name>/<run id>/``: this run's tables, figures and parameters."""
        path = Path(self.root or results_dir()) / self.profile / self.name / self.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def figures_dir(self) -> Path:
        """Where :meth:`savefig` writes: ``figures/<profile>/<name>/`` for the committed figures
        (``--store``), else the run's ``figures/`` folder."""
        path = figures_dir(self.profile, self.name) if self.store_figures else self.run_dir / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def savefig(self, fig, name: str) -> None:
        """Save ``fig`` as ``<name>.pdf`` and ``<name>.png`` in :attr:`figures_dir` (byte-stable)."""
        savefig(fig, name, folder=self.figures_dir)

    def save_table(self, table, name: str, *, floatfmt: str = ".3g", caption: str = ""):
        """Write a pandas DataFrame as ``<name>.{csv,md,tex}`` in the run folder; return it."""
        folder = self.run_dir
        atomic_write_text(folder / f"{name}.csv", table.to_csv())
        atomic_write_text(folder / f"{name}.md", table.to_markdown(floatfmt=floatfmt) + "\n")
        atomic_write_text(folder / f"{name}.tex", table.to_latex(float_format=lambda v: format(v, floatfmt),
                                                                 caption=caption or None))
        return table

    def save_json(self, record: Any, name: str) -> Path:
        """Write ``record`` as ``<name>.json`` in the run folder."""
        path = self.run_dir / f"{name}.json"
        atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=float) + "\n")
        return path


def start(name: str, *, profile: str = "quick", verbose: bool = True) -> Notebook:
    """Prepare a notebook run and return its :class:`Notebook` (see the module docstring)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    expected = os.environ.get("OTLIB_PROFILE")
    if expected and expected != profile:
        raise RuntimeError(f"this run expects the {expected!r} profile (OTLIB_PROFILE) but the notebook's "
                           f"parameters say {profile!r}: commit notebooks with their quick parameters")
    warnings.filterwarnings("ignore", message=".*[Ff]alling back to cpu.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module="seaborn")

    import jax
    import matplotlib
    import flax
    import optax

    jax.config.update("jax_default_matmul_precision", "highest")
    style()
    _table_display()
    notebook = _notebook(name, profile)
    _record_parameters(notebook)
    if verbose:
        devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
        where = notebook.run_dir
        where = where.relative_to(results_dir().parent) if where.is_relative_to(results_dir().parent) else where
        print(f"{name} | profile {profile} | run folder {where}/ | JAX {jax.__version__} on {jax.default_backend()} ({devices}) | "
              f"Flax {flax.__version__}, Optax {optax.__version__}, Matplotlib {matplotlib.__version__}, "
              f"Python {platform.python_version()}")
    return notebook


def _notebook(name: str, profile: str) -> Notebook:
    """The run the runner prepared (``$OTLIB_RUN_DIR``), else a fresh one."""
    store = os.environ.get(ENV_STORE_FIGURES, "") not in ("", "0")
    run_dir = os.environ.get(ENV_RUN_DIR)
    if run_dir:
        path = Path(run_dir)
        if path.parent.name == name and path.parent.parent.name == profile:
            return Notebook(name, profile, path.name, store_figures=store, root=path.parent.parent.parent)
        warnings.warn(f"${ENV_RUN_DIR}={run_dir} is not a run folder of {name} ({profile}); using a fresh one")
    return Notebook(name, profile, store_figures=False)


def _record_parameters(notebook: Notebook) -> None:
    """Write the parameters the validation cell checked into the run folder (unless the runner did)."""
    from otlib.report.parameters import last_checked

    values = last_checked(notebook.name)
    path = notebook.run_dir / "parameters.yaml"
    if values is not None and not path.exists():
        import yaml

        atomic_write_text(path, yaml.safe_dump(values, sort_keys=False, allow_unicode=True))


def _float(value: float) -> str:
    """A table's number as a reader wants it: 4 significant digits, thousands grouped, no 1.23e+04."""
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def _table_display() -> None:
    """Tables shown in a notebook print 4 significant digits (the saved CSV keeps every digit)."""
    import pandas as pd

    pd.set_option("display.float_format", _float)
