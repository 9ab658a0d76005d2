"""A client-side index of the protocol's events: list and search assets, offers, licenses.

The contracts keep their state in mappings that cannot be enumerated: a node answers
``getOffer(7)`` but not "which offers are open" or "which models mention llama". The
index reads the events of the protocol contracts with ``eth_getLogs`` and keeps the state
they describe in a SQLite file, so listing and searching work against any node (ours,
hardhat, a remote one) with nothing but standard JSON-RPC.

- ``sync()`` reads the blocks after the last indexed one, in chunks, and applies their
  events in one transaction. The hash of the last indexed block is kept: when the chain
  no longer has it (a reset dev chain, a reorg, another chain at the same path), the
  index is rebuilt from block 0. Every query syncs first.
- Two processes may sync at once: the second one to write sees that the first moved the
  index on, and starts over from there instead of applying the same events twice.
- uint256 values (prices, amounts, calls, expiries) are kept as decimal text, because
  SQLite integers stop at 2**63; sums are done in Python.
- Search is SQLite FTS5 over the asset name, kind, content id, metadata URI and license
  type of every offer, ranked by bm25; a SQLite built without FTS5 falls back to LIKE.

The file is derived data: deleting it costs one full sync.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    NodeRPCError,
    ProtocolError,
    ProtocolIndexError,
    ProtocolInvalidArgument,
)
from sahara_cli.fsutil import PRIVATE_FILE, ensure_private_dir
from sahara_cli.protocol.client import (
    ASSET_KINDS,
    FOREVER,
    LICENSE_NAMES,
    ZERO_ADDRESS,
    Asset,
    Event,
    License,
    Offer,
)

if TYPE_CHECKING:
    from sahara_cli.protocol.client import Contract, Protocol

log = logging.getLogger("sahara.index")

#: Bump when the tables change: an index of another version is rebuilt from block 0.
SCHEMA_VERSION = 1
#: Blocks per eth_getLogs request (nodes commonly cap a query at 10,000 blocks).
CHUNK_BLOCKS = 2_000
#: Tries of a sync that keeps losing the race to another process.
SYNC_ATTEMPTS = 3
#: How long a writer waits for another process's write transaction to end.
LOCK_TIMEOUT = 30.0
#: Search weights of (name, kind, cid, uri, type): a hit in the name counts most.
SEARCH_WEIGHTS = (10.0, 4.0, 2.0, 1.0, 4.0)
SEARCH_COLUMNS = ("name", "kind", "cid", "uri", "type")
INT64_MAX = 2**63 - 1

#: The events the index applies, by contract.
EVENTS = {
    "AssetRegistry": ("Registered", "MetadataUpdated", "MeterChanged"),
    "Licensing": ("Offered", "OfferChanged", "Licensed", "Metered", "Refunded"),
    "Attribution": ("Credited", "Claimed"),
    "Receipts": (),
    "Provenance": (),
}
#: Events whose rows keep the block's timestamp.
TIMED = frozenset({"Registered", "Offered", "Licensed"})

Progress = Callable[[str], None]

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE assets (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    cid TEXT NOT NULL,
    commitment TEXT NOT NULL,
    name TEXT NOT NULL,
    uri TEXT NOT NULL,
    meter TEXT NOT NULL,
    created INTEGER NOT NULL,
    parents TEXT NOT NULL,
    created_block INTEGER NOT NULL
);
CREATE INDEX assets_owner ON assets (owner);
CREATE TABLE offers (
    id INTEGER PRIMARY KEY,
    asset INTEGER NOT NULL,
    type TEXT NOT NULL,
    price TEXT NOT NULL,
    duration TEXT NOT NULL,
    terms TEXT NOT NULL,
    share_bps INTEGER NOT NULL,
    partner TEXT,
    valid_until TEXT NOT NULL,
    paused INTEGER NOT NULL,
    sold INTEGER NOT NULL,
    created INTEGER NOT NULL,
    -- valid_until capped at 2**63 - 1, for comparisons in SQL (0: no limit)
    open_until INTEGER NOT NULL,
    created_block INTEGER NOT NULL
);
CREATE INDEX offers_asset ON offers (asset);
CREATE TABLE licenses (
    id INTEGER PRIMARY KEY,
    offer INTEGER NOT NULL,
    asset INTEGER NOT NULL,
    holder TEXT NOT NULL,
    type TEXT NOT NULL,
    price TEXT NOT NULL,
    start TEXT NOT NULL,
    expiry TEXT,
    calls TEXT NOT NULL,
    used TEXT NOT NULL,
    terms TEXT NOT NULL,
    share_bps INTEGER NOT NULL,
    created_block INTEGER NOT NULL
);
CREATE INDEX licenses_holder ON licenses (holder);
CREATE INDEX licenses_asset ON licenses (asset);
CREATE TABLE credits (
    account TEXT NOT NULL,
    asset INTEGER NOT NULL,
    amount TEXT NOT NULL,
    PRIMARY KEY (account, asset)
);
CREATE TABLE claims (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    account TEXT NOT NULL,
    amount TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX claims_account ON claims (account);
"""
_FTS = (
    "CREATE VIRTUAL TABLE offer_text USING fts5(name, kind, cid, uri, type, tokenize = 'unicode61')"
)
_PLAIN_TEXT = "CREATE TABLE offer_text (name TEXT, kind TEXT, cid TEXT, uri TEXT, type TEXT)"
_TABLES = ("assets", "offers", "licenses", "credits", "claims", "offer_text")

