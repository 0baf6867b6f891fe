"""File lookup, pinned hashes and downloads of the official HD files (otlib.w2bench.files)."""

from __future__ import annotations

import errno
import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
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
                pin = files.pinned_hash(files.file_name(d, v, conj=conj))
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


# ------------------------------------------------------------------------------------------------
# Killed downloads, a read-only cache, and $OTLIB_DATA_DIR (searched, never written).


class _Stall(http.server.BaseHTTPRequestHandler):
    """Sends a Content-Length of 1 MB and 64 kB of it, then stalls (a download to kill mid-way)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        self.wfile.write(bytes(1 << 16))
        self.wfile.flush()
        time.sleep(20)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("signame", ["SIGKILL", "SIGTERM", "SIGHUP"])
def test_part_file_of_a_killed_download_is_removed_by_the_next(w2bench_shared: Path, default_dir: Path,
                                                              server: tuple[str, Path], signame: str) -> None:
    stall = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stall)
    stall.daemon_threads = True
    threading.Thread(target=stall.serve_forever, daemon=True).start()
    try:
        # The child takes SIGHUP's default action: under nohup it would inherit SIGHUP ignored and outlive it.
        code = ("import signal, sys; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
                "from otlib.core.files import download; "
                "download(sys.argv[1], sys.argv[2], sha256='0' * 64, progress=False)")
        proc = subprocess.Popen([sys.executable, "-c", code, f"http://127.0.0.1:{stall.server_address[1]}/x",
                                 str(default_dir / "2_v1.pt")], cwd=Path(files.__file__).parents[2],
                                env={**os.environ, "NO_PROXY": "*"})
        deadline = time.monotonic() + 60
        while not [p for p in default_dir.glob(".2_v1.pt.*.part") if p.stat().st_size > 0]:
            assert proc.poll() is None and time.monotonic() < deadline, "the download never started"
            time.sleep(0.05)
        proc.send_signal(getattr(signal, signame))
        proc.wait(timeout=30)
    finally:
        stall.shutdown()
        stall.server_close()
    left = list(default_dir.glob(".2_v1.pt.*.part"))
    assert left, "the killed download left no part file (nothing to reproduce)"
    other = default_dir / ".2_v2.pt.abc123.part"  # another file's part: not this download's business
    other.write_bytes(b"x")
    url, root = server
    _serve(root, w2bench_shared / "Mix3toMix10" / "2_v1.pt", "2_v1.pt")
    assert files.fetch(2, 1, base_url=url, progress=False) == default_dir / "2_v1.pt"
    assert sorted(p.name for p in default_dir.iterdir()) == [".2_v2.pt.abc123.part", "2_v1.pt"]


def test_part_files_are_kept_while_their_age_is_unknown_safe() -> None:
    """Without a folder lock, only part files older than STALE_PART_S are removed."""
    import tempfile

    from otlib.core import files as core_files
    with tempfile.TemporaryDirectory() as d:
        fresh, old = Path(d) / ".a.pt.fresh1.part", Path(d) / ".a.pt.old123.part"
        fresh.write_bytes(b"x")
        old.write_bytes(b"x")
        os.utime(old, (time.time() - core_files.STALE_PART_S - 60,) * 2)
        assert core_files._remove_stale_parts(Path(d) / "a.pt", locked=False) == [old]
        assert fresh.exists() and not old.exists()


def _read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every temporary file creation fail as on a read-only file system (root ignores chmod)."""
    from otlib.core import files as core_files

    def mkstemp(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(core_files.tempfile, "mkstemp", mkstemp)


def test_read_only_cache_gets_the_right_advice(default_dir: Path, server: tuple[str, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    url, root = server
    default_dir.mkdir(parents=True)
    _read_only(monkeypatch)
    with pytest.raises(FileNotFoundError) as exc:
        files.fetch(2, 1, base_url=url, progress=False)
    msg = str(exc.value)
    assert "2_v1.pt" in msg and str(default_dir) in msg and "read-only" in msg
    assert "OTLIB_DATA_DIR" in msg and "never written" in msg and "network" not in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a mode-0555 folder; the EROFS case is tested above")
def test_unwritable_cache_folder_gets_the_right_advice(default_dir: Path, server: tuple[str, Path]) -> None:
    url, _ = server
    default_dir.mkdir(parents=True)
    default_dir.chmod(0o555)
    try:
        with pytest.raises(FileNotFoundError, match="no permission") as exc:
            files.fetch(2, 1, base_url=url, progress=False)
        assert "network" not in str(exc.value)
    finally:
        default_dir.chmod(0o755)


def test_cache_path_blocked_by_a_file_is_a_local_error(default_dir: Path, server: tuple[str, Path]) -> None:
    url, _ = server
    default_dir.parent.mkdir(parents=True, exist_ok=True)
    default_dir.write_text("a file where the cache folder should be")
    with pytest.raises(FileNotFoundError, match="cannot create the folder") as exc:
        files.fetch(2, 1, base_url=url, progress=False)
    assert "network" not in str(exc.value)


def test_data_dir_variable_is_searched_never_written(w2bench_shared: Path, default_dir: Path, tmp_path: Path,
                                                     server: tuple[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "env"
    env.mkdir()
    monkeypatch.setenv("OTLIB_DATA_DIR", str(env))
    url, root = server
    _serve(root, w2bench_shared / "Mix3toMix10" / "2_v1.pt", "2_v1.pt")
    assert files.fetch(2, 1, base_url=url, progress=False) == default_dir / "2_v1.pt"
    assert list(env.iterdir()) == []
    assert "never written" in files.__doc__ and "never written" in files.fetch.__doc__
    with pytest.raises(FileNotFoundError, match="never written"):
        files.fetch(4, 1, base_url=url, progress=False)
