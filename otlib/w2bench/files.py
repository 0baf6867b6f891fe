"""Where the official HD benchmark files come from, and their pinned hashes.

The files are those of Korotin et al. 2021 (arXiv:2106.01954), ``benchmarks/Mix3toMix10/`` in
``iamalexkorotin/Wasserstein2Benchmark``.

``{D}_v{k}.pt`` (and ``{D}_v{k}_conj.pt``) is looked up, in this order, in

1. the ``data_dir`` argument,
2. ``$OTLIB_DATA_DIR``,
3. ``data/w2bench/`` under the repository root (:func:`otlib.core.paths.data_dir`);

if it is in none of them it is downloaded from the upstream repository (base URL overridable by the
``base_url`` argument or ``$OTLIB_W2BENCH_URL``) into ``data/w2bench/`` with :func:`otlib.core.files.download`
(progress bar, atomic rename, checksum, removal of part files left by killed downloads). Downloads always
go to ``data/w2bench/``: the ``data_dir`` argument and ``$OTLIB_DATA_DIR`` are searched, never written
(they may be read-only copies). Every file, found or downloaded, is checked against the hash pinned
below before use; a mismatch raises :class:`otlib.core.files.ChecksumError` naming the file and both
hashes. A file in none of the folders that cannot be downloaded raises ``FileNotFoundError`` saying
why: the network, or ``data/w2bench/`` not writable (then the advice is to make it writable or to put
the file in a folder named by ``$OTLIB_DATA_DIR``). The ``.pt`` files themselves are never committed.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

from otlib.core import files as otio
from otlib.core.paths import data_dir as _repo_data_dir

__all__ = ["DIMS", "DEFAULT_BASE_URL", "SHA256", "GIT_BLOB", "file_name", "check_dim", "pinned_hash",
           "default_dir", "search_dirs", "locate", "verify_file", "fetch"]

DIMS: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256)
"""The published HD dimensions (Mix3toMix10)."""

DEFAULT_BASE_URL = ("https://raw.githubusercontent.com/iamalexkorotin/Wasserstein2Benchmark/main/"
                    "benchmarks/Mix3toMix10")
ENV_DATA_DIR = "OTLIB_DATA_DIR"
ENV_BASE_URL = "OTLIB_W2BENCH_URL"

#: SHA-256 of the official files for D = 2..128 (``SHA256SUMS`` beside them in ``../shared/w2bench/``).
SHA256: dict[str, str] = {
    "2_v1.pt": "12fbf72953af1371002cb4a0b67757bd63b335e923fc5f7d4076fbeb81ee72b5",
    "2_v1_conj.pt": "d8a69c610188e1bd5affa4b2abe28d59475859d37e117ebaf5eb7d7cd30cc369",
    "2_v2.pt": "28d161bf7b352d678fb77f512b51266574da06455d3eabf9173695813efc1716",
    "2_v2_conj.pt": "e1b36fc128db2bdec5441a66dd8b40a5368a9120726e35ec0b44bfe8dd5b8cc2",
    "4_v1.pt": "edbe9ff24297c685d070811930f2d17b63f0fd299cba0f792617798211e1bbc2",
    "4_v1_conj.pt": "07467ff459462c08810a5bffe74d75eec1759e302f872db7c86febc54c97991d",
    "4_v2.pt": "ec2a061e00be682b5212cfd9801d6d874768bd8b7ba3c2a80e2dc48d5a473425",
    "4_v2_conj.pt": "04d09dc62297ef78ec8a3eea15a50f0991a34ac4212e368a854bc2f0d7e901bc",
    "8_v1.pt": "0ace0d609d39eac0cbbb0f1e26ca1cd2329a8c48da7122f3118389755ca5be16",
    "8_v1_conj.pt": "e9846940052d28809d3610c73ddbcdf4ed7b1fa8e2a4bd751777ae1b46efa424",
    "8_v2.pt": "f2ef690cf8f9c3c9aed9c15471a64c8dc9da68f5d565b1c091d8f2e7caec5cb5",
    "8_v2_conj.pt": "4236d4c00050cbc807244dbbb21adc1d1f03bd4259c91c25806c1d366b3db512",
    "16_v1.pt": "d50a23710ca3b71a01007cd53c6b578de087c9879e0506866bac9196357e1891",
    "16_v1_conj.pt": "8fc424062ad6d181b7ec92b949d4acb18e6b64057c43fca1837fdace6d4c5e8e",
    "16_v2.pt": "722088932a1a0dbbf9cc1e90a6b9d86df0536f4520caf205b33161c74c0dd574",
    "16_v2_conj.pt": "a968477bc3aa4e8aa4d3b4f88e0e9bc90b6f79b81ab483fcc32e75a79ffb241c",
    "32_v1.pt": "d843897886c9346c3a0d14c2a0824f5b235ca4cf7932dda77a8c8f5c1a3fc201",
    "32_v1_conj.pt": "4891590982ec325c9b8c364f354863e80292e7b4a0da3d63698ac14456ce4ba6",
    "32_v2.pt": "34e8fed6bc0c7cfc54fa607b2bfb17118b70a1c135be486f55299299062f767f",
    "32_v2_conj.pt": "ce1f6c1aaaacdc6b841060a7d36e5abae7fc860dbcbb553dd093517010832bee",
    "64_v1.pt": "ea8778313115151315cdc4a60198fea41e18800295559391c97e9a49b5b8f56c",
    "64_v1_conj.pt": "36f93846e768c76b4a36851df48085d45549923cd21930ff047d48264e29aac9",
    "64_v2.pt": "2bbc6d8e5c7f29a6e188e23ea10b811e1b07b1bd0f355cc8916356eed2e7428b",
    "64_v2_conj.pt": "87f7ae0a457bf3e96884a0660119f28ce39925a402faaa0dfb9b20cd9a759b2e",
    "128_v1.pt": "69146834f2b33b6f05accbc7d4d49ef43e9517f38d5a7ab71c50a936c0c613ab",
    "128_v1_conj.pt": "350ea627ada2a05d5014f327da709d673bc0ce1bca9b37fd860ad4338a2d29d6",
    "128_v2.pt": "d03ed8ab9b8bab886ecc7d69e1dba1173b154f4eae9378a295a7cbbc93d52321",
    "128_v2_conj.pt": "a00faccc6cfee9e85751ab5336d1807e52091247c2e0e4c8d46b6ec2f6f280d6",
}

#: D = 256: upstream publishes no SHA-256 and the files were not available to the project, so they are
#: pinned by their git blob ids in the upstream repository (sha1 of b"blob <len>\0" + bytes).
GIT_BLOB: dict[str, str] = {
    "256_v1.pt": "2c660c94439ea86a2ef56f09d0b0c79a78276ba0",
    "256_v2.pt": "fdb31a331d448bd5dcf909dabc8175de1ff4bfe4",
    "256_v1_conj.pt": "d50d499e72b74553f26c8aef480a0ba00ff92065",
    "256_v2_conj.pt": "ad8bf7bd9afb2ec3b5e16ddd656970f57f815ce5",
}


def check_dim(dim: int) -> int:
    """Return ``dim`` if it is a published HD dimension, else raise a ValueError listing them."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim not in DIMS:
        raise ValueError(f"no W2 benchmark HD pair for D={dim!r}; the published dimensions are "
                         f"{', '.join(map(str, DIMS))}")
    return dim


