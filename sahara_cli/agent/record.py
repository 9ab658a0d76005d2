"""Provenance records: what an answer was made from, kept locally and on chain.

A record names the agent (and its asset id once published), the model by content id,
the SHA-256 of the prompt (the canonical JSON of the messages the model saw) and of the
answer (its UTF-8 text), the assets the answer retrieved, each tool call (its name and
the SHA-256 of its canonical JSON arguments), the time and a random nonce (so two equal
answers in the same second are still two records). The record's digest is the
keccak256 of its canonical JSON; the inference SAP keeps that digest with the prompt
and answer hashes, so anyone holding the record can check it against the chain without
the chain holding the text. (Before the SAP, the ``Provenance`` contract kept the digests;
its records stay on chain and readable, and a committed row of this store without a
``recorded_in`` says it went there.)

Canonical JSON: keys sorted, no whitespace, UTF-8 (not ASCII-escaped).

Records sit in ``<home>/agents/<name>/records.sqlite``, one row per answer, with the
on-chain record id and transaction once committed (``recorded_in``: ``InferenceRecord``,
the SAP, or ``Provenance`` for rows committed before it), and for a metered answer the
license, the calls and the fee the same transaction settled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import AgentError, ProtocolInvalidArgument
from sahara_cli.identity.keys import keccak256

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Protocol, TxResult

#: Bump when the fields of a record change; it is part of what the digest covers.
#: Version 2 added ``nonce``; a version 1 record (without one) still checks out.
RECORD_VERSION = 2
#: Source assets the inference SAP keeps per record.
MAX_CHAIN_SOURCES = 4
#: Where a record is on chain: the inference SAP, or (committed before it) the
#: ``Provenance`` contract.
RECORDED_IN_SAP = "InferenceRecord"
RECORDED_IN_LEGACY = "Provenance"
#: Fields of a record the digest covers (everything but the digest itself).
BODY_FIELDS = (
    "version",
    "agent",
    "agent_asset",
    "model_cid",
    "runner",
    "prompt_hash",
    "answer_hash",
    "assets",
    "tool_calls",
    "created",
    "nonce",
)


def canonical_json(value: Any) -> bytes:
    """The one byte string a JSON value hashes as: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return "0x" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Record:
    """The provenance of one answer. ``digest`` covers every other field."""

    agent: str
    agent_asset: int | None
    model_cid: str | None
    runner: str
    prompt_hash: str
    answer_hash: str
    assets: list[int] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    created: int = 0
    nonce: str = ""
    version: int = RECORD_VERSION

    def body(self) -> dict[str, Any]:
        body = {name: getattr(self, name) for name in BODY_FIELDS}
        if not self.nonce:
            del body["nonce"]  # a version 1 record
        return body

    @property
    def digest(self) -> str:
        """``0x`` + keccak256 of the canonical JSON of the body, as stored on chain."""
        return "0x" + keccak256(canonical_json(self.body())).hex()

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "digest": self.digest}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """The record in ``data`` (extra keys are ignored); checks its digest if present."""
        try:
            record = cls(
                **{name: data[name] for name in BODY_FIELDS if name != "nonce"},
                nonce=str(data.get("nonce", "")),
            )
        except (KeyError, TypeError) as exc:
            raise AgentError(f"not a provenance record: missing {exc}") from None
        claimed = data.get("digest")
        if claimed is not None and claimed != record.digest:
            raise AgentError(
                f"provenance record digest {claimed} does not match its fields ({record.digest})"
            )
        return record


