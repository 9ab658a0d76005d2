"""The Brain through ``sahara agent``: answers with sources from the vault, tool calls
that always parse and run, a session that survives a failing tool, long-term memory in
the vault, feedback that comes back as examples, records, and clear errors for bad
models and specs. Real llama.cpp on a tiny random GGUF written by the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sahara_cli.agent.brain import Agent, open_agent
from sahara_cli.agent.runners.base import RunnerOptions, open_runner
from sahara_cli.agent.spec import AgentSpec, AgentStore
from sahara_cli.agent.tools.registry import Tool, ToolBox
from sahara_cli.agent.types import Message
from tests.conftest import PASSWORD, Invoke

pytest_plugins = ("tests.agent_models",)

NOTE = (
    "Quokkas on Rottnest Island drink from the freshwater seeps near the salt lakes "
    "in the evening, after the heat of the day."
)


def spec_for(model: Path, name: str = "scout", **extra: Any) -> AgentSpec:
    data: dict[str, Any] = {
        "name": name,
        "persona": "You answer briefly.",
        "model": {"name": str(model), "n_ctx": 1024},
        "generation": {"max_tokens": 12, "temperature": 0.8, "seed": 3},
        "tools": {"builtin": ["calculator"]},
        "memory": {"long_term": False},
        "vault": {"search": False},
        "license": {"policy": "any"},
        "loop": {"max_steps": 2},
    }
    data.update(extra)
    return AgentSpec.model_validate(data)


@pytest.fixture
def agent_home(initialised: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    AgentStore(initialised).save(spec_for(tiny_gguf))
    return initialised


def test_chat_answers_with_sources_from_the_vault(
    cli: Invoke, agent_home: Path, tiny_gguf: Path, tmp_path: Path
) -> None:
    doc = tmp_path / "quokkas.md"
    doc.write_text(NOTE + "\n")
    added = cli("--json", "--no-prompt", "vault", "add", str(doc), "--public")
    assert added.exit_code == 0, added.stderr
    AgentStore(agent_home).save(
        spec_for(tiny_gguf, vault={"search": True, "top_k": 2}), overwrite=True
    )
    result = cli("--json", "--no-prompt", "agent", "chat", "scout", "-m", "Where do quokkas drink?")
    assert result.exit_code == 0, result.stderr
    doc_out = result.json()
    assert doc_out["agent"] == "scout"
    assert isinstance(doc_out["answer"], str) and doc_out["answer"]
    assert [s["name"] for s in doc_out["sources"]] == ["quokkas.md"]
    assert "freshwater seeps" in doc_out["sources"][0]["text"]
    record = doc_out["record"]
    assert record["digest"].startswith("0x") and len(record["digest"]) == 66
    from sahara_cli.agent.runners.model_store import content_ids

    assert record["model_cid"] == content_ids(tiny_gguf)[1]  # the model's content id
    # The record is kept locally, under the same digest.
    from sahara_cli.agent.record import RecordStore

    with RecordStore(agent_home / "agents" / "scout" / "records.sqlite") as records:
        assert records.get(record["digest"])["digest"] == record["digest"]


class _Flaky:
    """A tool that raises on every call: the session must go on."""

    def __call__(self, text: str) -> str:
        raise RuntimeError(f"the disk is on fire ({text[:10]})")


def _agent_with_tools(tiny_gguf: Path, seed: int) -> Agent:
    spec = spec_for(
        tiny_gguf,
        generation={"max_tokens": 6, "temperature": 1.0, "seed": seed},
        loop={"max_steps": 2, "tool_choice": "required"},
    )
    runner = open_runner("llama", tiny_gguf, RunnerOptions(n_ctx=1024))
    from sahara_cli.agent.tools.registry import tool_from_function

    def calculator(expression: str) -> Any:
        """Evaluate arithmetic."""
        from sahara_cli.agent.tools.builtin import evaluate

        return evaluate(expression)

    box = ToolBox(
        [
            tool_from_function(calculator),
            Tool(
                "flaky",
                "A tool that fails.",
                {
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "required": ["text"],
                },
                _Flaky(),
            ),
        ]
    )
    agent = Agent(spec, runner, box)
    agent._closers.append(runner.close)
    return agent


def test_constrained_tool_calls_always_parse_and_run(tiny_gguf: Path) -> None:
    """A random model picks tools and fills their arguments: every call parses against
    the tool's schema and runs; a failing tool is an observation, and the answer comes."""
    made: list[str] = []
    for seed in range(6):
        with _agent_with_tools(tiny_gguf, seed) as agent:
            events: list[tuple[str, dict[str, Any]]] = []
            agent.on_event = lambda kind, data, events=events: events.append((kind, data))
            for turn in range(2):
                answer = agent.ask(f"Compute something, turn {turn}.")
                assert isinstance(answer.text, str)
                for call in answer.tool_calls:
                    made.append(call.tool)
                    assert call.tool in {"calculator", "flaky"}
                    # The arguments always satisfied the schema: a failure is the tool's own.
                    assert call.error is None or not call.error.startswith(
                        ("ToolArgumentsInvalid", "ToolNotFound")
                    ), call.error
                    if call.tool == "flaky":
                        assert not call.ok and "disk is on fire" in (call.error or "")
                    else:
                        assert isinstance(call.arguments["expression"], str)
            plans = [data for kind, data in events if kind == "plan"]
            assert plans and all(p["tool"] in {"calculator", "flaky", "answer"} for p in plans)
            assert len(agent.short_term.turns) == 2
    # The random model did call tools, both of them, and the sessions went on.
    assert {"calculator", "flaky"} <= set(made), made


