"""File lookup, pinned digests and downloads of the official HD files (otlib.w2bench.files; digest §6)."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest

from otlib.core.files import ChecksumError
from otlib.w2bench import files


@pytest.fixture
def default_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Redirect data/w2bench/ (lookup step 3 and download target) to a temporary folder."""
    folder = tmp_path / "repo_data_w2bench"
    monkeypatch.setattr(files, "default_dir", lambda: folder)
    monkeypatch.delenv("OTLIB_DATA_DIR", raising=False)
    monkeypatch.delenv("OTLIB_W2BENCH_URL", raising=False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return folder


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a temporary folder: (base URL, folder)."""
    root = tmp_path / "served"
    root.mkdir()
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/benchmarks/Mix3toMix10", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _serve(root: Path, src: Path, name: str) -> None:
    (root / "benchmarks" / "Mix3toMix10").mkdir(parents=True, exist_ok=True)
    shutil.copy(src, root / "benchmarks" / "Mix3toMix10" / name)


def test_pins_cover_every_official_file() -> None:
    for d in files.DIMS:
        for v in (1, 2):
            for conj in (False, True):
                pin = files.pinned_digest(files.file_name(d, v, conj=conj))
                assert ("git_blob" in pin) == (d == 256)


def test_unknown_dim_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"D=3.*2, 4, 8, 16, 32, 64, 128, 256"):
        files.file_name(3, 1)


def test_lookup_order(w2bench_shared: Path, tmp_path: Path, default_dir: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    for folder in (explicit, env, default_dir):
        folder.mkdir()
        shutil.copy(w2bench_shared / "Mix3toMix10" / "2_v1.pt", folder / "2_v1.pt")
    monkeypatch.setenv("OTLIB_DATA_DIR", str(env))
    assert files.fetch(2, 1, data_dir=explicit) == explicit / "2_v1.pt"
    assert files.fetch(2, 1) == env / "2_v1.pt"
    monkeypatch.delenv("OTLIB_DATA_DIR")
    assert files.fetch(2, 1) == default_dir / "2_v1.pt"
    (explicit / "2_v1.pt").unlink()
    assert files.fetch(2, 1, data_dir=explicit) == default_dir / "2_v1.pt"  # falls through


def test_wrong_digest_names_file_and_both_digests(w2bench_shared: Path, tmp_path: Path, default_dir: Path) -> None:
    shutil.copy(w2bench_shared / "Mix3toMix10" / "2_v2.pt", tmp_path / "2_v1.pt")  # wrong content
    with pytest.raises(ChecksumError) as exc:
        files.fetch(2, 1, data_dir=tmp_path)
    msg = str(exc.value)
    assert "2_v1.pt" in msg and files.SHA256["2_v1.pt"] in msg and files.SHA256["2_v2.pt"] in msg


def test_download_from_loopback(w2bench_shared: Path, default_dir: Path, server: tuple[str, Path],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    url, root = server
    _serve(root, w2bench_shared / "Mix3toMix10" / "2_v1.pt", "2_v1.pt")
    path = files.fetch(2, 1, base_url=url, progress=False)
    assert path == default_dir / "2_v1.pt" and path.is_file()
    # second call finds it locally (no server needed); the env var also sets the URL
    _serve(root, w2bench_shared / "Mix3toMix10" / "2_v2.pt", "2_v2.pt")
    monkeypatch.setenv("OTLIB_W2BENCH_URL", url)
    assert files.fetch(2, 2, progress=False) == default_dir / "2_v2.pt"
    assert sorted(p.name for p in default_dir.iterdir()) == ["2_v1.pt", "2_v2.pt"]


def test_download_with_wrong_digest_leaves_nothing(w2bench_shared: Path, default_dir: Path,
                                                   server: tuple[str, Path]) -> None:
    url, root = server
    _serve(root, w2bench_shared / "Mix3toMix10" / "2_v2.pt", "2_v1.pt")  # wrong bytes under the name
    with pytest.raises(ChecksumError, match="2_v1.pt") as exc:
        files.fetch(2, 1, base_url=url, progress=False)
    assert files.SHA256["2_v1.pt"] in str(exc.value) and files.SHA256["2_v2.pt"] in str(exc.value)
    assert not default_dir.exists() or list(default_dir.iterdir()) == []


def test_missing_everywhere_gives_clear_error(default_dir: Path, server: tuple[str, Path]) -> None:
    url, _ = server
    with pytest.raises(FileNotFoundError, match=r"4_v1\.pt.*OTLIB_DATA_DIR"):
        files.fetch(4, 1, base_url=url, progress=False)
