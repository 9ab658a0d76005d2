"""The vault's catalogue: one SQLite file that says which DAGs in the blockstore are items.

Blocks alone are anonymous; an *item* names a root CID and says what it is (file or
directory), whether it is encrypted, the plaintext commitment, the data key wrapped to
the holder's Sahara ID, and the on-chain asset it is registered as. A row is written in
one transaction only after every block is stored and pinned, so an interrupted add
leaves no item, only unpinned blocks that the next ``gc`` removes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sahara_cli.errors import VaultIndexError, VaultItemNotFound

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    cid         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,          -- file | directory
    size        INTEGER NOT NULL,       -- plaintext bytes
    stored      INTEGER NOT NULL,       -- bytes of the stored (maybe encrypted) content
    encrypted   INTEGER NOT NULL,
    commitment  TEXT NOT NULL,          -- what the chain holds: see vault.crypto.commitment
    digest      TEXT,                   -- 0x + sha256 of the plaintext (here only: dedup)
    holder      TEXT NOT NULL,          -- address whose key the data key is wrapped to
    owner       TEXT NOT NULL,          -- address of the owner (the holder, or a licensor)
    origin      TEXT NOT NULL,          -- added | licensed | imported | memory
    wrapped_key BLOB,
    asset_id    INTEGER,
    state       TEXT NOT NULL DEFAULT 'ready',   -- ready | registering
    register_tx TEXT,
    source      TEXT,                   -- vault server a licensed item came from
    chunks      INTEGER NOT NULL DEFAULT 0,       -- index entries
    indexed     INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_asset ON items(asset_id);
CREATE INDEX IF NOT EXISTS items_commitment ON items(commitment, holder);
CREATE TABLE IF NOT EXISTS grants (
    item_id    INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    address    TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (item_id, address)
);
"""


def setup_sqlite(conn: sqlite3.Connection, *statements: str, wait: float = 30.0) -> None:
    """Run set-up statements, retrying while another process holds the file.

    Switching to WAL takes a lock that SQLite's busy timeout does not wait for, so two
    commands opening a new file at once would otherwise fail with "database is locked".
    """
    deadline = time.monotonic() + wait
    for statement in statements:
        while True:
            try:
                conn.executescript(statement)
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


@dataclass
class Item:
    """One thing the vault holds."""

    id: int
    cid: str
    name: str
    kind: str
    size: int
    stored: int
    encrypted: bool
    commitment: str
    holder: str
    owner: str
    origin: str
    wrapped_key: bytes | None
    asset_id: int | None
    state: str
    register_tx: str | None
    source: str | None
    chunks: int
    indexed: bool
    created_at: float
    grants: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cid": self.cid,
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "stored_bytes": self.stored,
            "encrypted": self.encrypted,
            "commitment": self.commitment,
            "owner": self.owner,
            "holder": self.holder,
            "origin": self.origin,
            "asset_id": self.asset_id,
            "state": self.state,
            "source": self.source,
            "chunks": self.chunks,
            "indexed": self.indexed,
            "created_at": self.created_at,
            "shared_with": list(self.grants),
        }


_COLUMNS = (
    "id, cid, name, kind, size, stored, encrypted, commitment, holder, owner, origin, "
    "wrapped_key, asset_id, state, register_tx, source, chunks, indexed, created_at"
)


def _item(row: tuple[Any, ...]) -> Item:
    return Item(
        id=row[0],
        cid=row[1],
        name=row[2],
        kind=row[3],
        size=row[4],
        stored=row[5],
        encrypted=bool(row[6]),
        commitment=row[7],
        holder=row[8],
        owner=row[9],
        origin=row[10],
        wrapped_key=row[11],
        asset_id=row[12],
        state=row[13],
        register_tx=row[14],
        source=row[15],
        chunks=row[16],
        indexed=bool(row[17]),
        created_at=row[18],
    )


