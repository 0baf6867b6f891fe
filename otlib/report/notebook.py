"""What every notebook calls first: ``nb = otlib.report.notebook.start("<name>", profile=profile)``.

It sets the figure style and JAX's matmul precision, prints where the notebook runs (device, versions,
profile), and returns a :class:`Notebook` whose ``savefig`` and ``save_table`` write under
``figures/<profile>/<name>/`` and ``results/<profile>/<name>/``. The *profile* is ``quick`` (CPU
defaults of the ``parameters`` cell) or ``full`` (``notebooks/params/full/<name>.yaml``, GPU).

When ``$OTLIB_PROFILE`` is set (``make test`` and ``python -m otlib.reproduce`` set it), a notebook
whose parameters say another profile stops at once: this is how CI proves it ran the quick profile.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import warnings
from pathlib import Path
from typing import Any, Optional

from otlib.core.files import atomic_write_text
from otlib.core.paths import results_dir
from otlib.report.plots import savefig, style

__all__ = ["PROFILES", "Notebook", "start"]

PROFILES = ("quick", "full")


@dataclasses.dataclass(frozen=True)
class Notebook:
    """A running notebook: its name and profile, and where its outputs go."""

    name: str
    profile: str

    @property
    def results_dir(self) -> Path:
        """``results/<profile>/<name>/`` (created on first use)."""
        path = results_dir(self.profile, self.name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def savefig(self, fig, name: str) -> None:
        """Save ``fig`` as ``figures/<profile>/<notebook>/<name>.{pdf,png}`` (byte-stable)."""
        savefig(fig, name, notebook=self.name, profile=self.profile)

    def save_table(self, table, name: str, *, floatfmt: str = ".3g", caption: str = ""):
        """Write a pandas DataFrame as ``results/<profile>/<notebook>/<name>.{csv,md,tex}``; return it."""
        folder = self.results_dir
        atomic_write_text(folder / f"{name}.csv", table.to_csv())
        atomic_write_text(folder / f"{name}.md", table.to_markdown(floatfmt=floatfmt) + "\n")
        atomic_write_text(folder / f"{name}.tex", table.to_latex(float_format=lambda v: format(v, floatfmt),
                                                                 caption=caption or None))
        return table

    def save_json(self, record: Any, name: str) -> Path:
        """Write ``record`` as ``results/<profile>/<notebook>/<name>.json``."""
        path = self.results_dir / f"{name}.json"
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
    notebook = Notebook(name, profile)
    if verbose:
        devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
        print(f"{name} | profile {profile} | JAX {jax.__version__} on {jax.default_backend()} ({devices}) | "
              f"Flax {flax.__version__}, Optax {optax.__version__}, Matplotlib {matplotlib.__version__}, "
              f"Python {platform.python_version()}")
    return notebook
