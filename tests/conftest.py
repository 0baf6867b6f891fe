"""Shared pytest fixtures (keep small; add your own below)."""

from __future__ import annotations

from pathlib import Path

import pytest

from otlib.core.paths import shared_dir


@pytest.fixture
def w2bench_shared() -> Path:
    """``../shared/w2bench`` (official HD files and reference values); skip if this checkout lacks it."""
    root = shared_dir("w2bench")
    if not (root / "Mix3toMix10").is_dir() or not (root / "reference").is_dir():
        pytest.skip(f"official W2 benchmark files not found at {root} (the read-only shared folder); "
                    f"these tests need them")
    return root


@pytest.fixture
def w2bench_data(w2bench_shared: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``$OTLIB_DATA_DIR`` at the shared ``Mix3toMix10`` folder (no downloads, quiet bars)."""
    folder = w2bench_shared / "Mix3toMix10"
    monkeypatch.setenv("OTLIB_DATA_DIR", str(folder))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return folder
