"""The tables of the protocol index, and what each event does to them.

Split from :mod:`sahara_cli.protocol.index` (which reads the chain and runs the queries):
the SQL schema, the handlers that apply one decoded event inside the index's write
transaction, the event log every event is written to, the search SQL, and the rows read
back as values.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sahara_cli.protocol.event_log import (
    asset_of_event,
    job_assets,
    log_event,
    receipt_assets_of,
)
from sahara_cli.protocol.values import (
    ASSET_KINDS,
    FOREVER,
    LICENSE_NAMES,
    ZERO_ADDRESS,
    Asset,
    Event,
    License,
    Offer,
)

#: Search weights of (name, kind, cid, uri, type): a hit in the name counts most.
SEARCH_WEIGHTS = (10.0, 4.0, 2.0, 1.0, 4.0)
SEARCH_COLUMNS = ("name", "kind", "cid", "uri", "type")
INT64_MAX = 2**63 - 1

SCHEMA = """
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
-- every event of every protocol contract, arguments as JSON (big integers exact)
CREATE TABLE events (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    contract TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    time INTEGER NOT NULL,
    args TEXT NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX events_name ON events (contract, name, block);
-- the asset each event is about, and every address among its arguments
CREATE TABLE event_assets (
    asset INTEGER NOT NULL,
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    PRIMARY KEY (asset, block, log_index)
);
CREATE TABLE event_addresses (
    address TEXT NOT NULL,
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    PRIMARY KEY (address, block, log_index)
);
-- receipts (tokens of the Receipts contract) and the asset each one is of
CREATE TABLE receipts (id INTEGER PRIMARY KEY, asset INTEGER, holder TEXT NOT NULL);
-- jobs of the training SAP: the assets each one is about (base, inputs, output) and
-- where its JobSubmitted is
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    assets TEXT NOT NULL,
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL
);
"""
FTS = (
    "CREATE VIRTUAL TABLE offer_text USING fts5(name, kind, cid, uri, type, tokenize = 'unicode61')"
)
PLAIN_TEXT = "CREATE TABLE offer_text (name TEXT, kind TEXT, cid TEXT, uri TEXT, type TEXT)"
TABLES = (
    "assets",
    "offers",
    "licenses",
    "credits",
    "claims",
    "offer_text",
    "events",
    "event_assets",
    "event_addresses",
    "receipts",
    "jobs",
)

ASSET_COLUMNS = (
    "a.id, a.owner, a.kind, a.cid, a.commitment, a.name, a.uri, a.meter, a.created, a.parents"
)
OFFER_COLUMNS = (
    "o.id, o.asset, o.type, o.price, o.duration, o.terms, o.share_bps, o.partner, "
    "o.valid_until, o.paused, o.sold, o.created"
)
OFFER_WIDTH = OFFER_COLUMNS.count(",") + 1
LICENSE_COLUMNS = (
    "id, offer, asset, holder, type, price, start, expiry, calls, used, terms, share_bps"
)
#: An offer that can be bought now: not paused, not expired, not a taken partnership.
OPEN = (
    "o.paused = 0 AND (o.open_until = 0 OR o.open_until > :now) "
    "AND NOT (o.type = 'partnership' AND o.partner IS NOT NULL AND o.sold > 0)"
)
WORD = re.compile(r"[^\W_]+")


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


# -- search --------------------------------------------------------------------------


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


def match_query(words: Sequence[str]) -> str:
    """An FTS5 query: every word, as a quoted prefix (``"llama"*``), must match."""
    return " ".join(f'"{w}"*' for w in words)


def like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def fts_sql(words: Sequence[str]) -> tuple[str, dict[str, Any]]:
    weights = ", ".join(str(w) for w in SEARCH_WEIGHTS)
    sql = (
        f"SELECT {OFFER_COLUMNS}, {ASSET_COLUMNS}, -bm25(offer_text, {weights}) AS score "  # noqa: S608
        "FROM offer_text JOIN offers o ON o.id = offer_text.rowid "
        "JOIN assets a ON a.id = o.asset WHERE offer_text MATCH :match"
    )
    return sql, {"match": match_query(words)}


def like_sql(words: Sequence[str]) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    conditions, scores = [], []
    for i, word in enumerate(words):
        params[f"w{i}"] = like_pattern(word)
        hits = [f"t.{c} LIKE :w{i} ESCAPE '\\'" for c in SEARCH_COLUMNS]
        conditions.append(f"({' OR '.join(hits)})")
        scores += [f"({h}) * {w}" for h, w in zip(hits, SEARCH_WEIGHTS, strict=True)]
    sql = (
        f"SELECT {OFFER_COLUMNS}, {ASSET_COLUMNS}, {' + '.join(scores)} AS score "  # noqa: S608
        "FROM offer_text t JOIN offers o ON o.id = t.rowid "
        f"JOIN assets a ON a.id = o.asset WHERE {' AND '.join(conditions)}"
    )
    return sql, params


# -- applying events -----------------------------------------------------------------


def _registered(db: sqlite3.Connection, e: Event, ts: int | None) -> None:
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


def _metadata_updated(db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
    asset, uri = int(e.args["asset"]), e.args["uri"]
    db.execute("UPDATE assets SET uri = ? WHERE id = ?", (uri, asset))
    db.execute(
        "UPDATE offer_text SET uri = ? WHERE rowid IN (SELECT id FROM offers WHERE asset = ?)",
        (uri, asset),
    )


def _meter_changed(db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
    db.execute("UPDATE assets SET meter = ? WHERE id = ?", (e.args["meter"], int(e.args["asset"])))


def _offered(db: sqlite3.Connection, e: Event, ts: int | None) -> None:
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
    row = db.execute("SELECT name, kind, cid, uri FROM assets WHERE id = ?", (asset,)).fetchone()
    text = row if row is not None else ("", "", "", "")
    db.execute("DELETE FROM offer_text WHERE rowid = ?", (offer,))
    db.execute(
        "INSERT INTO offer_text (rowid, name, kind, cid, uri, type) VALUES (?, ?, ?, ?, ?, ?)",
        (offer, *text, kind),
    )


def _offer_changed(db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
    db.execute(
        "UPDATE offers SET price = ?, paused = ? WHERE id = ?",
        (str(e.args["price"]), int(bool(e.args["paused"])), int(e.args["offer"])),
    )


def _licensed(db: sqlite3.Connection, e: Event, ts: int | None) -> None:
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


def _metered(db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
    license_id, calls = int(e.args["license"]), int(e.args["calls"])
    row = db.execute("SELECT calls, used FROM licenses WHERE id = ?", (license_id,)).fetchone()
    if row is None:
        return
    db.execute(
        "UPDATE licenses SET calls = ?, used = ? WHERE id = ?",
        (str(max(0, int(row[0]) - calls)), str(int(row[1]) + calls), license_id),
    )


def _refunded(db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
    db.execute("UPDATE licenses SET calls = '0' WHERE id = ?", (int(e.args["license"]),))


def _credited(db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
    key = (e.args["account"], int(e.args["asset"]))
    row = db.execute("SELECT amount FROM credits WHERE account = ? AND asset = ?", key).fetchone()
    total = (int(row[0]) if row else 0) + int(e.args["amount"])
    db.execute("INSERT OR REPLACE INTO credits VALUES (?, ?, ?)", (*key, str(total)))


def _claimed(db: sqlite3.Connection, e: Event, _ts: int | None) -> None:
    db.execute(
        "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
        (e.block, e.log_index, e.args["account"], str(e.args["amount"]), e.tx_hash),
    )


def _receipt_minted(db: sqlite3.Connection, e: Event, receipt_assets: dict[int, int]) -> None:
    token = int(e.args["token_id"])
    if int(e.args["sender"], 16) == 0:  # a mint: receipts never move after it
        db.execute(
            "INSERT OR REPLACE INTO receipts VALUES (?, ?, ?)",
            (token, receipt_assets.get(token), e.args["receiver"]),
        )


#: What each event does to the state tables, by (contract, event); the others only log.
APPLY: dict[tuple[str, str], Callable[[sqlite3.Connection, Event, int | None], None]] = {
    ("AssetRegistry", "Registered"): _registered,
    ("AssetRegistry", "MetadataUpdated"): _metadata_updated,
    ("AssetRegistry", "MeterChanged"): _meter_changed,
    ("Licensing", "Offered"): _offered,
    ("Licensing", "OfferChanged"): _offer_changed,
    ("Licensing", "Licensed"): _licensed,
    ("Licensing", "Metered"): _metered,
    ("Licensing", "Refunded"): _refunded,
    ("Attribution", "Credited"): _credited,
    ("Attribution", "Claimed"): _claimed,
}


def apply_events(db: sqlite3.Connection, events: Sequence[tuple[str, Event, int | None]]) -> None:
    """Apply ``(contract, event, block time)`` in chain order: the state tables, and the
    event log with the asset and the addresses of each event."""
    receipt_assets = receipt_assets_of(events)
    for contract, event, ts in events:
        handler = APPLY.get((contract, event.name))
        if handler is not None:
            handler(db, event, ts)
        elif (contract, event.name) == ("Receipts", "Transfer"):
            _receipt_minted(db, event, receipt_assets)
        asset = asset_of_event(db, event, receipt_assets)
        log_event(db, contract, event, ts, asset, job_assets(db, contract, event))


# -- rows to values ------------------------------------------------------------------


def drop_all(db: sqlite3.Connection) -> None:
    """Drop every table: virtual ones first, which takes their shadow tables along."""
    for virtual in (True, False):
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND (sql LIKE 'CREATE VIRTUAL%') = ?",
            (virtual,),
        ).fetchall()
        for (name,) in rows:
            db.execute(f'DROP TABLE IF EXISTS "{name}"')


def address_arg(text: str | None) -> str | None:
    from sahara_cli.identity.keys import parse_address

    return parse_address(text) if text is not None else None


def where(*pairs: tuple[str, Any]) -> tuple[str, dict[str, Any]]:
    """A WHERE clause matching each column whose value is not None."""
    used = [(column, value) for column, value in pairs if value is not None]
    if not used:
        return "", {}
    clause = " AND ".join(f"{column} = :p{i}" for i, (column, _) in enumerate(used))
    return f" WHERE {clause}", {f"p{i}": value for i, (_, value) in enumerate(used)}


def listing_of(row: Sequence[Any]) -> Listing:
    """A row of offer columns, then asset columns, then the score."""
    return Listing(offer_of(row[:OFFER_WIDTH]), asset_of(row[OFFER_WIDTH:-1]), float(row[-1]))


def asset_of(row: Sequence[Any]) -> Asset:
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


def offer_of(row: Sequence[Any]) -> Offer:
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


def license_of(row: Sequence[Any]) -> License:
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
