"""A client-side index of the protocol's events: list and search assets, offers, licenses,
and query the events themselves.

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

Every event of every protocol contract (receipts included) and of the SAPs is also kept
in an event log (``protocol/event_log.py``) that :meth:`ProtocolIndex.events` queries by
contract, event, asset, address and block range. The tables and what each event does to them are in
``protocol/index_tables.py``.

The file is derived data: deleting it costs one full sync.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    NodeRPCError,
    ProtocolError,
    ProtocolIndexError,
    ProtocolInvalidArgument,
)
from sahara_cli.fsutil import PRIVATE_FILE, ensure_private_dir
from sahara_cli.protocol.event_log import events_sql, logged_event
from sahara_cli.protocol.events import EventQuery, LoggedEvent
from sahara_cli.protocol.index_tables import (
    ASSET_COLUMNS,
    FTS,
    LICENSE_COLUMNS,
    OFFER_COLUMNS,
    OPEN,
    PLAIN_TEXT,
    SCHEMA,
    SEARCH_COLUMNS,
    SEARCH_WEIGHTS,
    TABLES,
    WORD,
    Listing,
    address_arg,
    apply_events,
    asset_of,
    drop_all,
    fts5_available,
    fts_sql,
    license_of,
    like_sql,
    listing_of,
    where,
)
from sahara_cli.protocol.values import ASSET_KINDS, Asset, Event, License, Offer

if TYPE_CHECKING:
    from sahara_cli.protocol.client import Contract, Protocol

__all__ = [
    "CHUNK_BLOCKS",
    "SCHEMA_VERSION",
    "SEARCH_COLUMNS",
    "SEARCH_WEIGHTS",
    "Listing",
    "ProtocolIndex",
    "ProtocolIndexError",
    "fts5_available",
    "offer_status",
]

log = logging.getLogger("sahara.index")

#: Bump when the tables change: an index of another version is rebuilt from block 0.
SCHEMA_VERSION = 3
#: Blocks per eth_getLogs request (nodes commonly cap a query at 10,000 blocks).
CHUNK_BLOCKS = 2_000
#: Tries of a sync that keeps losing the race to another process.
SYNC_ATTEMPTS = 3
#: How long a writer waits for another process's write transaction to end.
LOCK_TIMEOUT = 30.0

Progress = Callable[[str], None]


# -- values --------------------------------------------------------------------------


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
        emitters = [*proto.contracts, *proto.saps]
        self._contracts: dict[str, Contract] = {c.address.lower(): c for c in emitters}
        #: Topic 0 of every event of every contract and SAP: the index keeps them all.
        self._topics = ["0x" + topic.hex() for c in emitters for topic in c.events]
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
                drop_all(db)
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(FTS if self.fts else PLAIN_TEXT)
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
        missing = {e.block for e, ts in found if ts is None}
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
                for name in TABLES:
                    db.execute(f"DELETE FROM {name}")  # noqa: S608  # fixed table names
            names = {address: c.name for address, c in self._contracts.items()}
            apply_events(db, [(names[e.address.lower()], e, ts) for e, ts in events])
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("block", str(head.number)), ("hash", head.hash), ("time", str(head.timestamp))],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(events)

    # -- queries -------------------------------------------------------------------

    def _rows(self, sql: str, params: dict[str, Any] | Sequence[Any] = ()) -> list[Any]:
        with self._guard("read"):
            return self.db.execute(sql, params).fetchall()

    def asset(self, asset_id: int) -> Asset | None:
        """One asset as last indexed, or None when the chain has none with this id."""
        self.sync()
        rows = self._rows(f"SELECT {ASSET_COLUMNS} FROM assets a WHERE a.id = ?", (asset_id,))  # noqa: S608
        return asset_of(rows[0]) if rows else None

    def assets(self, owner: str | None = None, kind: str | None = None) -> list[Asset]:
        """Registered assets, oldest first, of one owner and/or one kind."""
        if kind is not None and kind not in ASSET_KINDS:
            raise ProtocolInvalidArgument(
                f"unknown asset kind {kind!r}", hint=f"Use one of: {', '.join(ASSET_KINDS)}."
            )
        self.sync()
        clause, params = where(("a.owner", address_arg(owner)), ("a.kind", kind))
        rows = self._rows(f"SELECT {ASSET_COLUMNS} FROM assets a{clause} ORDER BY a.id", params)  # noqa: S608
        return [asset_of(r) for r in rows]

    def offers(self, asset: int | None = None, open_only: bool = False) -> list[Offer]:
        """License offers, oldest first; ``open_only``: those that can be bought now."""
        return [listing.offer for listing in self.listings(asset, open_only)]

    def listings(self, asset: int | None = None, open_only: bool = False) -> list[Listing]:
        """Like :meth:`offers`, each with its asset (one query, for listing them)."""
        self.sync()
        clause, params = where(("o.asset", asset))
        if open_only:
            clause += (" AND " if clause else " WHERE ") + OPEN
        rows = self._rows(
            f"SELECT {OFFER_COLUMNS}, {ASSET_COLUMNS}, 0.0 "  # noqa: S608
            f"FROM offers o JOIN assets a ON a.id = o.asset{clause} ORDER BY o.id",
            {**params, "now": self.now},
        )
        return [listing_of(r) for r in rows]

    def search(self, query: str, limit: int = 20, open_only: bool = True) -> list[Listing]:
        """Offers whose asset name, kind, content id, URI or license type match ``query``.

        Every word must match (as a prefix of a word: ``lla`` finds ``llama``); the best
        matches come first, a hit in the asset's name counting most.
        """
        words = WORD.findall(query.lower())
        if not words:
            raise ProtocolInvalidArgument(
                f"nothing to search for in {query!r}", hint="Search for words: llama, dataset..."
            )
        if limit < 1:
            raise ProtocolInvalidArgument(f"the limit must be at least 1, got {limit}")
        self.sync()
        sql, params = fts_sql(words) if self.fts else like_sql(words)
        if open_only:
            sql += " AND " + OPEN
        sql += " ORDER BY score DESC, o.id LIMIT :limit"
        params |= {"now": self.now, "limit": limit}
        return [listing_of(r) for r in self._rows(sql, params)]

    def licenses(self, holder: str | None = None, asset: int | None = None) -> list[License]:
        """Licenses sold, oldest first, to one holder and/or of one asset."""
        self.sync()
        clause, params = where(("holder", address_arg(holder)), ("asset", asset))
        rows = self._rows(f"SELECT {LICENSE_COLUMNS} FROM licenses{clause} ORDER BY id", params)  # noqa: S608
        return [license_of(r) for r in rows]

    def credits(self, account: str) -> list[dict[str, Any]]:
        """What each asset credited ``account`` in all: ``{asset, name, amount}`` (wei)."""
        self.sync()
        rows = self._rows(
            "SELECT c.asset, a.name, c.amount FROM credits c LEFT JOIN assets a ON a.id = c.asset "
            "WHERE c.account = ? ORDER BY c.asset",
            (address_arg(account),),
        )
        return [{"asset": r[0], "name": r[1] or "", "amount": int(r[2])} for r in rows]

    def unclaimed_credits(self, account: str) -> list[dict[str, Any]]:
        """What each asset credited ``account`` since its last claim (a claim pays all):
        ``{asset, name, amount}`` (wei), by asset; their sum is what it can claim now."""
        import json

        self.sync()
        who = str(address_arg(account))
        last = self._rows(
            "SELECT block, log_index FROM claims WHERE account = ? "
            "ORDER BY block DESC, log_index DESC LIMIT 1",
            (who,),
        )
        since = (last[0][0], last[0][1]) if last else (-1, -1)
        rows = self._rows(
            "SELECT args FROM events WHERE contract = 'Attribution' AND name = 'Credited' "
            "AND (block, log_index) > (?, ?) ORDER BY block, log_index",
            since,
        )
        totals: dict[int, int] = {}
        for (args,) in rows:
            credit = json.loads(args)
            if str(credit["account"]).lower() == who.lower():
                asset = int(credit["asset"])
                totals[asset] = totals.get(asset, 0) + int(credit["amount"])
        out = []
        for asset, amount in sorted(totals.items()):
            named = self._rows("SELECT name FROM assets WHERE id = ?", (asset,))
            out.append(
                {"asset": asset, "name": (named[0][0] if named else "") or "", "amount": amount}
            )
        return out

    def claims(self, account: str) -> list[dict[str, Any]]:
        """Every claim ``account`` made: ``{block, tx_hash, amount}`` (wei), oldest first."""
        self.sync()
        rows = self._rows(
            "SELECT block, tx_hash, amount FROM claims WHERE account = ? ORDER BY block, log_index",
            (address_arg(account),),
        )
        return [{"block": r[0], "tx_hash": r[1], "amount": int(r[2])} for r in rows]

    def events(self, query: EventQuery) -> tuple[list[LoggedEvent], bool]:
        """The logged events ``query`` asks for (see :class:`EventQuery`), and whether
        more matched than its limit."""
        query = query.checked()
        self.sync()
        sql, params = events_sql(query)
        rows = self._rows(sql, params)
        return [logged_event(r) for r in rows[: query.limit]], len(rows) > query.limit


# -- helpers -----------------------------------------------------------------------


def _too_much(exc: NodeRPCError) -> bool:
    """Whether the node refused a log query for its size (then a smaller range may pass)."""
    text = exc.message.lower()
    return exc.rpc_code == -32005 or any(
        word in text for word in ("range", "limit", "too many", "exceed", "results")
    )
