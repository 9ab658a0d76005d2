"""Teams on a tiny random GGUF with real llama.cpp: a hierarchical team in-process, and a
peer-to-peer team of three member processes talking over Agent2Agent."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sahara_cli.agent.team import TeamEvent, TeamSpec, run_team
from sahara_cli.errors import TeamError
from tests.agent_models import save_tiny_agent

pytestmark = pytest.mark.e2e
pytest_plugins = ("tests.agent_models",)  # the tiny_gguf fixture

UNSIGNED = {
    "jsonrpc": "2.0",
    "id": "1",
    "method": "SendMessage",
    "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
}


@pytest.fixture
def team_home(home: Path, tiny_gguf: Path) -> Path:
    for name in ("lead", "analyst", "writer", "m0", "m1", "m2"):
        save_tiny_agent(home, name, tiny_gguf)
    return home


def events() -> tuple[list[TeamEvent], Callable[[TeamEvent], None]]:
    seen: list[TeamEvent] = []
    return seen, seen.append


def member_pids(home: Path) -> list[int]:
    """Live processes serving an agent of ``home`` (their command line names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sahara_cli.agent.servers.a2a_member" in argv and os.fsencode(home) in argv:
            pids.append(int(entry.name))
    return pids


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, int(port))) != 0


def test_hierarchical_team_splits_answers_and_merges(team_home: Path) -> None:
    team = TeamSpec(name="desk", manager="lead", workers=["analyst", "writer"], max_subtasks=3)
    seen, on_event = events()
    result = run_team(team_home, team, "Summarise the quarterly figures.", on_event=on_event)

    assert 1 <= len(result.subtasks) <= 3
    for sub in result.subtasks:
        assert sub.worker in ("analyst", "writer")
        assert sub.task.strip()
        assert sub.error is None
        assert sub.record["agent"] == sub.worker  # the worker itself answered
    # Every worker the plan named ran once per subtask, and so did the manager's merge.
    planned = [s.worker for s in result.subtasks]
    assert {w: len(r) for w, r in result.records.items() if w != "lead"} == {
        w: planned.count(w) for w in set(planned)
    }
    [merge_record] = result.records["lead"]
    assert merge_record["agent"] == "lead"
    assert result.answer.strip()
    kinds = [(e.kind, e.member) for e in seen]
    assert ("split", "lead") in kinds and ("merge", "lead") in kinds
    assert kinds.index(("split", "lead")) < kinds.index(("merge", "lead"))
    assert set(result.timings) >= {"split", "workers", "merge", "total"}
    data = result.to_dict()
    assert data["mode"] == "hierarchical" and len(data["subtasks"]) == len(result.subtasks)


def test_p2p_team_talks_over_a2a_and_leaves_no_process(team_home: Path) -> None:
    team = TeamSpec(name="ring", mode="p2p", members=["m0", "m1", "m2"], hops=1)
    seen, on_event = events()
    live: list[list[int]] = []
    unsigned: list[int] = []

    def watch(event: TeamEvent) -> None:
        on_event(event)
        if event.kind == "ready" and event.member == "m2":
            live.append(member_pids(team_home))
        if event.kind == "ready":  # a caller without the run's team secret is refused
            unsigned.append(httpx.post(event.detail + "/", json=UNSIGNED, timeout=60).status_code)

    result = run_team(team_home, team, "Which of you knows the answer?", on_event=watch)

    # Three processes served their cards at the well-known path; the cards were fetched.
    assert live and len(live[0]) == 3
    assert unsigned == [401, 401, 401]
    assert sorted(c["name"] for c in result.cards) == ["m0", "m1", "m2"]
    for card in result.cards:
        url = result.members[card["name"]]
        assert card["supportedInterfaces"][0]["url"] == url
    assert all(url.startswith("http://127.0.0.1:") for url in result.members.values())
    assert ("ready", "m0") in [(e.kind, e.member) for e in seen]
    # The entry consulted both peers over A2A, with hop budget 0 (they asked no one).
    assert sorted(s.worker for s in result.subtasks) == ["m1", "m2"]
    for sub in result.subtasks:
        assert sub.asked_by == "m0"
        assert sub.error is None
        assert sub.answer.strip()
        assert sub.record["agent"] == sub.worker
    assert set(result.records) == {"m0", "m1", "m2"}
    assert result.answer.strip()
    # Every member process is gone, and its port closed.
    assert member_pids(team_home) == []
    assert all(refused(url) for url in result.members.values())
    assert [e.member for e in seen if e.kind == "stop"] == ["m0", "m1", "m2"]


