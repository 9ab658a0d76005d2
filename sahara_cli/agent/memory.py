"""An agent's memory.

- **Short-term**: the last turns of the conversation, verbatim, trimmed to a token budget.
- **Long-term**: each exchange becomes a note in the vault (encrypted to the agent's ID,
  like any private item) and is indexed; later messages recall the closest notes through
  the same index the vault search uses. Reading a note back needs the unlocked ID.
- **Feedback**: ``/good``, ``/bad`` and corrections, kept in SQLite with an embedding
  each; the closest corrected or approved answers are shown to the model as examples,
  and the whole set exports as a chat-format training set (JSONL).

What the SQLite files hold of a conversation is sealed to the agent's ID, like the notes
themselves: each memory summary (the start of a question) and each feedback row's
question, answer and correction is encrypted under a fresh key wrapped to the ID's
public key (:func:`~sahara_cli.vault.crypto.seal_to`). Sealing needs no password, so a
locked agent still takes ratings; reading them back (examples, ``agent feedback list``
and ``export``, ``/memory``) needs the ID unlocked. In clear stay the times, ratings,
whether a row has a correction, and the question's embedding (as the vault index keeps
private items' vectors). Rows written in clear by older versions are sealed the first
time the store is opened with the ID's public key, in one transaction, and the file is
vacuumed so that no old page keeps the text; opening an agent seals both files so, locked
or not (:func:`seal_memory_summaries` for the memory of a locked one).

A feedback row sealed to another ID (the agent's ID was replaced) is left out of the
examples, with one warning per store, so chat goes on; listing and export refuse with
:class:`~sahara_cli.errors.AgentMemoryLocked`, naming how many rows cannot be opened.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sahara_cli.agent.types import Message, Source
from sahara_cli.errors import AgentMemoryLocked, SaharaError, UsageError, VaultError
from sahara_cli.vault.crypto import open_sealed, seal_to

if TYPE_CHECKING:
    from sahara_cli.identity import Signer
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.embed import Embedder
    from sahara_cli.vault.index import VaultIndex

log = logging.getLogger("sahara.agent")

Rating = Literal["good", "bad"]
SUMMARY_CHARS = 200  # of the question, kept (sealed) beside each memory note
MEMORY_ORIGIN = "memory"  # the vault origin of memory notes: never retrieved as data


class ShortTermMemory:
    """The conversation so far: user/assistant pairs, newest last."""

    def __init__(self, turns: int) -> None:
        self.turns: deque[tuple[str, str]] = deque(maxlen=max(turns, 0) or None)
        self.limit = turns

    def add(self, user: str, assistant: str) -> None:
        if self.limit > 0:
            self.turns.append((user, assistant))

    def messages(
        self, budget: int | None = None, count: Callable[[str], int] = len
    ) -> list[Message]:
        """The kept turns as messages, oldest dropped first to stay within ``budget``."""
        chosen: list[tuple[str, str]] = []
        used = 0
        for user, assistant in reversed(self.turns):
            cost = count(user) + count(assistant)
            if budget is not None and used + cost > budget:
                break
            chosen.append((user, assistant))
            used += cost
        out: list[Message] = []
        for user, assistant in reversed(chosen):
            out.append(Message("user", user))
            out.append(Message("assistant", assistant))
        return out

    def last(self) -> tuple[str, str] | None:
        return self.turns[-1] if self.turns else None

    def clear(self) -> None:
        self.turns.clear()


def _connect(path: Path) -> sqlite3.Connection:
    from sahara_cli.vault.db import setup_sqlite

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    # Deleted and overwritten cells are zeroed, so replaced text leaves no trace in the file.
    setup_sqlite(conn, "PRAGMA secure_delete = ON")
    return conn


def _add_column(conn: sqlite3.Connection, table: str, column: str, decl: str) -> None:
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    if column not in have:
        try:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        except sqlite3.OperationalError as exc:  # another process added it meanwhile
            if "duplicate column" not in str(exc):
                raise


def _seal_clear_rows(
    conn: sqlite3.Connection,
    select: str,
    update: str,
    seal: Callable[[tuple[Any, ...]], tuple[Any, ...]],
) -> int:
    """Seal the rows an older version wrote in clear, in one transaction, then vacuum
    the file so that no free page keeps their text; returns how many there were."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(select).fetchall()
        for row in rows:
            conn.execute(update, seal(row))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if rows:
        try:
            conn.execute("VACUUM")
        except sqlite3.OperationalError as exc:  # busy: secure_delete zeroed the old cells
            log.warning("could not vacuum after sealing %d rows: %s", len(rows), exc)
    return len(rows)


