"""The event log of the protocol index: every event of every contract, and how to query it.

Each event is kept with its contract, name, block, transaction, log index, block time
and arguments (JSON; big integers stay exact), with the asset it is about and every
address among its arguments in tables of their own, so that ``sahara events`` finds the
events of one asset or one account with an index rather than a scan.

The SAPs' events are kept the same way: a job's events (``JobSubmitted``,
``JobFinalized``, ``JobCancelled``) are about its base model, its inputs and, once
finalised, its output; a recorded answer (``InferenceRecorded``, or the Provenance
contract's ``Recorded``) is about the asset that answered and the sources it used.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from functools import cache
from typing import Any

from sahara_cli.protocol.events import EventQuery, LoggedEvent
from sahara_cli.protocol.values import Event


def receipt_assets_of(events: Sequence[tuple[str, Event, int | None]]) -> dict[int, int]:
    """The asset of each receipt these events mint or change.

    Only the Attribution contract mints receipts and changes their shares, and it logs
    ``ContributorsSet(asset)`` after doing so in the same transaction: the receipts
    named before it in that transaction are of its asset.
    """
    found: dict[int, int] = {}
    pending: dict[str, list[int]] = {}
    for contract, event, _ in events:
        if contract == "Receipts" and "token_id" in event.args:
            pending.setdefault(event.tx_hash, []).append(int(event.args["token_id"]))
        elif (contract, event.name) == ("Attribution", "ContributorsSet"):
            for token in pending.pop(event.tx_hash, []):
                found[token] = int(event.args["asset"])
    return found


def asset_of_event(db: sqlite3.Connection, e: Event, receipt_assets: dict[int, int]) -> int | None:
    """The asset an event is about: its own ``asset``, or that of its offer, license or
    receipt."""
    args = e.args
    if "asset" in args:
        return int(args["asset"])
    for key, table in (("offer", "offers"), ("license", "licenses"), ("token_id", "receipts")):
        if key in args:
            if key == "token_id" and int(args[key]) in receipt_assets:
                return receipt_assets[int(args[key])]
            sql = f"SELECT asset FROM {table} WHERE id = ?"  # noqa: S608  # fixed table names
            row = db.execute(sql, (int(args[key]),)).fetchone()
            return int(row[0]) if row and row[0] is not None else None
    return None


@cache
def _address_arguments(contract: str, event: str) -> tuple[tuple[str, str], ...]:
    """(argument, component) of every address in an event; component "" for a plain one."""
    from sahara_cli.protocol import artifacts

    found: list[tuple[str, str]] = []
    for entry in artifacts.artifact(contract)["abi"]:
        if entry["type"] != "event" or entry["name"] != event:
            continue
        for param in entry["inputs"]:
            if param["type"] == "address":
                found.append((param["name"], ""))
            for component in param.get("components", []):
                if component["type"] == "address":
                    found.append((param["name"], component["name"]))
    return tuple(found)


def event_addresses(contract: str, e: Event) -> set[str]:
    """Every address among an event's arguments (contributors' accounts included)."""
    found: set[str] = set()
    for name, component in _address_arguments(contract, e.name):
        value = e.args.get(name)
        if not component:
            found.add(str(value))
        else:
            items = value if isinstance(value, list) else [value]
            found.update(str(item[component]) for item in items if isinstance(item, dict))
    return found


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    raise TypeError(f"cannot keep {type(value).__name__} in the event log")


def job_assets(db: sqlite3.Connection, contract: str, e: Event) -> list[int]:
    """The other assets an event is about: a job's base model, inputs and output (kept
    in the ``jobs`` table from its ``JobSubmitted``), the sources of a recorded answer."""
    if contract in ("InferenceRecord", "Provenance"):
        return [int(a) for a in e.args.get("sources", [])]
    if contract != "TrainingRecord" or "job" not in e.args:
        return []
    job = int(e.args["job"])
    if e.name == "JobSubmitted":
        found = [int(e.args["base"])] if int(e.args["base"]) else []
        found += [int(a) for a in e.args["inputs"]]
        db.execute(
            "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?)",
            (job, json.dumps(found), e.block, e.log_index),
        )
        return found
    row = db.execute("SELECT assets, block, log_index FROM jobs WHERE id = ?", (job,)).fetchone()
    if row is None:
        return []
    found = [int(a) for a in json.loads(row[0])]
    if e.name == "JobFinalized":
        output = int(e.args["asset"])
        found.append(output)
        db.execute("UPDATE jobs SET assets = ? WHERE id = ?", (json.dumps(found), job))
        # The job's submission is about its output from now on, too.
        db.execute("INSERT OR IGNORE INTO event_assets VALUES (?, ?, ?)", (output, row[1], row[2]))
    return found


def log_event(
    db: sqlite3.Connection,
    contract: str,
    e: Event,
    ts: int | None,
    asset: int | None,
    also: Sequence[int] = (),
) -> None:
    """Keep one event, with the asset it is about (and ``also`` those assets)."""
    key = (e.block, e.log_index)
    db.execute(
        "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (*key, e.tx_hash, contract, e.name, e.address, ts or 0, json.dumps(e.args, default=_json)),
    )
    assets = ([asset] if asset is not None else []) + list(also)
    db.executemany(
        "INSERT OR IGNORE INTO event_assets VALUES (?, ?, ?)",
        [(a, *key) for a in dict.fromkeys(assets)],
    )
    db.executemany(
        "INSERT OR IGNORE INTO event_addresses VALUES (?, ?, ?)",
        [(address, *key) for address in sorted(event_addresses(contract, e))],
    )


#: The columns of a logged event, in the order of :class:`LoggedEvent`.
EVENT_COLUMNS = "e.contract, e.name, e.address, e.block, e.tx_hash, e.log_index, e.time, e.args"


def events_sql(query: EventQuery) -> tuple[str, dict[str, Any]]:
    """The SELECT of the events ``query`` asks for, one more than its limit."""
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": query.limit + 1}
    for column, key, value in (
        ("e.contract =", "contract", query.contract),
        ("e.name =", "event", query.event),
        ("e.block >=", "first", query.from_block),
        ("e.block <=", "last", query.to_block),
    ):
        if value is not None:
            conditions.append(f"{column} :{key}")
            params[key] = value
    for table, column, value in (
        ("event_assets", "asset", query.asset_id),
        ("event_addresses", "address", query.address),
    ):
        if value is not None:
            conditions.append(
                f"EXISTS (SELECT 1 FROM {table} x WHERE x.{column} = :{column} "  # noqa: S608
                "AND x.block = e.block AND x.log_index = e.log_index)"
            )
            params[column] = value
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    order = "ASC" if query.oldest_first else "DESC"
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM events e{where} "  # noqa: S608
        f"ORDER BY e.block {order}, e.log_index {order} LIMIT :limit"
    )
    return sql, params


def logged_event(row: Sequence[Any]) -> LoggedEvent:
    return LoggedEvent(
        contract=row[0],
        event=row[1],
        address=row[2],
        block=row[3],
        tx_hash=row[4],
        log_index=row[5],
        time=row[6],
        args=json.loads(row[7]),
    )
