"""Safe file handling: atomic writes and checksummed downloads.

A long run must never leave a half-written checkpoint, table or download behind: every writer here
writes a temporary file in the destination folder and renames it into place (``os.replace`` is atomic
on POSIX), so a reader sees either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "sha256_file", "git_blob_sha1",
           "download", "ChecksumError"]


_UMASK = os.umask(0)
os.umask(_UMASK)


class ChecksumError(RuntimeError):
    """A file's digest differs from the pinned one."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on a clean exit rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_blob_sha1(path: str | os.PathLike) -> str:
    """Git's blob id of a file: SHA-1 of ``b"blob <len>\\0" + bytes`` (what ``git hash-object`` prints)."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _digest_matches(path: Path, sha256: str | None, git_blob: str | None) -> tuple[bool, str, str]:
    if sha256 is not None:
        got = sha256_file(path)
        return got == sha256, f"sha256 {sha256}", f"sha256 {got}"
    if git_blob is not None:
        got = git_blob_sha1(path)
        return got == git_blob, f"git blob {git_blob}", f"git blob {got}"
    raise ValueError(f"no digest pinned for {path.name}: refusing to trust an unchecked file")


def verify(path: str | os.PathLike, *, sha256: str | None = None, git_blob: str | None = None) -> None:
    """Raise :class:`ChecksumError` naming the file and both digests unless ``path`` matches the pin."""
    path = Path(path)
    ok, want, got = _digest_matches(path, sha256, git_blob)
    if not ok:
        raise ChecksumError(
            f"{path} does not match its pinned digest: expected {want}, got {got}. The file is corrupt, "
            f"truncated or not the official one; delete it and run again to download a fresh copy.")


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, git_blob: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically with a progress bar and check it against a pinned digest.

    The bytes go to a temporary file beside ``dest``; only a file whose digest matches (``sha256`` or,
    where upstream publishes only git objects, ``git_blob``) is renamed onto ``dest``. A mismatch raises
    :class:`ChecksumError` naming the file and both digests, and leaves nothing behind.
    """
    from otlib.core.progress import progress_bar

    dest = Path(dest)
    if sha256 is None and git_blob is None:
        raise ValueError(f"download of {url} has no pinned digest: pin a sha256 or git blob id first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, desc=f"download {dest.name}", unit="B", unit_scale=True,
                              disable=not progress) as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
        ok, want, got = _digest_matches(Path(tmp), sha256, git_blob)
        if not ok:
            raise ChecksumError(f"download of {url} for {dest.name} does not match its pinned digest: "
                                f"expected {want}, got {got}. Nothing was saved.")
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return dest