_ASSET_COLUMNS = (
    "a.id, a.owner, a.kind, a.cid, a.commitment, a.name, a.uri, a.meter, a.created, a.parents"
)
_OFFER_COLUMNS = (
    "o.id, o.asset, o.type, o.price, o.duration, o.terms, o.share_bps, o.partner, "
    "o.valid_until, o.paused, o.sold, o.created"
)
_OFFER_WIDTH = _OFFER_COLUMNS.count(",") + 1
_LICENSE_COLUMNS = (
    "id, offer, asset, holder, type, price, start, expiry, calls, used, terms, share_bps"
)
#: An offer that can be bought now: not paused, not expired, not a taken partnership.
_OPEN = (
    "o.paused = 0 AND (o.open_until = 0 OR o.open_until > :now) "
    "AND NOT (o.type = 'partnership' AND o.partner IS NOT NULL AND o.sold > 0)"
)
_WORD = re.compile(r"[^\W_]+")


# -- values --------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """An offer with its asset, and how well it matched a search (higher is better)."""

    offer: Offer
    asset: Asset
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "offer": self.offer.to_dict(),
            "asset": self.asset.to_dict(),
            "score": self.score,
        }


@dataclass(frozen=True)
class _Block:
    number: int
    hash: str
    timestamp: int


@dataclass(frozen=True)
class _Mark:
    """Where the index stood: the last indexed block and its hash (None: nothing yet)."""

    block: int | None
    hash: str | None


def offer_status(offer: Offer, now: int) -> str:
    """``open``, ``paused``, ``expired`` or ``taken`` (a partnership already accepted)."""
    if offer.paused:
        return "paused"
    if offer.valid_until and now >= offer.valid_until:
        return "expired"
    if offer.type == "partnership" and offer.partner is not None and offer.sold > 0:
        return "taken"
    return "open"


