"""Safe file handling: atomic writes and checksummed downloads.

A long run must never leave a half-written checkpoint, table or download behind: every writer here
writes a temporary file in the destination folder and renames it into place (``os.replace`` is atomic
on POSIX), so a reader sees either the old file or the new one.

A download killed outright (SIGKILL, or SIGTERM/SIGHUP, which Python does not turn into an exception)
cannot remove its hidden ``.<name>.*.part`` file; the next download of the same file removes it. Downloads
into one folder hold an ``fcntl.flock`` on the folder, so a ``.part`` file found by the holder is never
one that another process is still writing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "sha256_file", "git_blob_sha1",
           "download", "ChecksumError", "CacheWriteError"]


_UMASK = os.umask(0)
os.umask(_UMASK)


class ChecksumError(RuntimeError):
    """A file's hash (SHA-256 checksum or git blob id) differs from the pinned one."""


class CacheWriteError(OSError):
    """A download could not be saved in its folder (read-only, no permission, disk full); not a network error."""


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


def _hash_matches(path: Path, sha256: str | None, git_blob: str | None) -> tuple[bool, str, str]:
    if sha256 is not None:
        got = sha256_file(path)
        return got == sha256, f"sha256 {sha256}", f"sha256 {got}"
    if git_blob is not None:
        got = git_blob_sha1(path)
        return got == git_blob, f"git blob {git_blob}", f"git blob {got}"
    raise ValueError(f"no hash pinned for {path.name}: refusing to trust an unchecked file")


def verify(path: str | os.PathLike, *, sha256: str | None = None, git_blob: str | None = None) -> None:
    """Raise :class:`ChecksumError` naming the file and both hashes unless ``path`` matches the pin."""
    path = Path(path)
    ok, want, got = _hash_matches(path, sha256, git_blob)
    if not ok:
        raise ChecksumError(
            f"{path} does not match its pinned hash: expected {want}, got {got}. The file is corrupt, "
            f"truncated or not the official one; delete it and run again to download a fresh copy.")


#: A part file is treated as stale after this long where the file system has no ``flock``.
STALE_PART_S = 24 * 3600.0


def _cache_write_error(err: OSError, folder: Path, what: str) -> CacheWriteError:
    reason = {errno.EROFS: "the file system is read-only", errno.EACCES: "no permission",
              errno.EPERM: "no permission", errno.ENOSPC: "the disk is full",
              errno.EDQUOT: "the disk quota is exceeded"}.get(err.errno or 0, err.strerror or str(err))
    return CacheWriteError(err.errno or 0, f"cannot {what} in {folder}: {reason}")


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``folder`` for the block: ``True``, or ``False`` where it has none."""
    try:
        fd: int | None = os.open(folder, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened for reading: no lock (the writes will say why)
        fd = None
    if fd is None:
        yield False
        return
    try:
        locked = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process's download into {folder}", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock: fall back to the age of part files
            locked = False
        yield locked
    finally:
        os.close(fd)


def _remove_stale_parts(dest: Path, locked: bool) -> list[Path]:
    """Remove ``.<dest name>.*.part`` files left by killed downloads of ``dest``; return them."""
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.[A-Za-z0-9_]+\.part")
    removed = []
    with contextlib.suppress(OSError):  # an unreadable folder, or a part file that cannot be removed: kept
        for part in dest.parent.iterdir():
            if pattern.fullmatch(part.name):
                with contextlib.suppress(OSError):
                    if locked or time.time() - part.stat().st_mtime > STALE_PART_S:
                        part.unlink()
                        removed.append(part)
    return removed


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, git_blob: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically with a progress bar and check it against a pinned hash.

    The bytes go to a temporary file beside ``dest``; only a file whose hash matches (``sha256`` or,
    where upstream publishes only git objects, ``git_blob``) is renamed onto ``dest``. A mismatch raises
    :class:`ChecksumError` naming the file and both hashes, and leaves nothing behind. Part files of
    ``dest`` left by killed downloads are removed first; a ``dest`` that another process downloaded
    while this one waited for the folder is used as it is. A folder that cannot be written (read-only,
    no permission, disk full) raises :class:`CacheWriteError`, never a network error.
    """
    from otlib.core.progress import progress_bar

    dest = Path(dest)
    if sha256 is None and git_blob is None:
        raise ValueError(f"download of {url} has no pinned hash: pin a sha256 or git blob id first")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _cache_write_error(err, dest.parent, f"create the folder for {dest.name}") from err
    with _folder_lock(dest.parent) as locked:
        _remove_stale_parts(dest, locked)
        if dest.is_file() and _hash_matches(dest, sha256, git_blob)[0]:
            return dest
        try:
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        except OSError as err:
            raise _cache_write_error(err, dest.parent, f"save the download of {dest.name}") from err
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with progress_bar(total=total, desc=f"download {dest.name}", unit="B", unit_scale=True,
                                  disable=not progress) as bar:
                    for block in iter(lambda: resp.read(1 << 16), b""):
                        try:
                            out.write(block)
                        except OSError as err:
                            raise _cache_write_error(err, dest.parent, f"save the download of {dest.name}") from err
                        bar.update(len(block))
                try:
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as err:
                    raise _cache_write_error(err, dest.parent, f"save the download of {dest.name}") from err
            ok, want, got = _hash_matches(Path(tmp), sha256, git_blob)
            if not ok:
                raise ChecksumError(f"download of {url} for {dest.name} does not match its pinned hash: "
                                    f"expected {want}, got {got}. Nothing was saved.")
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return dest
