"""The writers' lock of a vault store, shared by writers and exclusive for gc.

Every store that writes takes a *shared* ``flock`` on ``writers.lock`` at its first
write and keeps it until it closes; gc takes it *exclusive*. So gc never runs while
another store holds blocks it has written but not recorded yet, and a writer that starts
during gc waits for it. The kernel drops the lock of a killed process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from sahara_cli.errors import VaultBackendError, VaultBusy


class WriterLock:
    """Shared by writers for the life of a store, exclusive for gc (``flock`` on a file).

    Locks belong to the open file, so two stores in one process exclude each other just
    as two processes do.
    """

    def __init__(self, path: Path, *, gc_wait: float = 10.0, write_wait: float = 600.0) -> None:
        self.path = path
        self.gc_wait = gc_wait
        self.write_wait = write_wait
        self._fd: int | None = None
        self._shared = False
        self._mutex = threading.Lock()

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise os_error(f"cannot open the lock file {self.path}", exc) from exc
        return self._fd

    def _acquire(self, fd: int, mode: int, wait: float) -> bool:
        deadline = time.monotonic() + wait
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def shared(self) -> None:
        """Hold the lock shared (a no-op when this store holds it already)."""
        with self._mutex:
            if self._shared:
                return
            if not self._acquire(self._open(), fcntl.LOCK_SH, self.write_wait):
                raise VaultBusy(
                    f"the vault store {self.path.parent} is being garbage-collected "
                    f"for more than {self.write_wait:g} s",
                    hint="Wait for the other 'sahara vault gc' to finish, then try again.",
                    code="vault.busy",
                )
            self._shared = True

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock alone: no other store is between its puts and its pin."""
        with self._mutex:
            fd = self._open()
            if not self._acquire(fd, fcntl.LOCK_EX, self.gc_wait):
                if self._shared:
                    fcntl.flock(fd, fcntl.LOCK_SH)
                raise VaultBusy(
                    f"another sahara process is writing to the vault store {self.path.parent}; "
                    "gc did not run",
                    hint="Run gc again when the other 'vault add' or 'vault pin' has finished.",
                    code="vault.busy",
                )
            try:
                yield
            finally:
                # Back to what this store held before: shared if it had written.
                fcntl.flock(fd, fcntl.LOCK_SH if self._shared else fcntl.LOCK_UN)

    def release(self) -> None:
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)  # closing the file drops the lock
                self._fd = None
            self._shared = False


def os_error(what: str, exc: OSError) -> VaultBackendError:
    reason = exc.strerror or str(exc)
    hint = None
    if exc.errno == errno.ENOSPC:
        hint = "Free some disk space, then run the command again."
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = "Check the owner and mode of the sahara home (it should be yours, 0700)."
    return VaultBackendError(f"{what}: {reason}", hint=hint)