def test_long_term_memory_is_kept_in_the_vault_and_recalled(
    agent_home: Path, tiny_gguf: Path
) -> None:
    from sahara_cli.identity.store import KeyStore

    signer = KeyStore(agent_home / "keystore").unlock("main", PASSWORD)
    spec = spec_for(tiny_gguf, memory={"long_term": True, "recall": 1}, tools={"builtin": []})
    AgentStore(agent_home).save(spec, overwrite=True)
    with open_agent(agent_home, "scout", signer=signer) as agent:
        agent.ask("My favourite animal is the quokka.")
        assert agent.long_term is not None and agent.long_term.count() == 1
    # A new session, a new process's worth of state: the note comes back from the vault.
    with open_agent(agent_home, "scout", signer=signer) as agent:
        answer = agent.ask("Which animal do I like?")
        memories = [s for s in answer.sources if s.kind == "memory"]
        assert memories and "quokka" in memories[0].text
    # The note is an encrypted vault item, like any other private item.
    from sahara_cli.config import VaultSection
    from sahara_cli.vault.backends import open_vault

    with open_vault(agent_home, VaultSection()) as vault:
        notes = [i for i in vault.items() if i.name.startswith("memory/")]
    assert len(notes) == 2 and all(i.encrypted and i.origin == "memory" for i in notes)
    assert all(i.name.startswith("memory/scout/") for i in notes)
    # Another agent of the same ID, searching the vault, never gets them as data.
    other = spec_for(
        tiny_gguf, name="other", tools={"builtin": []}, vault={"search": True, "top_k": 4}
    )
    AgentStore(agent_home).save(other)
    with open_agent(agent_home, "other", signer=signer) as agent:
        answer = agent.ask("Which animal do I like? quokka")
        assert not [s for s in answer.sources if s.name.startswith("memory/")]
    # Locked, the agent reads no memory and writes none.
    with open_agent(agent_home, "scout") as agent:
        assert agent.long_term is None


def test_feedback_comes_back_as_examples_and_exports(
    cli: Invoke, agent_home: Path, tiny_gguf: Path, tmp_path: Path
) -> None:
    spec = spec_for(tiny_gguf, memory={"long_term": False, "feedback_examples": 1})
    AgentStore(agent_home).save(spec, overwrite=True)
    # Locked: the rating is sealed to the ID, and this session's own comes back.
    with open_agent(agent_home, "scout") as agent:
        agent.ask("What colour is a zebra?")
        agent.rate("bad", "Black and white stripes.")
        prompts: list[str] = []
        stream = agent.runner.stream_chat

        def spy(messages: Any, params: Any, **kw: Any) -> Iterator[str]:
            prompts.append(messages[0].content)
            return stream(messages, params, **kw)

        agent.runner.stream_chat = spy  # type: ignore[method-assign]
        agent.ask("What colour are zebras?")
    assert "Black and white stripes." in prompts[-1]
    listed = cli("--json", "agent", "feedback", "list", "scout").json()["feedback"]
    assert listed[0]["correction"] == "Black and white stripes."
    out = tmp_path / "train.jsonl"
    exported = cli("--json", "agent", "feedback", "export", "scout", "-o", str(out)).json()
    assert exported["written"] == 1
    row = json.loads(out.read_text().splitlines()[0])
    assert row["messages"][-1]["content"] == "Black and white stripes."