def build_record(
    *,
    agent: str,
    agent_asset: int | None,
    model_cid: str | None,
    runner: str,
    messages: Sequence[Mapping[str, Any]],
    answer: str,
    assets: Sequence[int] = (),
    tool_calls: Sequence[Mapping[str, Any]] = (),
    created: int | None = None,
    nonce: str | None = None,
) -> Record:
    """The record of one answer.

    ``messages``: the prompt as the model saw it, as ``{"role", "content", ...}`` dicts;
    ``assets``: the asset ids of the retrieved sources; ``tool_calls``: dicts with
    ``tool`` (or ``name``), ``arguments`` and optionally ``ok``. Only hashes of the
    prompt, the answer and the tool arguments enter the record. ``nonce`` (default: 16
    random bytes in hex) makes each answer's digest its own.
    """
    calls = []
    for call in tool_calls:
        name = call.get("tool", call.get("name"))
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            # Arguments given as JSON text hash as the value they stand for.
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
        calls.append(
            {
                "tool": str(name),
                "arguments_hash": sha256_hex(canonical_json(arguments)),
                "ok": bool(call.get("ok", True)),
            }
        )
    return Record(
        agent=agent,
        agent_asset=agent_asset,
        model_cid=model_cid,
        runner=runner,
        prompt_hash=sha256_hex(canonical_json([dict(m) for m in messages])),
        answer_hash=sha256_hex(answer.encode("utf-8")),
        assets=list(dict.fromkeys(int(a) for a in assets)),
        tool_calls=calls,
        created=int(time.time()) if created is None else int(created),
        nonce=secrets.token_hex(16) if nonce is None else nonce,
    )


def commit_record(
    protocol: Protocol,
    signer: Signer,
    record: Record | Mapping[str, Any],
    license_id: int = 0,
    *,
    sources: Sequence[int] | None = None,
    calls: int = 0,
) -> dict[str, Any]:
    """Record ``record`` on chain through the inference SAP as ``signer``: its digest,
    prompt and answer hashes, its first four assets (or ``sources``, for instance only
    those registered on this chain) and the license it was served under (0: none). With
    ``calls`` > 0 the same transaction meters those calls on the license (``signer``
    must be the meter of the record's agent asset).

    Returns ``{"record_id", "tx", "block", "gas_used", "license_id", "calls", "fee_wei",
    "recorded_in"}``, the shape :meth:`RecordStore.mark_committed` takes."""
    record_id, tx = send_record(protocol, signer, record, license_id, sources=sources, calls=calls)
    return committed(record_id, tx, license_id, calls=calls)


def send_record(
    protocol: Protocol,
    signer: Signer,
    record: Record | Mapping[str, Any],
    license_id: int = 0,
    *,
    sources: Sequence[int] | None = None,
    calls: int = 0,
) -> tuple[int, TxResult]:
    """:func:`commit_record`, returning the record's id on chain and the transaction."""
    if not isinstance(record, Record):
        record = Record.from_dict(record)
    if record.agent_asset is None:
        raise ProtocolInvalidArgument(
            f"agent {record.agent!r} has no asset id, so its answers cannot be recorded",
            hint=f"Publish it first with 'sahara agent publish {record.agent}'.",
        )
    return protocol.record_inference(
        signer,
        record.agent_asset,
        record.digest,
        list(record.assets if sources is None else sources)[:MAX_CHAIN_SOURCES],
        license_id,
        input_hash=record.prompt_hash,
        output_hash=record.answer_hash,
        calls=calls,
    )


def committed(
    record_id: int, tx: TxResult, license_id: int = 0, *, calls: int = 0
) -> dict[str, Any]:
    """What a record gains once it is on chain (the fee: what the recorded transaction
    metered, from its ``InferenceRecorded`` event)."""
    fee = 0
    for event in tx.events:
        if event.name == "InferenceRecorded":
            fee = int(event.args["fee"])
    return {
        "record_id": record_id,
        "tx": tx.hash,
        "block": tx.block,
        "gas_used": tx.gas_used,
        "license_id": license_id,
        "calls": calls,
        "fee_wei": str(fee),
        "recorded_in": RECORDED_IN_SAP,
    }


def recorded_in(row: Mapping[str, Any]) -> str | None:
    """Where a stored row's record is on chain: the inference SAP, the ``Provenance``
    contract (rows committed before the SAP name no place), or None while pending."""
    if not row.get("committed"):
        return None
    return str(row.get("recorded_in") or RECORDED_IN_LEGACY)


