"""Small file-system helpers that keep data safe: atomic writes and private modes."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def _fsynced_temp(path: Path, data: bytes, mode: int) -> Path:
    """A temporary file beside ``path`` holding ``data``, with ``mode``, fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return tmp


def atomic_write(path: Path, data: bytes, *, mode: int = PRIVATE_FILE) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same directory, are fsynced, get ``mode``,
    and replace ``path`` with ``os.replace``; the directory is fsynced after.
    """
    tmp = _fsynced_temp(path, data, mode)
    try:
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_new(path: Path, data: bytes, *, mode: int = PRIVATE_FILE) -> None:
    """Write ``data`` to ``path``, which must not exist: :class:`FileExistsError` if it does.

    Like :func:`atomic_write`, readers never see half a file; unlike it, an existing file is
    never replaced, even by a writer racing this one: the fsynced temporary file is
    hard-linked to ``path`` (which fails when the name is taken) and then unlinked.
    """
    tmp = _fsynced_temp(path, data, mode)
    try:
        _link(tmp, path)
    except _NoLinks:
        # A file system without hard links: create the name exclusively, then fill it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)


class _NoLinks(Exception):
    """The file system has no hard links (exFAT, some FUSE and SMB mounts)."""


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            raise _NoLinks(str(exc)) from exc
        raise


def move_new(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` unless ``target`` exists (:class:`FileExistsError`).

    ``os.rename`` would replace a ``target`` that appeared after a check; a hard link
    cannot. Both directories are fsynced. A crash between the link and the unlink leaves
    the file under both names, never under neither.
    """
    try:
        _link(source, target)
    except _NoLinks:
        # Without hard links a rename is all there is: check first, the best it can do.
        if target.exists() or target.is_symlink():
            raise FileExistsError(errno.EEXIST, "file exists", str(target)) from None
        source.rename(target)
    else:
        source.unlink()
    fsync_dir(target.parent)
    if source.parent != target.parent:
        fsync_dir(source.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700; set ``path`` to 0700."""
    missing = []
    cursor = path
    while not cursor.exists():
        missing.append(cursor)
        cursor = cursor.parent
    for directory in reversed(missing):
        directory.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    path.chmod(PRIVATE_DIR)


def loose_bits(path: Path, allowed: int) -> int:
    """Permission bits of ``path`` beyond ``allowed`` (0 when the mode is tight enough)."""
    return path.stat().st_mode & 0o777 & ~allowed
