"""The agent workflows as library functions: typed results without the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sahara_cli.agent import workflows
from sahara_cli.agent.memory import FeedbackStore
from sahara_cli.agent.results import AgentKeyMade, AgentKeyResult, AgentKeyRevocation
from sahara_cli.agent.servers.signed_tokens import read_token, sign_token, signer_of
from sahara_cli.agent.spec import AgentStore
from sahara_cli.agent.types import Answer, Source, ToolCall
from sahara_cli.errors import AgentExists, AgentNotFound, FileUnreadable, UsageError
from sahara_cli.identity.keys import Signer, to_checksum_address


def test_create_show_list_and_remove(tmp_path: Path) -> None:
    made = workflows.create_agent(
        tmp_path, "helper", template="code-helper", model="m1", runner="torch", persona="Hi."
    )
    assert made.name == "helper" and Path(made.path).is_file()
    assert made.spec["model"] == {**made.spec["model"], "name": "m1", "runner": "torch"}
    assert made.spec["persona"] == "Hi."
    with pytest.raises(AgentExists):
        workflows.create_agent(tmp_path, "helper")
    workflows.create_agent(tmp_path, "helper", overwrite=True)  # the defaults now
    assert workflows.show_agent(tmp_path, "helper").spec["model"]["name"] == "default"

    (row,) = workflows.list_agents(tmp_path).model_dump(mode="json")["agents"]
    assert (row["name"], row["model"], row["runner"], row["asset_id"]) == (
        "helper",
        "default",
        None,
        None,
    )
    assert workflows.remove_agent(tmp_path, "helper").removed == "helper"
    assert workflows.list_agents(tmp_path).agents == []
    with pytest.raises(AgentNotFound):
        workflows.show_agent(tmp_path, "helper")


def test_create_refuses_bad_input_before_writing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not both"):
        workflows.create_agent(tmp_path, "a", template="researcher", from_file=tmp_path / "x")
    with pytest.raises(UsageError, match="--runner 'gpu'"):
        workflows.create_agent(tmp_path, "a", runner="gpu")
    assert AgentStore(tmp_path).names() == []


def test_templates_each_say_what_they_do() -> None:
    found = workflows.agent_templates().templates
    assert {"researcher", "code-helper"} <= {t.template for t in found}
    assert all(t.description for t in found)


def test_read_task(tmp_path: Path) -> None:
    task = tmp_path / "task.txt"
    task.write_text("  Sum 2 and 3.\n")
    assert workflows.read_task(task) == "Sum 2 and 3."
    task.write_text("   \n")
    with pytest.raises(UsageError, match="empty"):
        workflows.read_task(task)
    with pytest.raises(FileUnreadable):
        workflows.read_task(tmp_path / "missing.txt")


def test_an_answer_as_its_typed_result() -> None:
    answer = Answer(
        text="Stripes.",
        sources=[Source(cid="bafy", name="zebras.md", score=0.5, text="...", asset_id=3)],
        tool_calls=[ToolCall(tool="calculator", arguments={"expression": "1+1"}, output=2)],
        record={"digest": "0x" + "ab" * 32, "agent_asset": 3},
        prompt_tokens=12,
        completion_tokens=2,
        finish_reason="stop",
    )
    doc = workflows.answer_result("scout", answer).model_dump(mode="json")
    assert doc["agent"] == "scout" and doc["answer"] == "Stripes."
    assert doc["sources"][0]["asset_id"] == 3 and doc["tool_calls"][0]["output"] == 2
    assert doc["usage"] == {"prompt_tokens": 12, "completion_tokens": 2}
    assert doc["record"]["agent_asset"] == 3  # the record keeps its hashed form
    assert doc["tx"] is None


def test_feedback_list_and_export(tmp_path: Path) -> None:
    workflows.create_agent(tmp_path, "scout", template="researcher")
    signer = Signer(os.urandom(32))
    fb = FeedbackStore(AgentStore(tmp_path).dir("scout") / "feedback.sqlite", signer=signer)
    fb.add("What colour are zebras?", "Green.", "bad", "Black and white.")
    fb.add("Two and two?", "Four.", "good")
    fb.close()

    listed = workflows.list_feedback(tmp_path, "scout", signer).model_dump(mode="json")
    rows = listed["feedback"]
    assert [r["rating"] for r in rows] == ["bad", "good"]
    assert rows[0]["correction"] == "Black and white." and rows[0]["feedback_id"] >= 1
    assert rows[0]["rated_at"].endswith("Z")

    out = tmp_path / "set.jsonl"
    done = workflows.export_feedback(tmp_path, "scout", signer, out)
    assert (done.agent, done.written, done.skipped) == ("scout", 2, 0)
    first = json.loads(out.read_text().splitlines()[0])
    assert first["messages"][-1]["content"] == "Black and white."
    with pytest.raises(UsageError, match="cannot write"):
        workflows.export_feedback(tmp_path, "scout", signer, tmp_path / "no" / "set.jsonl")


def test_signed_tokens_round_trip_and_name_their_signer() -> None:
    signer = Signer(os.urandom(32))
    token = sign_token("sahara-test-", signer, b"hello", {"n": 1})
    data = read_token("sahara-test-", token)
    assert data["n"] == 1
    assert signer_of(b"hello", data["signature"]) == signer.address
    assert signer_of(b"hullo", data["signature"]) != signer.address
    with pytest.raises(ValueError):
        read_token("sahara-other-", token)
    with pytest.raises(ValueError):
        read_token("sahara-test-", "sahara-test-!!!")


def test_agent_key_result_is_either_shape() -> None:
    made = AgentKeyMade(
        api_key="sahara-x",
        key_id="ab" * 16,
        expires_at=1_800_000_000,
        address="0x" + "ab" * 20,
        asset_id=4,
        agent="helper",
        chain_id=31337,
        ttl_s=3600,
        calls_left=0,
        owner=True,
    )
    doc = AgentKeyResult(made).model_dump(mode="json")
    assert doc["expires_at"] == "2027-01-15T08:00:00Z"
    assert doc["address"] == to_checksum_address("0x" + "ab" * 20) != "0x" + "ab" * 20
    revoked = AgentKeyRevocation(revoked=True, key_id="ab" * 16, already=False, agent="helper")
    assert AgentKeyResult(revoked).model_dump(mode="json")["url"] is None
