"""Root pytest configuration, shared by the library tests (tests/) and nbval (notebooks/).

Set before any kernel starts, so nbval's kernels inherit them: progress bars off (nbval compares
streams), the quick profile expected (a notebook committed with other parameters fails: the canary), and
``OTLIB_DATA_DIR`` pointed at a ``../shared/w2bench/Mix3toMix10`` copy of the benchmark files beside the
checkout when it exists and the variable is unset: the rule ``make`` and ``python -m otlib.reproduce``
follow, so a bare ``pytest notebooks/NAME.ipynb --nbval-lax`` finds the same files.
"""

import os
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("OTLIB_PROFILE", "quick")
_SHARED_W2 = Path(__file__).resolve().parent.parent / "shared" / "w2bench" / "Mix3toMix10"
if not os.environ.get("OTLIB_DATA_DIR") and (_SHARED_W2 / "2_v1.pt").exists():
    os.environ["OTLIB_DATA_DIR"] = str(_SHARED_W2)

_CELEBA_FIXTURES = Path(__file__).resolve().parent.parent / "shared" / "w2bench" / "celeba64_fixtures"


def pytest_collection_modifyitems(config, items):
    """The CelebA64 notebook's quick profile runs on the random-weight fixtures beside the checkout; where
    they are absent its cells are skipped, saying why, like the library tests that read them."""
    import pytest

    if (_CELEBA_FIXTURES / "resnet_g.pt").exists():
        return
    skip = pytest.mark.skip(reason=f"CelebA64 fixtures not found at {_CELEBA_FIXTURES}: "
                                   "the w2_benchmark_celeba notebook's quick profile needs them")
    for item in items:
        if Path(str(item.fspath)).name == "w2_benchmark_celeba.ipynb":
            item.add_marker(skip)
