"""Feedback and memory summaries at rest: sealed to the agent's ID, never in clear.

The SQLite files are read raw (with any journal beside them): no question, answer or
correction may appear. Sealing needs only the public key, so a locked agent still
takes ratings; opening them needs the ID. Rows an older version wrote in clear are
sealed the first time the store is opened with the ID's public key.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from sahara_cli.agent.memory import FeedbackStore
from sahara_cli.errors import AgentMemoryLocked
from sahara_cli.identity.keys import Signer
from tests.unit.test_agent_spec import _Letters

pytest_plugins = ("tests.agent_models",)

QUESTION = "Where do the okapis of Ituri sleep at noon?"
ANSWER = "Under the tallest mahogany trees, mostly."
CORRECTION = "In dense thickets near the Epulu river."


def raw(path: Path) -> bytes:
    """The bytes of a SQLite file and of whatever lies beside it (journal, WAL)."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def assert_no_text(path: Path, *texts: str) -> None:
    data = raw(path)
    for text in texts:
        for word in (text, text[:20], text[-20:]):
            assert word.encode() not in data, f"{word!r} lies in clear in {path.name}"


def test_feedback_is_sealed_and_opens_only_with_the_id(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    agent = Signer(os.urandom(32))
    fb = FeedbackStore(path, _Letters, signer=agent)  # type: ignore[arg-type]
    fb.add(QUESTION, ANSWER, "bad", CORRECTION)
    fb.add("aaa apple", "apples are fruit", "good")
    fb.close()
    assert_no_text(path, QUESTION, ANSWER, CORRECTION, "apples are fruit")

    # Locked (the public key only): ratings go in, sealed; only this session's are shown.
    locked = FeedbackStore(path, _Letters, public_key=agent.public_key)  # type: ignore[arg-type]
    locked.add("zzz zebra", "horses", "bad", "zebras are striped")
    assert locked.counts() == {"total": 3, "good": 1, "corrected": 2}
    assert [e.target for e in locked.examples("okapi ituri noon", 5)] == ["zebras are striped"]
    with pytest.raises(AgentMemoryLocked, match="sealed to its ID"):
        locked.all()
    with pytest.raises(AgentMemoryLocked):
        locked.export(tmp_path / "out.jsonl", "persona")
    assert not (tmp_path / "out.jsonl").exists()
    locked.close()
    assert_no_text(path, "zebras are striped")

    # Another ID cannot open them.
    other = FeedbackStore(path, signer=Signer(os.urandom(32)))
    with pytest.raises(AgentMemoryLocked, match="sealed to another ID"):
        other.all()
    other.close()

    # The agent's ID opens everything: examples, listing and export.
    fb = FeedbackStore(path, _Letters, signer=agent)  # type: ignore[arg-type]
    kept = fb.all()
    assert (kept[0].question, kept[0].answer, kept[0].correction) == (
        QUESTION,
        ANSWER,
        CORRECTION,
    )
    assert [e.target for e in fb.examples("okapis Ituri noon sleep", 1)] == [CORRECTION]
    out = tmp_path / "set.jsonl"
    assert fb.export(out, "persona") == {"written": 3, "skipped": 0}
    first = json.loads(out.read_text().splitlines()[0])
    assert first["messages"][1]["content"] == QUESTION and first["rejected"] == ANSWER
    fb.close()


def test_feedback_of_an_older_version_is_sealed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE feedback (id INTEGER PRIMARY KEY, at REAL NOT NULL,"
        " question TEXT NOT NULL, answer TEXT NOT NULL, rating TEXT NOT NULL,"
        " correction TEXT, embedding BLOB)"
    )
    blob = np.asarray([1.0] + [0.0] * 25, dtype=np.float32).tobytes()
    old.execute(
        "INSERT INTO feedback VALUES (1, 100.0, ?, ?, 'bad', ?, ?)",
        (QUESTION, ANSWER, CORRECTION, blob),
    )
    old.execute(
        "INSERT INTO feedback VALUES (2, 101.0, 'plain q', 'plain a', 'good', NULL, ?)", (blob,)
    )
    old.commit()
    old.close()
    assert QUESTION.encode() in raw(path)

    agent = Signer(os.urandom(32))
    FeedbackStore(path, public_key=agent.public_key).close()  # a locked chat opens it
    assert_no_text(path, QUESTION, ANSWER, CORRECTION, "plain q", "plain a")

    fb = FeedbackStore(path, signer=agent)
    kept = fb.all()
    assert [(f.id, f.at, f.question, f.answer, f.rating, f.correction) for f in kept] == [
        (1, 100.0, QUESTION, ANSWER, "bad", CORRECTION),
        (2, 101.0, "plain q", "plain a", "good", None),
    ]
    assert fb.counts() == {"total": 2, "good": 1, "corrected": 1}
    fb.close()


def test_a_row_sealed_to_another_id_does_not_break_examples(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "feedback.sqlite"
    agent, stranger = Signer(os.urandom(32)), Signer(os.urandom(32))
    # A row sealed to another ID (the agent's ID was replaced, or a file was copied in).
    FeedbackStore(path, _Letters, public_key=stranger.public_key).add(  # type: ignore[arg-type]
        "zzz zebra", "horses", "bad", "zebras are striped"
    )
    fb = FeedbackStore(path, _Letters, signer=agent)  # type: ignore[arg-type]
    fb.add(QUESTION, ANSWER, "bad", CORRECTION)
    fb.close()

    fb = FeedbackStore(path, _Letters, signer=agent)  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="sahara.agent"):
        for _turn in range(3):  # every chat turn asks for examples
            assert [e.target for e in fb.examples("zebra okapi", 5)] == [CORRECTION]
    warned = [r for r in caplog.records if "sealed to another ID" in r.getMessage()]
    assert len(warned) == 1 and "1 feedback row" in warned[0].getMessage()
    # Listing and export refuse, naming how many rows cannot be opened; nothing written.
    with pytest.raises(AgentMemoryLocked, match="1 of 2 feedback rows are sealed to another ID"):
        fb.all()
    with pytest.raises(AgentMemoryLocked, match="1 of 2"):
        fb.export(tmp_path / "out.jsonl", "persona")
    assert not (tmp_path / "out.jsonl").exists()
    fb.close()


def test_memory_summaries_of_an_older_version_are_sealed_by_a_locked_agent(
    initialised: Path, tiny_gguf: Path
) -> None:
    from sahara_cli.agent.brain import open_agent
    from sahara_cli.agent.spec import AgentSpec, AgentStore
    from sahara_cli.identity.store import KeyStore
    from tests.conftest import PASSWORD

    store = AgentStore(initialised)
    store.save(
        AgentSpec.model_validate(
            {"name": "scout", "model": {"name": str(tiny_gguf), "n_ctx": 512},
             "tools": {"builtin": []}, "vault": {"search": False}}
        )
    )  # fmt: skip
    path = store.dir("scout") / "memory.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(path)  # the table of an older version: summaries in clear
    old.execute(
        "CREATE TABLE notes (cid TEXT PRIMARY KEY, at REAL NOT NULL, summary TEXT NOT NULL)"
    )
    old.execute("INSERT INTO notes VALUES ('bafkreinote', 100.0, ?)", (QUESTION,))
    old.commit()
    old.close()
    assert QUESTION.encode() in raw(path)

    with open_agent(initialised, "scout") as agent:  # locked: no password given
        assert agent.long_term is None
    assert_no_text(path, QUESTION)

    signer = KeyStore(initialised / "keystore").unlock(None, PASSWORD)
    with open_agent(initialised, "scout", signer=signer) as agent:
        assert agent.long_term is not None
        assert [n["summary"] for n in agent.long_term.listing()] == [QUESTION]
