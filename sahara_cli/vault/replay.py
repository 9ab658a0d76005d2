"""The nonces of signed vault requests, kept in SQLite until their requests go stale.

``vault serve`` and ``mcp serve`` refuse a signed request whose nonce they have seen.
The nonces live in ``<home>/vault/nonces.db``, not in memory, so a request cannot be
replayed after a restart, nor against a second server of the same home (SQLite's file
lock serialises the servers' claims). A row is kept until its request is stale anyway
(its ``issued`` time plus the allowed clock skew), then purged.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from sahara_cli.errors import VaultError

#: Seconds between purges of expired rows.
PURGE_EVERY = 30.0


class NonceStore:
    """Claims nonces once: :meth:`claim` is true the first time, false for a replay."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._last_purge = 0.0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # Each claim is in the WAL before the key it guards leaves the process, so a
            # crash or restart of the server keeps it; an OS crash may lose the last ones
            # (no fsync per claim, which would cap claims at the disk's sync rate).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS nonces ("
                " key TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS nonces_expires ON nonces(expires)")
        except (sqlite3.Error, OSError) as exc:
            raise VaultError(
                f"cannot open the replay store {path}: {exc}",
                hint="It holds only the nonces of the last minutes: move it away and retry.",
            ) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def claim(self, key: str, expires: int) -> bool:
        """Record ``key`` until ``expires`` (Unix time); false when it is held already."""
        now = int(time.time())
        with self._lock:
            try:
                if time.monotonic() - self._last_purge > PURGE_EVERY:
                    self._db.execute("DELETE FROM nonces WHERE expires < ?", (now,))
                    self._last_purge = time.monotonic()
                # One statement: a row that has expired is taken over, a live one kept.
                cursor = self._db.execute(
                    "INSERT INTO nonces (key, expires) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET expires = excluded.expires "
                    "WHERE nonces.expires < ?",
                    (key, expires, now),
                )
            except sqlite3.Error as exc:
                raise VaultError(f"the replay store {self.path} failed: {exc}") from None
            return cursor.rowcount == 1

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM nonces").fetchone()
        return int(row[0])