def _raw(path: Path) -> bytes:
    """A SQLite file's bytes with whatever lies beside it (journal, WAL)."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_feedback_and_memory_summaries_are_not_kept_in_clear(
    cli: Invoke, agent_home: Path, tiny_gguf: Path, tmp_path: Path
) -> None:
    from sahara_cli.identity.store import KeyStore

    question = "Where do the okapis of the Ituri forest sleep at noon?"
    correction = "In dense thickets near the Epulu river."
    signer = KeyStore(agent_home / "keystore").unlock("main", PASSWORD)
    spec = spec_for(
        tiny_gguf,
        memory={"long_term": True, "recall": 1, "feedback_examples": 1},
        tools={"builtin": []},
    )
    AgentStore(agent_home).save(spec, overwrite=True)
    with open_agent(agent_home, "scout", signer=signer) as agent:
        answer = agent.ask(question)
        agent.rate("bad", correction)
        assert agent.long_term is not None
        assert agent.long_term.listing()[0]["summary"] == question
    agent_dir = AgentStore(agent_home).dir("scout")
    for name in ("memory.sqlite", "feedback.sqlite"):
        data = _raw(agent_dir / name)
        for text in (question, question[:24], correction, answer.text.strip()):
            if len(text) >= 12:
                assert text.encode() not in data, f"{text!r} lies in clear in {name}"
    # The owner still gets all of it back, with the agent's ID.
    listed = cli("--json", "agent", "feedback", "list", "scout").json()["feedback"]
    assert listed[0]["question"] == question and listed[0]["correction"] == correction
    out = tmp_path / "train.jsonl"
    assert (
        cli("--json", "agent", "feedback", "export", "scout", "-o", str(out)).json()["written"] == 1
    )
    assert json.loads(out.read_text())["messages"][1]["content"] == question


def test_feedback_and_summaries_of_older_versions_are_sealed(
    cli: Invoke, agent_home: Path, tiny_gguf: Path, tmp_path: Path
) -> None:
    """Homes whose files an older version wrote in clear keep working; the text is
    sealed the first time the agent (or 'agent feedback') opens them."""
    import sqlite3

    from sahara_cli.identity.store import KeyStore

    agent_dir = AgentStore(agent_home).dir("scout")
    agent_dir.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(agent_dir / "feedback.sqlite")
    old.execute(
        "CREATE TABLE feedback (id INTEGER PRIMARY KEY, at REAL NOT NULL, question TEXT NOT"
        " NULL, answer TEXT NOT NULL, rating TEXT NOT NULL, correction TEXT, embedding BLOB)"
    )
    old.execute(
        "INSERT INTO feedback VALUES (1, 1.0, 'What colour is an okapi rump?',"
        " 'Plain brown everywhere.', 'bad', 'Striped black and white like a zebra.', NULL)"
    )
    old.commit()
    old.close()
    old = sqlite3.connect(agent_dir / "memory.sqlite")
    old.execute(
        "CREATE TABLE notes (cid TEXT PRIMARY KEY, at REAL NOT NULL, summary TEXT NOT NULL)"
    )
    old.execute("INSERT INTO notes VALUES ('bafyold', 1.0, 'Which forest do okapis roam?')")
    old.commit()
    old.close()

    out = tmp_path / "train.jsonl"
    assert (
        cli("--json", "agent", "feedback", "export", "scout", "-o", str(out)).json()["written"] == 1
    )
    row = json.loads(out.read_text())
    assert row["messages"][1:] == [
        {"role": "user", "content": "What colour is an okapi rump?"},
        {"role": "assistant", "content": "Striped black and white like a zebra."},
    ]
    data = _raw(agent_dir / "feedback.sqlite")
    for text in ("okapi rump", "Plain brown", "Striped black"):
        assert text.encode() not in data, f"{text!r} lies in clear in feedback.sqlite"

    signer = KeyStore(agent_home / "keystore").unlock("main", PASSWORD)
    spec = spec_for(tiny_gguf, memory={"long_term": True, "recall": 1})
    AgentStore(agent_home).save(spec, overwrite=True)
    with open_agent(agent_home, "scout", signer=signer) as agent:
        assert agent.long_term is not None
        assert agent.long_term.listing() == [
            {"cid": "bafyold", "at": 1.0, "summary": "Which forest do okapis roam?"}
        ]
    assert b"okapis roam" not in _raw(agent_dir / "memory.sqlite")


def test_feedback_export_to_a_missing_folder_is_a_clear_error(
    cli: Invoke, agent_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    for out in (tmp_path / "nonexistent" / "x.jsonl", tmp_path / "a-file" / "x.jsonl"):
        result = cli("--json", "agent", "feedback", "export", "scout", "-o", str(out))
        assert result.exit_code == 2 and result.stdout == "", result.stderr
        error = result.error()
        assert error["code"] == "usage" and f"cannot write {out}" in error["message"]


def test_interactive_chat_slash_commands(cli: Invoke, agent_home: Path) -> None:
    session = "hello there\n/tools\n/sources\n/good\n/feedback\n/memory\n/nonsense\n/exit\n"
    result = cli("agent", "chat", "scout", input=session)
    assert result.exit_code == 0, result.stderr
    assert "calculator" in result.stdout
    assert "1 rated answers: 1 good" in result.stdout
    assert "unknown command /nonsense" in result.stdout


def test_run_reads_the_task_from_a_file(cli: Invoke, agent_home: Path, tmp_path: Path) -> None:
    task = tmp_path / "task.md"
    task.write_text("Summarise: zebras eat grass.\n")
    result = cli("--json", "--no-prompt", "agent", "run", "scout", "--task", str(task))
    assert result.exit_code == 0, result.stderr
    assert result.json()["answer"]
    empty = tmp_path / "empty.md"
    empty.write_text("  \n")
    bad = cli("--json", "--no-prompt", "agent", "run", "scout", "--task", str(empty))
    assert bad.exit_code == 2 and "empty" in bad.error()["message"]


def test_bad_models_and_specs_are_clear_errors(
    cli: Invoke, agent_home: Path, tmp_path: Path
) -> None:
    store = AgentStore(agent_home)
    store.save(spec_for(tmp_path / "missing.gguf", name="lost"))
    lost = cli("--json", "--no-prompt", "agent", "chat", "lost", "-m", "hi")
    assert lost.exit_code == 3 and lost.error()["code"] == "agent.model_not_found"
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    store.save(spec_for(corrupt, name="broken"))
    broken = cli("--json", "--no-prompt", "agent", "chat", "broken", "-m", "hi")
    assert broken.exit_code == 8 and broken.error()["code"] == "agent.model_invalid"
    spec_path = store.spec_path("scout")
    spec_path.write_text(spec_path.read_text() + '\n[extra]\nkey = "x"\n')
    invalid = cli("--json", "--no-prompt", "agent", "chat", "scout", "-m", "hi")
    assert invalid.exit_code == 8 and invalid.error()["code"] == "agent.spec_invalid"
    missing = cli("--json", "--no-prompt", "agent", "chat", "nobody", "-m", "hi")
    assert missing.exit_code == 3 and missing.error()["code"] == "agent.not_found"
    interactive = cli("--json", "agent", "chat", "lost")
    assert interactive.exit_code == 2


def test_create_from_templates_and_manage(cli: Invoke, initialised: Path) -> None:
    made = cli("--json", "agent", "create", "helper", "--template", "code-helper", "--model", "m1")
    assert made.exit_code == 0, made.stderr
    assert made.json()["spec"]["model"]["name"] == "m1"
    again = cli("--json", "agent", "create", "helper", "--template", "code-helper")
    assert again.exit_code == 7 and again.error()["code"] == "agent.exists"
    unknown = cli("--json", "agent", "create", "x", "--template", "nope")
    assert unknown.exit_code == 3
    listed = cli("--json", "agent", "list").json()["agents"]
    assert [a["name"] for a in listed] == ["helper"]
    assert listed[0]["tools"] == ["calculator"]
    shown = cli("--json", "agent", "show", "helper").json()
    assert shown["spec"]["persona"].startswith("You are a senior software engineer")
    removed = cli("--json", "--no-prompt", "agent", "rm", "helper", "--yes")
    assert removed.exit_code == 0
    assert cli("--json", "agent", "list").json()["agents"] == []


def test_a_stateless_call_takes_the_callers_sampling_within_the_spec(tiny_gguf: Path) -> None:
    """A served call's max_tokens and stop apply to its reply; max_tokens never goes
    above the spec's (the owner's cost per call)."""
    spec = spec_for(tiny_gguf, generation={"max_tokens": 12, "temperature": 0.0})
    runner = open_runner("llama", tiny_gguf, RunnerOptions(n_ctx=1024))
    with Agent(spec, runner, None) as agent:
        agent._closers.append(runner.close)
        chat = [Message("user", "Say something long.")]
        short = agent.finish(agent.prepare(chat, sampling={"max_tokens": 3}))
        assert short.completion_tokens == 3 and short.finish_reason == "length"
        capped = agent.finish(agent.prepare(chat, sampling={"max_tokens": 500}))
        assert capped.completion_tokens == 12
        default = agent.finish(agent.prepare(chat))
        assert default.text == capped.text  # greedy: the same reply, the spec's length
