"""The agent spec, templates, the agent store, memory and the Perceptor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sahara_cli.agent.memory import FeedbackStore, ShortTermMemory
from sahara_cli.agent.perceptor import perceive
from sahara_cli.agent.spec import (
    AgentSpec,
    AgentStore,
    list_templates,
    parse_spec,
    template_spec,
)
from sahara_cli.errors import (
    AgentExists,
    AgentNotFound,
    AgentSpecInvalid,
    FileUnreadable,
    PerceptionUnsupported,
    UsageError,
)


def test_templates_all_load() -> None:
    names = list_templates()
    assert {"researcher", "data-curator", "code-helper", "customer-support"} <= set(names)
    for name in names:
        spec = template_spec(name, "x1")
        assert spec.name == "x1"
        assert spec.persona.strip()
        assert parse_spec(spec.to_toml()) == spec  # round trip through TOML


def test_unknown_template() -> None:
    with pytest.raises(AgentNotFound, match="no agent template"):
        template_spec("nope", "a")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('name = "a"\npersona = ', "not valid TOML"),
        ('name = "a"\ncolour = "red"', "colour"),
        ('name = "a"\n[tools]\nbuiltin = ["rm_rf"]', "unknown built-in tool"),
        ('name = "bad name"', "bad agent name"),
        ('name = "a"\n[[mcp]]\nname = "x"\ntransport = "stdio"', "stdio needs a command"),
        ('name = "a"\n[[mcp]]\nname = "x"\ntransport = "http"', "http needs a url"),
        ('name = "a"\n[model]\nrunner = "onnx"', "runner"),
        ('name = "a"\n[generation]\ntemperature = -1', "temperature"),
    ],
)
def test_bad_specs_are_clear(text: str, fragment: str) -> None:
    with pytest.raises(AgentSpecInvalid) as info:
        parse_spec(text)
    assert fragment in str(info.value)
    assert "\n" not in info.value.message


def test_store_round_trip(tmp_path: Path) -> None:
    store = AgentStore(tmp_path)
    assert store.names() == []
    spec = AgentSpec(name="helper", persona="Be brief.")
    path = store.save(spec)
    assert path == tmp_path / "agents" / "helper" / "agent.toml"
    assert store.load("helper") == spec
    with pytest.raises(AgentExists):
        store.save(spec)
    store.save(spec.model_copy(update={"persona": "Be kind."}), overwrite=True)
    assert store.load("helper").persona == "Be kind."
    assert [s.name for s in store] == ["helper"]
    store.remove("helper")
    with pytest.raises(AgentNotFound):
        store.load("helper")


def test_short_term_memory_keeps_recent_turns_within_budget() -> None:
    mem = ShortTermMemory(3)
    for i in range(5):
        mem.add(f"q{i}", f"a{i}")
    assert [m.content for m in mem.messages()] == ["q2", "a2", "q3", "a3", "q4", "a4"]
    # A budget of 4 characters keeps only the newest pair.
    assert [m.content for m in mem.messages(4)] == ["q4", "a4"]
    off = ShortTermMemory(0)
    off.add("q", "a")
    assert off.messages() == []


class _Letters:
    """A stand-in embedder for the feedback store: letter counts (no model needed)."""

    name = "letters"
    dim = 26

    def embed(self, texts: list[str], batch_size: int = 32) -> list[list[float]]:
        out = []
        for text in texts:
            vec = [0.0] * 26
            for ch in text.lower():
                if "a" <= ch <= "z":
                    vec[ord(ch) - 97] += 1.0
            out.append(vec)
        return out


def test_feedback_examples_and_export(tmp_path: Path) -> None:
    from sahara_cli.identity.keys import Signer

    signer = Signer(os.urandom(32))
    fb = FeedbackStore(tmp_path / "fb.sqlite", _Letters, signer=signer)  # type: ignore[arg-type]
    fb.add("zzz zebra", "wrong", "bad", "zebras are striped")
    fb.add("aaa apple", "apples are fruit", "good")
    fb.add("bbb", "meh", "bad")  # no correction: not an example, not exported
    with pytest.raises(UsageError):
        fb.add("q", "a", "fine")  # type: ignore[arg-type]
    best = fb.examples("zebra zoo", 1)
    assert [e.target for e in best] == ["zebras are striped"]
    assert len(fb.examples("anything", 5)) == 2
    out = tmp_path / "set.jsonl"
    assert fb.export(out, "persona") == {"written": 2, "skipped": 1}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["messages"][2]["content"] == "zebras are striped"
    assert rows[0]["rejected"] == "wrong"
    assert "rejected" not in rows[1]
    fb.close()


def test_perceive_files(tmp_path: Path) -> None:
    doc = tmp_path / "notes.md"
    doc.write_text("# Quokkas\nThey drink at dusk.\n")
    table = tmp_path / "t.csv"
    table.write_text("animal,time\nquokka,dusk\n")
    seen = perceive("When?", files=[doc, table])
    assert "They drink at dusk." in seen.text
    assert "quokka" in seen.text
    assert seen.text.endswith("When?")
    assert [f["kind"] for f in seen.files] == ["markdown", "csv"]


def test_perceive_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    blob = tmp_path / "x.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(PerceptionUnsupported, match="not a document"):
        perceive("?", files=[blob])
    with pytest.raises(FileUnreadable):
        perceive("?", files=[tmp_path / "missing.txt"])
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(PerceptionUnsupported, match="multimodal projector"):
        perceive("?", images=[image], supports_images=False)
    assert perceive("?", images=[image], supports_images=True).images == [image]