def test_member_that_cannot_start_is_a_team_error(team_home: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really")
    save_tiny_agent(team_home, "broken", broken)
    team = TeamSpec(name="bad", mode="p2p", members=["m0", "broken"], start_timeout=60)
    with pytest.raises(TeamError, match="member 'broken' failed to start: ") as info:
        run_team(team_home, team, "anything")
    assert "\n" not in info.value.message
    assert member_pids(team_home) == []


def test_port_in_use_is_a_team_error(team_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        team = TeamSpec(name="clash", mode="p2p", members=["m0", "m1"], base_port=port)
        with pytest.raises(TeamError, match="member 'm0'"):
            run_team(team_home, team, "anything")
    assert member_pids(team_home) == []


def test_unknown_agent_is_a_team_error(team_home: Path) -> None:
    team = TeamSpec(name="ghosts", manager="lead", workers=["nobody"])
    with pytest.raises(TeamError, match="no agent named 'nobody'"):
        run_team(team_home, team, "anything")


def test_cli_runs_a_team_file(initialised: Path, team_home: Path, tmp_path: Path, cli: Any) -> None:
    team_file = tmp_path / "team.toml"
    team_file.write_text(
        'name = "desk"\nmode = "hierarchical"\nmanager = "lead"\nworkers = ["writer"]\n'
        "max_subtasks = 1\n"
    )
    result = cli("--json", "agent", "team", "run", str(team_file), "--task", "Write a line.")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["team"] == "desk" and data["answer"].strip()
    assert [s["worker"] for s in data["subtasks"]] == ["writer"]
    missing = cli("--json", "agent", "team", "run", str(tmp_path / "no.toml"), "--task", "x")
    assert missing.exit_code != 0
    assert missing.error()["code"] == "agent.team_error"


def test_an_unlocked_team_reads_private_vault_items(
    initialised: Path, tiny_gguf: Path, tmp_path: Path, cli: Any, password_file: Path
) -> None:
    """With the ID's password, hierarchical agents get the unlocked ID and p2p members
    unlock it in their own processes: both retrieve a private (encrypted) item."""
    from sahara_cli.agent.spec import AgentStore

    doc = tmp_path / "secret-recipe.md"
    doc.write_text("The secret quokka recipe uses saltbush leaves and fresh seep water.\n")
    added = cli("--json", "--no-prompt", "vault", "add", str(doc))
    assert added.exit_code == 0, added.stderr
    for name in ("lead", "writer", "m0", "m1"):
        spec = save_tiny_agent(initialised, name, tiny_gguf)
        data = spec.model_dump()
        data["vault"] = {"search": True, "top_k": 1}
        AgentStore(initialised).save(type(spec).model_validate(data), overwrite=True)
    hier = tmp_path / "hier.toml"
    hier.write_text(
        'name = "desk"\nmode = "hierarchical"\nmanager = "lead"\nworkers = ["writer"]\n'
        "max_subtasks = 1\n"
    )
    p2p = tmp_path / "p2p.toml"
    p2p.write_text('name = "ring"\nmode = "p2p"\nmembers = ["m0", "m1"]\nentry = "m0"\nhops = 1\n')
    task = "What is in the secret quokka recipe?"
    for team in (hier, p2p):
        locked = cli("--json", "--no-prompt", "agent", "team", "run", str(team), "--task", task)
        assert locked.exit_code == 0, locked.stderr
        assert not locked.json()["sources"], "a locked team must not read private items"
        unlocked = cli(
            "--json",
            "--no-prompt",
            "agent",
            "team",
            "run",
            str(team),
            "--task",
            task,
            "--password-file",
            str(password_file),
        )
        assert unlocked.exit_code == 0, unlocked.stderr
        names = {s["name"] for s in unlocked.json()["sources"]}
        assert "secret-recipe.md" in names, unlocked.json()["sources"]
        # The run signs as the ID that owns the agents, so it sees the passages it used.
        texts = [s.get("text", "") for s in unlocked.json()["sources"]]
        assert any("saltbush" in t for t in texts), unlocked.json()["sources"]