@cache
def fts5_available() -> bool:
    """Whether this Python's SQLite has the FTS5 extension."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE probe USING fts5(text)")
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()
    return True


def _match_query(words: Sequence[str]) -> str:
    """An FTS5 query: every word, as a quoted prefix (``"llama"*``), must match."""
    return " ".join(f'"{w}"*' for w in words)


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- the index -----------------------------------------------------------------------


class ProtocolIndex:
    """The state of the protocol contracts, rebuilt from their events in a SQLite file."""

    def __init__(
        self,
        proto: Protocol,
        path: Path,
        *,
        chunk_blocks: int = CHUNK_BLOCKS,
        fts: bool | None = None,
    ) -> None:
        self.proto = proto
        self.node = proto.node
        self.path = path
        self.chunk_blocks = chunk_blocks
        self.fts = fts5_available() if fts is None else fts
        #: The head seen by the last sync: its number and timestamp ("now" for expiry).
        self.block: int | None = None
        self.now = 0
        self._contracts: dict[str, Contract] = {c.address.lower(): c for c in proto.contracts}
        self._topics = [c.topic(e) for c in proto.contracts for e in EVENTS[c.name]]
        self._handlers: dict[str, Callable[[sqlite3.Connection, Event, int | None], None]] = {
            "Registered": self._registered,
            "MetadataUpdated": self._metadata_updated,
            "MeterChanged": self._meter_changed,
            "Offered": self._offered,
            "OfferChanged": self._offer_changed,
            "Licensed": self._licensed,
            "Metered": self._metered,
            "Refunded": self._refunded,
            "Credited": self._credited,
            "Claimed": self._claimed,
        }
        self.db = self._open()

    @classmethod
    def for_home(cls, proto: Protocol, home_root: Path) -> ProtocolIndex:
        """The index of ``proto``'s chain in ``<home>/index/``, one file per chain.

        The name holds the chain id and the start of the genesis hash, so a dev chain
        reset with another genesis starts a fresh file instead of rebuilding another's.
        """
        genesis = proto.node.call("eth_getBlockByNumber", "0x0", False)
        if not genesis:
            raise ProtocolError("the node has no block 0")
        directory = home_root / "index"
        try:
            ensure_private_dir(directory)
        except OSError as exc:
            raise ProtocolIndexError(f"cannot create {directory}: {exc.strerror}") from exc
        name = f"protocol-{proto.node.chain_id()}-{genesis['hash'][2:18]}.sqlite"
        return cls(proto, directory / name)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ProtocolIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the file ------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        """Open the file, creating its tables; an unreadable file is replaced by a new one."""
        try:
            try:
                db = self._connect()
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError):  # locked, unwritable: not ours
                    raise
                log.warning(
                    "the protocol index %s is unreadable (%s): starting over", self.path, exc
                )
                self._remove()
                db = self._connect()
            self._prepare(db)
        except (sqlite3.Error, OSError) as exc:
            raise ProtocolIndexError(f"cannot open the protocol index {self.path}: {exc}") from exc
        return db

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE))
        db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = WAL")  # readers never wait for a sync
            db.execute("PRAGMA synchronous = NORMAL")  # a cache: a lost commit is re-read
        except BaseException:
            db.close()
            raise
        return db

    def _remove(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()

    @property
    def _schema(self) -> str:
        return f"{SCHEMA_VERSION} {'fts5' if self.fts else 'like'}"

    @staticmethod
    def _version(db: sqlite3.Connection) -> str | None:
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if found is None:
            return None
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return str(row[0]) if row else None

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Create the tables, or redo them when they are of another version (or search)."""
        if self._version(db) == self._schema:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            version = self._version(db)  # another process may have made them meanwhile
            if version != self._schema:
                if version is not None:
                    log.info("rebuilding the protocol index %s (was %s)", self.path, version)
                _drop_all(db)
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(_FTS if self.fts else _PLAIN_TEXT)
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (self._schema,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn SQLite's errors (a locked or broken file) into a SaharaError."""
        try:
            yield
        except sqlite3.Error as exc:
            raise ProtocolIndexError(
                f"cannot {action} the protocol index {self.path}: {exc}"
            ) from exc

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def _mark(self) -> _Mark:
        block, hash_ = self._meta("block"), self._meta("hash")
        return _Mark(int(block) if block is not None else None, hash_)

    # -- sync ----------------------------------------------------------------------

    def sync(self, progress: Progress | None = None) -> int:
        """Apply the events of the blocks not indexed yet; the number of events applied."""
        with self._guard("update"):
            for _ in range(SYNC_ATTEMPTS):
                head = self._head()
                mark = self._mark()
                start, rebuild = self._start(mark, head)
                self.block, self.now = head.number, head.timestamp
                if start > head.number and not rebuild:
                    return 0
                events = self._fetch(start, head.number, progress)
                applied = self._commit(mark, head, events, rebuild=rebuild)
                if applied is not None:
                    return applied
        raise ProtocolIndexError(
            f"another process keeps updating the protocol index {self.path}",
            hint="Try again once the other sahara command has finished.",
        )

    def _head(self) -> _Block:
        block = self._block("latest")
        if block is None:
            raise ProtocolError("the node has no latest block")
        return block

    def _block(self, tag: str) -> _Block | None:
        raw = self.node.call("eth_getBlockByNumber", tag, False)
        if not raw:
            return None
        return _Block(int(raw["number"], 16), raw["hash"], int(raw["timestamp"], 16))

    def _start(self, mark: _Mark, head: _Block) -> tuple[int, bool]:
        """The first block to read, and whether the index must be rebuilt from block 0."""
        if mark.block is None:
            return 0, False
        if mark.block <= head.number:
            block = head if mark.block == head.number else self._block(hex(mark.block))
            if block is not None and block.hash == mark.hash:
                return mark.block + 1, False
        log.info("block %s is no longer on the chain: rebuilding the protocol index", mark.block)
        return 0, True

    def _fetch(
        self, first: int, last: int, progress: Progress | None
    ) -> list[tuple[Event, int | None]]:
        """The protocol events of blocks ``first..last`` with their block timestamps."""
        found: list[tuple[Event, int | None]] = []
        size = max(1, self.chunk_blocks)
        cursor = first
        while cursor <= last:
            end = min(cursor + size - 1, last)
            try:
                logs = self._logs(cursor, end)
            except NodeRPCError as exc:
                if end == cursor or not _too_much(exc):
                    raise
                size = max(1, (end - cursor + 1) // 2)
                continue
            found.extend(self._decode(logs))
            cursor = end + 1
            if progress is not None:
                progress(f"Reading protocol events: block {end:,} of {last:,}")
        return self._timestamps(found)

    def _logs(self, first: int, last: int) -> list[dict[str, Any]]:
        logs: list[dict[str, Any]] = self.node.call(
            "eth_getLogs",
            {
                "fromBlock": hex(first),
                "toBlock": hex(last),
                "address": [c.address for c in self._contracts.values()],
                "topics": [self._topics],
            },
        )
        return logs

    def _decode(self, logs: list[dict[str, Any]]) -> Iterator[tuple[Event, int | None]]:
        for entry in logs:
            contract = self._contracts.get(str(entry.get("address", "")).lower())
            if contract is None or entry.get("removed"):
                continue
            try:
                event = contract.decode_log(entry)
            except Exception as exc:  # eth_abi raises several types on malformed data
                log.warning("skipping an undecodable %s log: %s", contract.name, exc)
                continue
            if event is not None:
                stamp = entry.get("blockTimestamp")
                yield event, int(stamp, 16) if stamp else None

    def _timestamps(self, found: list[tuple[Event, int | None]]) -> list[tuple[Event, int | None]]:
        """Fill in block timestamps the node left out of its logs (hardhat does)."""
        missing = {e.block for e, ts in found if ts is None and e.name in TIMED}
        if not missing:
            return found
        stamps: dict[int, int] = {}
        for number in sorted(missing):
            block = self._block(hex(number))
            if block is None:
                raise ProtocolError(f"the node lost block {number} while it was being indexed")
            stamps[number] = block.timestamp
        return [(e, ts if ts is not None else stamps.get(e.block)) for e, ts in found]

    def _commit(
        self,
        mark: _Mark,
        head: _Block,
        events: list[tuple[Event, int | None]],
        *,
        rebuild: bool,
    ) -> int | None:
        """Apply ``events`` in one transaction; None when another process got there first."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if self._mark() != mark:
                db.execute("ROLLBACK")
                return None
            if rebuild:
                for name in _TABLES:
                    db.execute(f"DELETE FROM {name}")  # noqa: S608  # fixed table names
            for event, timestamp in events:
                self._handlers[event.name](db, event, timestamp)
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("block", str(head.number)), ("hash", head.hash), ("time", str(head.timestamp))],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(events)

    # -- applying events -----------------------------------------------------------

    def _registered(self, db: sqlite3.Connection, e: Event, ts: int | None) -> None:
        a = e.args
        kind = int(a["kind"])
        db.execute(
            "INSERT OR REPLACE INTO assets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                int(a["asset"]),
                a["owner"],
                ASSET_KINDS[kind] if kind < len(ASSET_KINDS) else str(kind),
                a["cid"],
                "0x" + bytes(a["commitment"]).hex(),
                a["name"],
                a["uri"],
                a["owner"],
                ts or 0,
                json.dumps([int(p) for p in a["parents"]]),
                e.block,
            ),
        )

    def _metadata_updated(self, db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
        asset, uri = int(e.args["asset"]), e.args["uri"]
        db.execute("UPDATE assets SET uri = ? WHERE id = ?", (uri, asset))
        db.execute(
            "UPDATE offer_text SET uri = ? WHERE rowid IN (SELECT id FROM offers WHERE asset = ?)",
            (uri, asset),
        )

    def _meter_changed(self, db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
        db.execute(
            "UPDATE assets SET meter = ? WHERE id = ?", (e.args["meter"], int(e.args["asset"]))
        )

    def _offered(self, db: sqlite3.Connection, e: Event, ts: int | None) -> None:
        a = e.args
        offer, asset = int(a["offer"]), int(a["asset"])
        kind = LICENSE_NAMES.get(int(a["kind"]), str(a["kind"]))
        partner = None if a["partner"].lower() == ZERO_ADDRESS else a["partner"]
        valid_until = int(a["valid_until"])
        db.execute(
            "INSERT OR REPLACE INTO offers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?)",
            (
                offer,
                asset,
                kind,
                str(a["price"]),
                str(a["duration"]),
                "0x" + bytes(a["terms"]).hex(),
                int(a["share_bps"]),
                partner,
                str(valid_until),
                ts or 0,
                min(valid_until, INT64_MAX),
                e.block,
            ),
        )
        row = db.execute(
            "SELECT name, kind, cid, uri FROM assets WHERE id = ?", (asset,)
        ).fetchone()
        text = row if row is not None else ("", "", "", "")
        db.execute("DELETE FROM offer_text WHERE rowid = ?", (offer,))
        db.execute(
            "INSERT INTO offer_text (rowid, name, kind, cid, uri, type) VALUES (?, ?, ?, ?, ?, ?)",
            (offer, *text, kind),
        )

    def _offer_changed(self, db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
        db.execute(
            "UPDATE offers SET price = ?, paused = ? WHERE id = ?",
            (str(e.args["price"]), int(bool(e.args["paused"])), int(e.args["offer"])),
        )

    def _licensed(self, db: sqlite3.Connection, e: Event, ts: int | None) -> None:
        a = e.args
        offer = int(a["offer"])
        row = db.execute(
            "SELECT duration, terms, share_bps FROM offers WHERE id = ?", (offer,)
        ).fetchone()
        duration, terms, share = (int(row[0]), row[1], row[2]) if row else (0, "0x" + "00" * 32, 0)
        expiry = int(a["expiry"])
        # A renewal starts when the access it extends ends: expiry - duration.
        start = expiry - duration if expiry != FOREVER and duration else (ts or 0)
        db.execute(
            "INSERT OR REPLACE INTO licenses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '0', ?, ?, ?)",
            (
                int(a["license"]),
                offer,
                int(a["asset"]),
                a["holder"],
                LICENSE_NAMES.get(int(a["kind"]), str(a["kind"])),
                str(a["price"]),
                str(start),
                None if expiry == FOREVER else str(expiry),
                str(a["calls"]),
                terms,
                share,
                e.block,
            ),
        )
        db.execute("UPDATE offers SET sold = sold + 1 WHERE id = ?", (offer,))

    def _metered(self, db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
        license_id, calls = int(e.args["license"]), int(e.args["calls"])
        row = db.execute("SELECT calls, used FROM licenses WHERE id = ?", (license_id,)).fetchone()
        if row is None:
            return
        db.execute(
            "UPDATE licenses SET calls = ?, used = ? WHERE id = ?",
            (str(max(0, int(row[0]) - calls)), str(int(row[1]) + calls), license_id),
        )

    def _refunded(self, db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
        db.execute("UPDATE licenses SET calls = '0' WHERE id = ?", (int(e.args["license"]),))

    def _credited(self, db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
        key = (e.args["account"], int(e.args["asset"]))
        row = db.execute(
            "SELECT amount FROM credits WHERE account = ? AND asset = ?", key
        ).fetchone()
        total = (int(row[0]) if row else 0) + int(e.args["amount"])
        db.execute("INSERT OR REPLACE INTO credits VALUES (?, ?, ?)", (*key, str(total)))

    def _claimed(self, db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
        db.execute(
            "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
            (e.block, e.log_index, e.args["account"], str(e.args["amount"]), e.tx_hash),
        )

    # -- queries -------------------------------------------------------------------

    def _rows(self, sql: str, params: dict[str, Any] | Sequence[Any] = ()) -> list[Any]:
        with self._guard("read"):
            return self.db.execute(sql, params).fetchall()

    def asset(self, asset_id: int) -> Asset | None:
        """One asset as last indexed, or None when the chain has none with this id."""
        self.sync()
        rows = self._rows(f"SELECT {_ASSET_COLUMNS} FROM assets a WHERE a.id = ?", (asset_id,))  # noqa: S608
        return _asset(rows[0]) if rows else None

    def assets(self, owner: str | None = None, kind: str | None = None) -> list[Asset]:
        """Registered assets, oldest first, of one owner and/or one kind."""
        if kind is not None and kind not in ASSET_KINDS:
            raise ProtocolInvalidArgument(
                f"unknown asset kind {kind!r}", hint=f"Use one of: {', '.join(ASSET_KINDS)}."
            )
        self.sync()
        where, params = _where(("a.owner", _address(owner)), ("a.kind", kind))
        rows = self._rows(f"SELECT {_ASSET_COLUMNS} FROM assets a{where} ORDER BY a.id", params)  # noqa: S608
        return [_asset(r) for r in rows]

    def offers(self, asset: int | None = None, open_only: bool = False) -> list[Offer]:
        """License offers, oldest first; ``open_only``: those that can be bought now."""
        return [listing.offer for listing in self.listings(asset, open_only)]

    def listings(self, asset: int | None = None, open_only: bool = False) -> list[Listing]:
        """Like :meth:`offers`, each with its asset (one query, for listing them)."""
        self.sync()
        where, params = _where(("o.asset", asset))
        if open_only:
            where += (" AND " if where else " WHERE ") + _OPEN
        rows = self._rows(
            f"SELECT {_OFFER_COLUMNS}, {_ASSET_COLUMNS}, 0.0 "  # noqa: S608
            f"FROM offers o JOIN assets a ON a.id = o.asset{where} ORDER BY o.id",
            {**params, "now": self.now},
        )
        return [_listing(r) for r in rows]

    def search(self, query: str, limit: int = 20, open_only: bool = True) -> list[Listing]:
        """Offers whose asset name, kind, content id, URI or license type match ``query``.

        Every word must match (as a prefix of a word: ``lla`` finds ``llama``); the best
        matches come first, a hit in the asset's name counting most.
        """
        words = _WORD.findall(query.lower())
        if not words:
            raise ProtocolInvalidArgument(
                f"nothing to search for in {query!r}", hint="Search for words: llama, dataset..."
            )
        if limit < 1:
            raise ProtocolInvalidArgument(f"the limit must be at least 1, got {limit}")
        self.sync()
        sql, params = self._fts_sql(words) if self.fts else self._like_sql(words)
        if open_only:
            sql += " AND " + _OPEN
        sql += " ORDER BY score DESC, o.id LIMIT :limit"
        params |= {"now": self.now, "limit": limit}
        return [_listing(r) for r in self._rows(sql, params)]

    def _fts_sql(self, words: Sequence[str]) -> tuple[str, dict[str, Any]]:
        weights = ", ".join(str(w) for w in SEARCH_WEIGHTS)
        sql = (
            f"SELECT {_OFFER_COLUMNS}, {_ASSET_COLUMNS}, -bm25(offer_text, {weights}) AS score "  # noqa: S608
            "FROM offer_text JOIN offers o ON o.id = offer_text.rowid "
            "JOIN assets a ON a.id = o.asset WHERE offer_text MATCH :match"
        )
        return sql, {"match": _match_query(words)}

    def _like_sql(self, words: Sequence[str]) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {}
        conditions, scores = [], []
        for i, word in enumerate(words):
            params[f"w{i}"] = _like(word)
            hits = [f"t.{c} LIKE :w{i} ESCAPE '\\'" for c in SEARCH_COLUMNS]
            conditions.append(f"({' OR '.join(hits)})")
            scores += [f"({h}) * {w}" for h, w in zip(hits, SEARCH_WEIGHTS, strict=True)]
        sql = (
            f"SELECT {_OFFER_COLUMNS}, {_ASSET_COLUMNS}, {' + '.join(scores)} AS score "  # noqa: S608
            "FROM offer_text t JOIN offers o ON o.id = t.rowid "
            f"JOIN assets a ON a.id = o.asset WHERE {' AND '.join(conditions)}"
        )
        return sql, params

    def licenses(self, holder: str | None = None, asset: int | None = None) -> list[License]:
        """Licenses sold, oldest first, to one holder and/or of one asset."""
        self.sync()
        where, params = _where(("holder", _address(holder)), ("asset", asset))
        rows = self._rows(f"SELECT {_LICENSE_COLUMNS} FROM licenses{where} ORDER BY id", params)  # noqa: S608
        return [_license(r) for r in rows]

    def credits(self, account: str) -> list[dict[str, Any]]:
        """What each asset credited ``account`` in all: ``{asset, name, amount}`` (wei)."""
        self.sync()
        rows = self._rows(
            "SELECT c.asset, a.name, c.amount FROM credits c LEFT JOIN assets a ON a.id = c.asset "
            "WHERE c.account = ? ORDER BY c.asset",
            (_address(account),),
        )
        return [{"asset": r[0], "name": r[1] or "", "amount": int(r[2])} for r in rows]

    def claims(self, account: str) -> list[dict[str, Any]]:
        """Every claim ``account`` made: ``{block, tx_hash, amount}`` (wei), oldest first."""
        self.sync()
        rows = self._rows(
            "SELECT block, tx_hash, amount FROM claims WHERE account = ? ORDER BY block, log_index",
            (_address(account),),
        )
        return [{"block": r[0], "tx_hash": r[1], "amount": int(r[2])} for r in rows]


# -- rows to values ------------------------------------------------------------------


def _drop_all(db: sqlite3.Connection) -> None:
    """Drop every table: virtual ones first, which takes their shadow tables along."""
    for virtual in (True, False):
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND (sql LIKE 'CREATE VIRTUAL%') = ?",
            (virtual,),
        ).fetchall()
        for (name,) in rows:
            db.execute(f'DROP TABLE IF EXISTS "{name}"')


def _too_much(exc: NodeRPCError) -> bool:
    """Whether the node refused a log query for its size (then a smaller range may pass)."""
    text = exc.message.lower()
    return exc.rpc_code == -32005 or any(
        word in text for word in ("range", "limit", "too many", "exceed", "results")
    )


def _address(text: str | None) -> str | None:
    from sahara_cli.identity.keys import parse_address

    return parse_address(text) if text is not None else None


def _where(*pairs: tuple[str, Any]) -> tuple[str, dict[str, Any]]:
    """A WHERE clause matching each column whose value is not None."""
    used = [(column, value) for column, value in pairs if value is not None]
    if not used:
        return "", {}
    clause = " AND ".join(f"{column} = :p{i}" for i, (column, _) in enumerate(used))
    return f" WHERE {clause}", {f"p{i}": value for i, (_, value) in enumerate(used)}


def _listing(row: Sequence[Any]) -> Listing:
    """A row of offer columns, then asset columns, then the score."""
    return Listing(_offer(row[:_OFFER_WIDTH]), _asset(row[_OFFER_WIDTH:-1]), float(row[-1]))


def _asset(row: Sequence[Any]) -> Asset:
    return Asset(
        id=row[0],
        owner=row[1],
        kind=row[2],
        cid=row[3],
        commitment=row[4],
        name=row[5],
        uri=row[6],
        meter=row[7],
        created=row[8],
        parents=json.loads(row[9]),
    )


def _offer(row: Sequence[Any]) -> Offer:
    return Offer(
        id=row[0],
        asset=row[1],
        type=row[2],
        price=int(row[3]),
        duration=int(row[4]),
        terms=row[5],
        share_bps=row[6],
        partner=row[7],
        valid_until=int(row[8]),
        paused=bool(row[9]),
        sold=row[10],
        created=row[11],
    )


def _license(row: Sequence[Any]) -> License:
    return License(
        id=row[0],
        offer=row[1],
        asset=row[2],
        holder=row[3],
        type=row[4],
        price=int(row[5]),
        start=int(row[6]),
        expiry=int(row[7]) if row[7] is not None else None,
        calls=int(row[8]),
        used=int(row[9]),
        terms=row[10],
        share_bps=row[11],
    )
