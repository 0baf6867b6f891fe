"""Where things live: every path is built from the repository root, never from the working directory.

Papermill starts kernels in the caller's directory and nbval in the notebook's directory; resolving
every path from the root (the folder holding ``pyproject.toml`` next to the ``otlib`` package) makes
both, and a user's own ``python`` process, read and write the same files.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ROOT", "data_dir", "figures_dir", "results_dir", "notebooks_dir", "shared_dir"]

ROOT: Path = Path(__file__).resolve().parents[2]
"""The repository root (the folder that holds ``otlib/``, ``notebooks/`` and ``pyproject.toml``)."""


def data_dir(*parts: str) -> Path:
    """``data/`` under the root (small committed files, and the cache of downloads)."""
    return ROOT.joinpath("data", *parts)


def figures_dir(*parts: str) -> Path:
    """``figures/`` under the root."""
    return ROOT.joinpath("figures", *parts)


def results_dir(*parts: str) -> Path:
    """``results/`` under the root (executed notebooks, tables, checkpoints; not committed)."""
    return ROOT.joinpath("results", *parts)


def notebooks_dir(*parts: str) -> Path:
    """``notebooks/`` under the root."""
    return ROOT.joinpath("notebooks", *parts)


def shared_dir(*parts: str) -> Path:
    """``../shared`` beside the checkout: the developers' and CI's read-only copy of the official files."""
    return ROOT.parent.joinpath("shared", *parts)