# --- the local store ------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    digest TEXT NOT NULL UNIQUE,
    agent TEXT NOT NULL,
    created INTEGER NOT NULL,
    body TEXT NOT NULL,
    chain TEXT
);
CREATE INDEX IF NOT EXISTS records_created ON records (created);
"""


class RecordStore:
    """The provenance records of one agent in SQLite; safe to share between threads.

    Rows are returned as dicts: the record's fields and digest, any extra fields it was
    added with (such as ``seconds``), ``id`` (local), ``committed`` (bool) and, once
    committed, what :func:`commit_record` returned (``record_id``, ``tx``, ...).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise AgentError(f"cannot open the provenance records at {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, record: Record, **extra: Any) -> int:
        """Keep ``record`` (plus ``extra`` fields); returns its local id. Adding the same
        record again returns the id it already has."""
        return self.add_dict({**extra, **record.to_dict()})

    def add_dict(self, data: Mapping[str, Any]) -> int:
        """Keep a record given as a dict (:meth:`Record.to_dict` plus extra fields)."""
        record = Record.from_dict(data)
        body = {**data, "digest": record.digest}
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO records (digest, agent, created, body) VALUES (?, ?, ?, ?)",
                (record.digest, record.agent, record.created, json.dumps(body, sort_keys=True)),
            )
            row = self._db.execute(
                "SELECT id FROM records WHERE digest = ?", (record.digest,)
            ).fetchone()
        return int(row[0])

    def get(self, key: int | str) -> dict[str, Any]:
        """A record by local id or by digest."""
        column = "digest" if isinstance(key, str) else "id"
        with self._lock:
            row = self._db.execute(
                f"SELECT id, body, chain FROM records WHERE {column} = ?",  # noqa: S608
                (key,),
            ).fetchone()
        if row is None:
            raise AgentError(f"no provenance record {key}")
        return _row(row)

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` records, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, body, chain FROM records ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_row(r) for r in rows]

    def note(self, digest: str, extra: Mapping[str, Any]) -> None:
        """Add ``extra`` fields to the kept record with ``digest`` (a pending record's
        license and meter transaction, say); the record's own fields stay as they are."""
        if any(name in BODY_FIELDS or name == "digest" for name in extra):
            raise AgentError("a note cannot change a record's own fields")
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM records WHERE digest = ?", (digest,)
            ).fetchone()
            if row is None:
                raise AgentError(f"no provenance record {digest}")
            body = {**json.loads(row[0]), **extra}
            self._db.execute(
                "UPDATE records SET body = ? WHERE digest = ?",
                (json.dumps(body, sort_keys=True), digest),
            )

    def committed_as(self, record_id: int, where: str) -> dict[str, Any] | None:
        """The committed row that says it is record ``record_id`` of ``where`` (the
        inference SAP or the Provenance contract), whatever its body says now."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, body, chain FROM records WHERE chain IS NOT NULL "
                "AND json_extract(chain, '$.record_id') = ?",
                (record_id,),
            ).fetchall()
        for row in rows:
            found = _row(row)
            if recorded_in(found) == where:
                return found
        return None

    def discard(self, digest: str) -> bool:
        """Forget the pending record with ``digest`` (an answer that was never given out:
        its call could not be paid for); a committed record is kept. Whether it was
        removed."""
        with self._lock:
            done = self._db.execute(
                "DELETE FROM records WHERE digest = ? AND chain IS NULL", (digest,)
            )
        return done.rowcount > 0

    def mark_committed(self, digest: str, chain: Mapping[str, Any]) -> None:
        """Note that the record with ``digest`` is on chain: ``chain`` is what
        :func:`commit_record` returned (at least ``record_id`` and ``tx``)."""
        if "record_id" not in chain or "tx" not in chain:
            raise AgentError("a committed record needs its record_id and tx")
        with self._lock:
            done = self._db.execute(
                "UPDATE records SET chain = ? WHERE digest = ?",
                (json.dumps(dict(chain), sort_keys=True), digest),
            )
        if done.rowcount == 0:
            raise AgentError(f"no provenance record {digest}")


def _row(row: Sequence[Any]) -> dict[str, Any]:
    local_id, body, chain = row
    out: dict[str, Any] = json.loads(body)
    if chain is not None:
        out.update(json.loads(chain))
    out["id"] = local_id
    out["committed"] = chain is not None
    return out