def file_name(dim: int, version: int, *, conj: bool = False) -> str:
    """``{D}_v{k}.pt`` or ``{D}_v{k}_conj.pt`` (version k in {1, 2})."""
    check_dim(dim)
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2 (the two potentials psi_1, psi_2), got {version!r}")
    return f"{dim}_v{version}{'_conj' if conj else ''}.pt"


def pinned_hash(name: str) -> dict[str, str]:
    """``{"sha256": ...}`` or ``{"git_blob": ...}`` for an official file name."""
    if name in SHA256:
        return {"sha256": SHA256[name]}
    if name in GIT_BLOB:
        return {"git_blob": GIT_BLOB[name]}
    raise ValueError(f"no hash pinned for {name!r}: not an official Mix3toMix10 file")


def default_dir() -> Path:
    """``data/w2bench/`` under the repository root: the download cache (git-ignored)."""
    return _repo_data_dir("w2bench")


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched, in order: ``data_dir``, ``$OTLIB_DATA_DIR``, ``data/w2bench/``."""
    dirs: list[Path] = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        dirs.append(Path(env))
    dirs.append(default_dir())
    return dirs


def locate(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first existing ``<dir>/<name>`` over :func:`search_dirs`, or None (no hash check)."""
    for d in search_dirs(data_dir):
        if (d / name).is_file():
            return d / name
    return None


def verify_file(path: str | os.PathLike) -> Path:
    """Check ``path`` against the hash pinned for its file name; raise ChecksumError on mismatch."""
    path = Path(path)
    otio.verify(path, **pinned_hash(path.name))
    return path


def fetch(dim: int, version: int, *, conj: bool = False, data_dir: str | os.PathLike | None = None,
          base_url: str | None = None, progress: bool = True) -> Path:
    """A verified local path to ``{dim}_v{version}[_conj].pt``, downloading it into ``data/w2bench/`` if it
    is nowhere local (``data_dir`` and ``$OTLIB_DATA_DIR`` are searched, never written)."""
    name = file_name(dim, version, conj=conj)
    found = locate(name, data_dir)
    if found is not None:
        return verify_file(found)
    base = (base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
    dest = default_dir() / name
    url = f"{base}/{name}"
    where = ", ".join(str(d) for d in search_dirs(data_dir))
    try:
        return otio.download(url, dest, progress=progress, **pinned_hash(name))
    except otio.CacheWriteError as e:
        raise FileNotFoundError(
            f"{name} is not in any of [{where}], and it cannot be downloaded into {dest.parent}: {e}. Make "
            f"{dest.parent} writable (or free space there), or download {url} yourself into a folder of "
            f"your choice and point ${ENV_DATA_DIR} at it (that folder is only searched, never written).") from e
    except (urllib.error.URLError, OSError) as e:
        raise FileNotFoundError(
            f"{name} is not in any of [{where}] and downloading {url} failed ({e}). Put the official file "
            f"in one of those folders (or point ${ENV_DATA_DIR} at a folder holding it; it is searched, "
            f"never written), or retry with network access.") from e