class VaultDB:
    """The catalogue file (``<home>/vault/vault.db``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A server answers from worker threads; callers serialise access themselves.
            self._conn = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA foreign_keys=ON")
            setup_sqlite(
                self._conn,
                "PRAGMA journal_mode=WAL",
                # WAL with NORMAL: never corrupt; a power cut may lose the last row, and
                # blocks without a row are what an interrupted add leaves anyway.
                "PRAGMA synchronous=NORMAL",
                _SCHEMA,
            )
            self._migrate()
            setup_sqlite(
                self._conn,
                "CREATE INDEX IF NOT EXISTS items_digest ON items(digest, holder)",
                f"PRAGMA user_version={SCHEMA_VERSION}",
            )
        except sqlite3.DatabaseError as exc:
            raise VaultIndexError(
                f"vault catalogue {path} cannot be opened: {exc}",
                hint="Move the file away; 'sahara vault import' can re-add CAR exports.",
            ) from None

    def _migrate(self) -> None:
        """Version 1 catalogues have no ``digest`` column: their commitments are plain
        SHA-256s, which :meth:`by_digest` falls back on."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(items)")}
        if "digest" in columns:
            return
        try:
            setup_sqlite(self._conn, "ALTER TABLE items ADD COLUMN digest TEXT")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # another process added it just now
                raise

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def insert(self, **fields: Any) -> Item:
        fields.setdefault("created_at", time.time())
        names = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self.transaction() as conn:
            cur = conn.execute(
                f"INSERT INTO items ({names}) VALUES ({marks})",  # noqa: S608 - names are ours
                tuple(fields.values()),
            )
            row_id = cur.lastrowid
        assert row_id is not None
        return self.by_id(row_id)

    def update(self, item_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self.transaction() as conn:
            conn.execute(
                f"UPDATE items SET {sets} WHERE id = ?",  # noqa: S608 - names are ours
                (*fields.values(), item_id),
            )

    def delete(self, item_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM items WHERE id = ?", (item_id,))

    def _one(self, where: str, *args: Any) -> Item | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM items WHERE {where} ORDER BY id DESC LIMIT 1",  # noqa: S608
            args,
        ).fetchone()
        if row is None:
            return None
        item = _item(row)
        item.grants = self.grants(item.id)
        return item

    def by_id(self, item_id: int) -> Item:
        item = self._one("id = ?", item_id)
        if item is None:
            raise VaultItemNotFound(f"no vault item #{item_id}")
        return item

    def by_cid(self, cid: str) -> Item | None:
        return self._one("cid = ?", cid)

    def by_asset(self, asset_id: int) -> Item | None:
        return self._one("asset_id = ?", asset_id)

    def by_name(self, name: str) -> Item | None:
        return self._one("name = ?", name)

    def by_digest(self, digest: str, holder: str, encrypted: bool) -> Item | None:
        """An item added by ``holder`` whose plaintext has this SHA-256 (rows written
        before the digest was kept have it as their commitment)."""
        return self._one(
            "coalesce(digest, commitment) = ? AND lower(holder) = lower(?) AND encrypted = ? "
            "AND origin = 'added'",
            digest,
            holder,
            int(encrypted),
        )

    def items(self) -> list[Item]:
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM items ORDER BY id").fetchall()  # noqa: S608
        out = [_item(row) for row in rows]
        for item in out:
            item.grants = self.grants(item.id)
        return out

    def in_state(self, state: str) -> list[Item]:
        return [item for item in self.items() if item.state == state]

    def roots(self) -> set[str]:
        return {row[0] for row in self._conn.execute("SELECT cid FROM items")}

    def grant(self, item_id: int, address: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO grants (item_id, address, created_at) VALUES (?, ?, ?)",
                (item_id, address.lower(), time.time()),
            )

    def grants(self, item_id: int) -> list[str]:
        rows = self._conn.execute(
            "SELECT address FROM grants WHERE item_id = ? ORDER BY created_at", (item_id,)
        )
        return [row[0] for row in rows]

    def is_granted(self, item_id: int, address: str) -> bool:
        return address.lower() in self.grants(item_id)