def _seal_summaries(conn: sqlite3.Connection, public_key: bytes) -> int:
    return _seal_clear_rows(
        conn,
        "SELECT cid, summary FROM notes WHERE sealed IS NULL",
        "UPDATE notes SET summary = '', sealed = ? WHERE cid = ?",
        lambda row: (seal_to(public_key, row[1]), row[0]),
    )


def seal_memory_summaries(path: Path, public_key: bytes) -> int:
    """Seal the memory summaries an older version kept in clear in ``path`` (an
    agent's ``memory.sqlite``) to ``public_key``, the agent ID's: no password needed,
    so a locked agent seals them too. A missing file stays missing. Returns how many
    there were."""
    if not path.exists():
        return 0
    conn = _connect(path)
    try:
        have = {row[1] for row in conn.execute("PRAGMA table_info(notes)")}
        if not have:
            return 0
        _add_column(conn, "notes", "sealed", "TEXT")
        return _seal_summaries(conn, public_key)
    finally:
        conn.close()


class LongTermMemory:
    """Notes of past exchanges kept as private vault items and recalled by search."""

    def __init__(
        self,
        agent_dir: Path,
        vault: Vault,
        index: VaultIndex,
        signer: Signer | None,
    ) -> None:
        self.vault = vault
        self.index = index
        self.signer = signer
        self.agent = agent_dir.name
        self.conn = _connect(agent_dir / "memory.sqlite")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS notes (cid TEXT PRIMARY KEY, at REAL NOT NULL,"
            " summary TEXT NOT NULL, sealed TEXT)"
        )
        _add_column(self.conn, "notes", "sealed", "TEXT")
        if signer is not None:
            _seal_summaries(self.conn, signer.public_key)

    @property
    def readable(self) -> bool:
        """Notes are encrypted to the agent's ID: recall needs it unlocked."""
        return self.signer is not None

    def cids(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT cid FROM notes ORDER BY at")]

    def count(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM notes").fetchone()
        return int(row[0])

    def remember(self, user: str, assistant: str) -> str | None:
        """Store one exchange as a vault note and index it; returns its CID."""
        if self.signer is None:
            return None
        from sahara_cli.vault.core import Holder
        from sahara_cli.vault.search import index_item

        note = f"Question: {user.strip()}\nAnswer: {assistant.strip()}\n"
        at = time.time()
        with tempfile.TemporaryDirectory(prefix="sahara-memory-") as tmp:
            path = Path(tmp) / f"memory-{int(at * 1000)}.md"
            path.write_text(note, encoding="utf-8")
            holder = Holder(self.signer.address, self.signer.public_key)
            item, _new = self.vault.add(
                path, holder, name=f"memory/{self.agent}/{path.name}", origin=MEMORY_ORIGIN
            )
            key = self.vault.last_key(item) or self.vault.data_key(item, self.signer.private_key)
            index_item(self.index, item, path, key)
        summary = seal_to(self.signer.public_key, user.strip()[:SUMMARY_CHARS])
        self.conn.execute(
            "INSERT OR REPLACE INTO notes (cid, at, summary, sealed) VALUES (?, ?, '', ?)",
            (item.cid, at, summary),
        )
        return item.cid

    def recall(self, query: str, k: int) -> list[Source]:
        """The ``k`` notes closest to ``query``, opened with the agent's key."""
        if k <= 0 or self.signer is None:
            return []
        cids = self.cids()
        if not cids:
            return []
        from sahara_cli.vault import crypto

        out: list[Source] = []
        for hit in self.index.search(query, k, items=cids):
            text = hit.text
            if hit.sealed is not None:
                try:
                    item = self.vault.find(hit.cid)
                    key = self.vault.data_key(item, self.signer.private_key)
                except SaharaError:
                    continue
                if key is None:
                    continue
                text = crypto.open_text(key, hit.sealed)
            out.append(Source(hit.cid, hit.name, hit.score, text or "", None, "memory", True))
        return out

    def listing(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest notes with their summaries, opened with the agent's key."""
        rows = self.conn.execute(
            "SELECT cid, at, summary, sealed FROM notes ORDER BY at DESC LIMIT ?", (limit,)
        ).fetchall()
        return [
            {"cid": cid, "at": at, "summary": self._open(sealed) if sealed else summary}
            for cid, at, summary, sealed in rows
        ]

    def _open(self, sealed: str) -> str:
        if self.signer is None:
            raise AgentMemoryLocked("memory summaries are sealed to the agent's ID")
        try:
            return open_sealed(self.signer.private_key, sealed)
        except VaultError:
            return "(sealed to another ID)"

    def close(self) -> None:
        self.conn.close()


@dataclass
class Feedback:
    id: int
    at: float
    question: str
    answer: str
    rating: Rating
    correction: str | None

    @property
    def target(self) -> str | None:
        """The answer worth imitating: the correction, or an approved answer."""
        if self.correction:
            return self.correction
        return self.answer if self.rating == "good" else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "question": self.question,
            "answer": self.answer,
            "rating": self.rating,
            "correction": self.correction,
        }


class FeedbackStore:
    """Lifelong learning from feedback: rated answers, retrieved as examples.

    Each row's question, answer and correction are sealed to the agent's ID
    (``public_key``; see the module docstring); ``signer``, the unlocked ID, opens them.
    Rows this store wrote or opened stay readable for its lifetime, so a locked chat
    still learns from the corrections given in it.
    """

    def __init__(
        self,
        path: Path,
        embedder: Callable[[], Embedder] | None = None,
        *,
        public_key: bytes | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.conn = _connect(path)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS feedback (id INTEGER PRIMARY KEY, at REAL NOT NULL,"
            " question TEXT NOT NULL, answer TEXT NOT NULL, rating TEXT NOT NULL,"
            " correction TEXT, embedding BLOB, sealed TEXT, corrected INTEGER)"
        )
        _add_column(self.conn, "feedback", "sealed", "TEXT")
        _add_column(self.conn, "feedback", "corrected", "INTEGER")
        self.signer = signer
        self.public_key = (
            public_key
            if public_key is not None
            else (signer.public_key if signer is not None else None)
        )
        self._opened: dict[int, Feedback] = {}
        self._unreadable: set[int] = set()  # rows sealed to another ID (logged once)
        self._embedder_factory = embedder
        self._embedder: Embedder | None = None
        if self.public_key is not None:
            key = self.public_key
            _seal_clear_rows(
                self.conn,
                "SELECT id, question, answer, correction FROM feedback WHERE sealed IS NULL",
                "UPDATE feedback SET question = '', answer = '', correction = NULL,"
                " sealed = ?, corrected = ? WHERE id = ?",
                lambda row: (_seal_feedback(key, *row[1:]), int(row[3] is not None), row[0]),
            )

    def _embed(self, text: str) -> np.ndarray | None:
        if self._embedder_factory is None:
            return None
        if self._embedder is None:
            self._embedder = self._embedder_factory()
        vector = np.asarray(self._embedder.embed([text])[0], dtype=np.float32)
        norm = float(np.linalg.norm(vector)) or 1.0
        return vector / norm

    def add(
        self, question: str, answer: str, rating: Rating, correction: str | None = None
    ) -> Feedback:
        if rating not in ("good", "bad"):
            raise UsageError(f"a rating is 'good' or 'bad', not {rating!r}")
        if correction is not None and not correction.strip():
            raise UsageError("a correction must not be empty")
        if self.public_key is None:
            raise AgentMemoryLocked(
                "feedback is kept sealed to the agent's ID, and this agent has none",
                hint="Create a Sahara ID ('sahara id create NAME') for the agent first.",
            )
        sealed = _seal_feedback(self.public_key, question, answer, correction)
        vector = self._embed(question)
        blob = vector.tobytes() if vector is not None else None
        at = time.time()
        cur = self.conn.execute(
            "INSERT INTO feedback (at, question, answer, rating, correction, embedding,"
            " sealed, corrected) VALUES (?, '', '', ?, NULL, ?, ?, ?)",
            (at, rating, blob, sealed, int(correction is not None)),
        )
        fb = Feedback(int(cur.lastrowid or 0), at, question, answer, rating, correction)
        self._opened[fb.id] = fb
        return fb

    def _rows(self, targets_only: bool = False) -> list[tuple[Any, ...]]:
        """The rows, oldest first; with ``targets_only`` those with an embedding and an
        answer worth imitating (approved or corrected)."""
        where = (
            " WHERE embedding IS NOT NULL AND (rating = 'good' OR correction IS NOT NULL"
            " OR corrected = 1)"
            if targets_only
            else ""
        )
        sql = "SELECT id, at, question, answer, rating, correction, embedding, sealed FROM feedback"
        return self.conn.execute(sql + where + " ORDER BY id").fetchall()

    def _open(self, row: tuple[Any, ...]) -> Feedback | None:
        """The row's feedback; None while it is sealed and the ID is locked, or when it
        is sealed to another ID (counted in ``_unreadable``)."""
        if row[7] is None:  # written in clear by an older version, not yet sealed
            return Feedback(*row[:6])
        known = self._opened.get(int(row[0]))
        if known is not None:
            return known
        if self.signer is None or int(row[0]) in self._unreadable:
            return None
        try:
            data = json.loads(open_sealed(self.signer.private_key, row[7]))
        except (VaultError, ValueError, KeyError, TypeError):
            self._unreadable.add(int(row[0]))
            return None
        fb = Feedback(
            int(row[0]), row[1], data["question"], data["answer"], row[4], data["correction"]
        )
        self._opened[fb.id] = fb
        return fb

    def all(self) -> list[Feedback]:
        """Every rated answer, opened; :class:`AgentMemoryLocked` while the ID is, or
        when some rows are sealed to another ID (the error says how many)."""
        out = []
        rows = self._rows()
        for row in rows:
            fb = self._open(row)
            if fb is None and self.signer is None:
                raise AgentMemoryLocked("the agent's feedback is sealed to its ID")
            if fb is not None:
                out.append(fb)
        if len(out) < len(rows):
            assert self.signer is not None
            raise AgentMemoryLocked(
                f"{len(rows) - len(out)} of {len(rows)} feedback rows are sealed to another "
                f"ID than {self.signer.address}",
                hint="Unlock the ID the agent had when those answers were rated.",
            )
        return out

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM feedback").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """How many rated answers, approved and corrected (no key needed)."""
        total, good, corrected = self.conn.execute(
            "SELECT count(*), coalesce(sum(rating = 'good'), 0),"
            " coalesce(sum(coalesce(corrected, correction IS NOT NULL)), 0) FROM feedback"
        ).fetchone()
        return {"total": int(total), "good": int(good), "corrected": int(corrected)}

    def examples(self, query: str, k: int) -> list[Feedback]:
        """The ``k`` most similar questions that have a target answer, among the rows
        that can be opened (all of them with the ID unlocked)."""
        if k <= 0:
            return []
        rows = self._rows(targets_only=True)
        if not rows:
            return []
        query_vec = self._embed(query)
        if query_vec is None:
            order = list(range(len(rows) - 1, -1, -1))
        else:
            matrix = np.stack([np.frombuffer(row[6], dtype=np.float32) for row in rows])
            order = [int(i) for i in np.argsort(-(matrix @ query_vec))]
        out: list[Feedback] = []
        unreadable = len(self._unreadable)
        for i in order:
            fb = self._open(rows[i])
            if fb is not None and fb.target is not None:
                out.append(fb)
                if len(out) == k:
                    break
        if unreadable == 0 and self._unreadable:  # rows sealed to another ID: skipped
            assert self.signer is not None
            count = len(self._unreadable)
            log.warning(
                "%d feedback row%s sealed to another ID than %s: left out of the examples",
                count,
                " is" if count == 1 else "s are",
                self.signer.address,
            )
        return out if query_vec is not None else out[::-1]

    def export(self, out: Path, persona: str) -> dict[str, int]:
        """Write a chat-format JSONL training set; returns counts.

        Corrected answers give a preference pair too (``rejected`` is the original).
        Every row is opened before the file is written, so a locked ID writes nothing.
        """
        records: list[dict[str, Any]] = []
        skipped = 0
        for fb in self.all():
            target = fb.target
            if target is None:
                skipped += 1
                continue
            record: dict[str, Any] = {
                "messages": [
                    {"role": "system", "content": persona},
                    {"role": "user", "content": fb.question},
                    {"role": "assistant", "content": target},
                ],
                "rating": fb.rating,
            }
            if fb.correction:
                record["rejected"] = fb.answer
            records.append(record)
        with out.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return {"written": len(records), "skipped": skipped}

    def close(self) -> None:
        self.conn.close()


def _seal_feedback(public_key: bytes, question: str, answer: str, correction: str | None) -> str:
    text = json.dumps(
        {"question": question, "answer": answer, "correction": correction}, ensure_ascii=False
    )
    return seal_to(public_key, text)
