"""An agent's memory.

- **Short-term**: the last turns of the conversation, verbatim, trimmed to a token budget.
- **Long-term**: each exchange becomes a note in the vault (encrypted to the agent's ID,
  like any private item) and is indexed; later messages recall the closest notes through
  the same index the vault search uses. Reading a note back needs the unlocked ID.
- **Feedback**: ``/good``, ``/bad`` and corrections, kept in SQLite with an embedding
  each; the closest corrected or approved answers are shown to the model as examples,
  and the whole set exports as a chat-format training set (JSONL).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sahara_cli.agent.types import Message, Source
from sahara_cli.errors import SaharaError, UsageError

if TYPE_CHECKING:
    from sahara_cli.identity import Signer
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.embed import Embedder
    from sahara_cli.vault.index import VaultIndex

Rating = Literal["good", "bad"]
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
    setup_sqlite(conn)
    return conn


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
            " summary TEXT NOT NULL)"
        )

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
        self.conn.execute(
            "INSERT OR REPLACE INTO notes (cid, at, summary) VALUES (?, ?, ?)",
            (item.cid, at, user.strip()[:200]),
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
            out.append(Source(hit.cid, hit.name, hit.score, text or "", None, "memory"))
        return out

    def listing(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT cid, at, summary FROM notes ORDER BY at DESC LIMIT ?", (limit,)
        )
        return [{"cid": cid, "at": at, "summary": summary} for cid, at, summary in rows]

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
    """Lifelong learning from feedback: rated answers, retrieved as examples."""

    def __init__(self, path: Path, embedder: Callable[[], Embedder] | None = None) -> None:
        self.conn = _connect(path)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS feedback (id INTEGER PRIMARY KEY, at REAL NOT NULL,"
            " question TEXT NOT NULL, answer TEXT NOT NULL, rating TEXT NOT NULL,"
            " correction TEXT, embedding BLOB)"
        )
        self._embedder_factory = embedder
        self._embedder: Embedder | None = None

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
        vector = self._embed(question)
        blob = vector.tobytes() if vector is not None else None
        at = time.time()
        cur = self.conn.execute(
            "INSERT INTO feedback (at, question, answer, rating, correction, embedding)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (at, question, answer, rating, correction, blob),
        )
        return Feedback(int(cur.lastrowid or 0), at, question, answer, rating, correction)

    def _rows(self) -> Iterator[tuple[Any, ...]]:
        yield from self.conn.execute(
            "SELECT id, at, question, answer, rating, correction, embedding FROM feedback"
            " ORDER BY id"
        )

    def all(self) -> list[Feedback]:
        return [Feedback(*row[:6]) for row in self._rows()]

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM feedback").fetchone()[0])

    def examples(self, query: str, k: int) -> list[Feedback]:
        """The ``k`` most similar questions that have a target answer."""
        if k <= 0:
            return []
        rows = [
            row
            for row in self._rows()
            if row[6] is not None and (row[5] is not None or row[4] == "good")
        ]
        if not rows:
            return []
        query_vec = self._embed(query)
        if query_vec is None:
            return [Feedback(*row[:6]) for row in rows[-k:]]
        matrix = np.stack([np.frombuffer(row[6], dtype=np.float32) for row in rows])
        scores = matrix @ query_vec
        order = np.argsort(-scores)[:k]
        return [Feedback(*rows[int(i)][:6]) for i in order]

    def export(self, out: Path, persona: str) -> dict[str, int]:
        """Write a chat-format JSONL training set; returns counts.

        Corrected answers give a preference pair too (``rejected`` is the original).
        """
        written = skipped = 0
        with out.open("w", encoding="utf-8") as handle:
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
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
        return {"written": written, "skipped": skipped}

    def close(self) -> None:
        self.conn.close()
