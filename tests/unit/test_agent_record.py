"""Provenance records: hashes and digest, the local store, and the commit on chain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sahara_cli.agent.record import (
    Record,
    RecordStore,
    build_record,
    canonical_json,
    commit_record,
    recorded_in,
)
from sahara_cli.errors import (
    AgentError,
    AssetNotFound,
    ProtocolError,
    ProtocolInvalidArgument,
    RecordNotFound,
)
from sahara_cli.identity.keys import keccak256
from tests.conftest import TEST_KEY_0

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Wie geht's? ünïcödé"},
]


def record(**override: Any) -> Record:
    args: dict[str, Any] = {
        "agent": "researcher",
        "agent_asset": 7,
        "model_cid": "bafkreimodel",
        "runner": "llama",
        "messages": MESSAGES,
        "answer": "Gut — danke.",
        "assets": [3, 5, 3],
        "tool_calls": [{"tool": "calculator", "arguments": {"expression": "1+1"}, "ok": True}],
        "created": 1_764_000_000,
        "nonce": "5a" * 16,
    }
    args.update(override)
    return build_record(**args)


def test_hashes_are_sha256_of_canonical_json_and_utf8() -> None:
    rec = record()
    prompt = json.dumps(MESSAGES, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert rec.prompt_hash == "0x" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    assert rec.answer_hash == "0x" + hashlib.sha256("Gut — danke.".encode()).hexdigest()
    args = hashlib.sha256(b'{"expression":"1+1"}').hexdigest()
    assert rec.tool_calls == [{"tool": "calculator", "arguments_hash": "0x" + args, "ok": True}]
    assert rec.assets == [3, 5]  # distinct, in order
    assert rec.digest == "0x" + keccak256(canonical_json(rec.body())).hex()


def test_digest_ignores_key_order_but_not_content() -> None:
    """The same prompt with keys in another order is the same record; any change is not."""
    reordered = [{"content": m["content"], "role": m["role"]} for m in MESSAGES]
    assert record(messages=reordered).digest == record().digest
    as_text = [{"tool": "calculator", "arguments": '{"expression": "1+1"}'}]
    assert record(tool_calls=as_text).digest == record().digest
    base = record().digest
    changed = [
        record(answer="Gut - danke."),
        record(messages=[*MESSAGES, {"role": "user", "content": "?"}]),
        record(assets=[5, 3]),
        record(model_cid="bafkreiother"),
        record(agent_asset=None),
        record(created=1_764_000_001),
        record(nonce="a5" * 16),
        record(tool_calls=[{"tool": "calculator", "arguments": {"expression": "1+2"}}]),
        record(tool_calls=[{"name": "calculator", "arguments": {}, "ok": False}]),
    ]
    digests = {r.digest for r in changed}
    assert base not in digests and len(digests) == len(changed)


def test_equal_answers_in_the_same_second_have_their_own_digests() -> None:
    """Two calls with the same prompt and answer within one second (``created`` is whole
    seconds) are two records: each draws its own nonce."""
    args = {**record().to_dict(), "messages": MESSAGES, "answer": "Gut — danke."}
    for name in ("version", "prompt_hash", "answer_hash", "digest", "nonce"):
        args.pop(name)
    first, second = build_record(**args), build_record(**args)
    assert first.created == second.created and first.answer_hash == second.answer_hash
    assert len(first.nonce) == 32 and first.nonce != second.nonce
    assert first.digest != second.digest
    assert Record.from_dict(first.to_dict()) == first


def test_a_version_1_record_without_a_nonce_still_checks_out() -> None:
    old = Record(**{**record().body(), "nonce": "", "version": 1})
    data = old.to_dict()
    assert "nonce" not in data and data["version"] == 1
    body = {k: v for k, v in data.items() if k != "digest"}
    assert data["digest"] == "0x" + keccak256(canonical_json(body)).hex()
    assert Record.from_dict(data) == old


def test_a_record_round_trips_and_a_tampered_one_is_refused() -> None:
    rec = record()
    data = rec.to_dict()
    assert Record.from_dict({**data, "seconds": 1.5}) == rec
    with pytest.raises(AgentError, match="does not match"):
        Record.from_dict({**data, "answer_hash": "0x" + "00" * 32})
    with pytest.raises(AgentError, match="not a provenance record"):
        Record.from_dict({"agent": "x"})


def test_the_store_keeps_records_and_their_commit(tmp_path: Path) -> None:
    path = tmp_path / "agents" / "researcher" / "records.sqlite"
    first, second = record(), record(answer="Another answer.")
    with RecordStore(path) as store:
        one = store.add_dict({**first.to_dict(), "seconds": 0.25})
        assert store.add(first) == one  # the same record again keeps its row
        two = store.add(second)
        assert two != one
        got = store.get(one)
        assert got["digest"] == first.digest and got["seconds"] == 0.25
        assert got["committed"] is False and "record_id" not in got
        assert [r["id"] for r in store.list()] == [two, one]
        assert [r["id"] for r in store.list(limit=1)] == [two]
        store.mark_committed(first.digest, {"record_id": 4, "tx": "0xabc", "block": 9})
        with pytest.raises(AgentError):
            store.mark_committed("0x" + "11" * 32, {"record_id": 1, "tx": "0x1"})
        with pytest.raises(AgentError):
            store.mark_committed(first.digest, {"tx": "0x1"})
        with pytest.raises(AgentError, match="no provenance record"):
            store.get(99)
    with RecordStore(path) as reopened:  # kept on disk
        got = reopened.get(first.digest)
        assert got["committed"] is True
        assert (got["record_id"], got["tx"], got["block"]) == (4, "0xabc", 9)
        assert Record.from_dict(got) == first


def test_a_pending_record_keeps_notes_beside_its_fields(tmp_path: Path) -> None:
    """A served answer whose record did not reach the chain keeps its license and meter
    transaction locally, without changing the record (its digest still checks out)."""
    rec = record()
    with RecordStore(tmp_path / "records.sqlite") as store:
        store.add(rec)
        store.note(rec.digest, {"license_id": 3, "meter_tx": "0xmeter"})
        got = store.get(rec.digest)
        assert (got["license_id"], got["meter_tx"], got["committed"]) == (3, "0xmeter", False)
        assert Record.from_dict(got) == rec
        with pytest.raises(AgentError, match="own fields"):
            store.note(rec.digest, {"answer_hash": "0x00"})
        with pytest.raises(AgentError, match="no provenance record"):
            store.note("0x" + "11" * 32, {"license_id": 1})


# --- on chain -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from sahara_cli.node.client import NodeClient
    from sahara_cli.node.rpc.testing import dev_node
    from sahara_cli.protocol.client import Protocol

    with dev_node(tmp_path_factory.mktemp("node")) as (_, server):
        yield Protocol(NodeClient(server.url))


def test_commit_record_puts_the_digest_on_chain(chain: Any) -> None:
    from sahara_cli.identity import Signer

    signer = Signer(bytes.fromhex(TEST_KEY_0[2:]))
    doc, _ = chain.register(
        signer, kind="dataset", cid="bafy-record-doc", commitment=b"\1" * 32, name="doc"
    )
    agent, _ = chain.register(
        signer, kind="agent", cid="bafy-record-agent", commitment=b"\2" * 32, name="agent"
    )
    rec = record(agent_asset=agent, assets=[doc])
    done = commit_record(chain, signer, rec)
    assert set(done) == {
        "record_id",
        "tx",
        "block",
        "gas_used",
        "license_id",
        "calls",
        "fee_wei",
        "recorded_in",
    }
    assert (done["recorded_in"], done["calls"], done["fee_wei"]) == ("InferenceRecord", 0, "0")
    # The inference SAP keeps the digest and the record's prompt and answer hashes.
    got = chain.get_record(done["record_id"])
    assert got.digest == rec.digest
    assert (got.input_hash, got.output_hash) == (rec.prompt_hash, rec.answer_hash)
    assert (got.asset, got.recorder, got.license, got.sources) == (agent, signer.address, 0, [doc])
    assert chain.record_count() >= done["record_id"]
    # Committing a dict (as an Answer carries it) works the same; sources can be narrowed.
    again = commit_record(chain, signer, {**rec.to_dict(), "seconds": 1.0}, sources=[])
    assert again["record_id"] == done["record_id"] + 1
    with pytest.raises(ProtocolInvalidArgument, match=r"no asset id"):
        commit_record(chain, signer, record(agent_asset=None))
    with pytest.raises(AssetNotFound):
        commit_record(chain, signer, record(agent_asset=agent, assets=[10_000]))
    with pytest.raises(RecordNotFound):
        chain.get_record(10_000)


def test_a_metered_answer_is_recorded_and_paid_in_one_transaction(chain: Any) -> None:
    """With calls, the record's own transaction meters them on the API license: the fee
    is in the record, the license lost the calls, and the agent's owner was credited."""
    from sahara_cli.identity import Signer
    from sahara_cli.node.genesis import dev_keys

    owner = Signer(bytes.fromhex(TEST_KEY_0[2:]))
    caller = Signer(dev_keys(2)[1])
    agent, _ = chain.register(
        owner, kind="agent", cid="bafy-record-metered", commitment=b"\3" * 32, name="metered"
    )
    offer, _ = chain.offer(owner, agent, "api", price=1_000)
    lic, _ = chain.buy(caller, offer, 3)
    before = chain.claimable(owner.address)
    rec = record(agent_asset=agent, assets=[])
    done = commit_record(chain, owner, rec, lic, calls=1)
    assert (done["license_id"], done["calls"], done["fee_wei"]) == (lic, 1, "1000")
    got = chain.get_record(done["record_id"])
    assert (got.license, got.calls, got.fee_wei, got.digest) == (lic, 1, 1_000, rec.digest)
    assert chain.get_license(lic).calls == 2
    assert chain.claimable(owner.address) - before == 1_000
    # Only the agent's meter may meter its calls: the caller's own try is refused.
    with pytest.raises(ProtocolError, match="meter"):
        commit_record(chain, caller, record(agent_asset=agent, assets=[]), lic, calls=1)


def test_records_of_the_provenance_contract_stay_readable(chain: Any, tmp_path: Path) -> None:
    """Answers recorded before the inference SAP are in the Provenance contract: the
    facade still reads them, and stored rows committed there say so."""
    from sahara_cli.identity import Signer

    signer = Signer(bytes.fromhex(TEST_KEY_0[2:]))
    agent, _ = chain.register(
        signer, kind="agent", cid="bafy-record-legacy", commitment=b"\4" * 32, name="legacy"
    )
    rec = record(agent_asset=agent, assets=[])
    legacy_id, tx = chain.provenance.record_inference(signer, agent, rec.digest)
    old = chain.legacy_record(legacy_id)
    assert (old.digest, old.asset, old.recorder) == (rec.digest, agent, signer.address)
    assert chain.legacy_record_count() >= legacy_id
    with RecordStore(tmp_path / "records.sqlite") as store:
        store.add(rec)
        assert recorded_in(store.get(rec.digest)) is None  # pending
        # A row committed before the SAP: the shape commit_record returned then.
        store.mark_committed(
            rec.digest,
            {"record_id": legacy_id, "tx": tx.hash, "block": tx.block, "gas_used": 1,
             "license_id": 0},
        )  # fmt: skip
        assert recorded_in(store.get(rec.digest)) == "Provenance"
        assert not store.discard(rec.digest)  # a committed record is kept
        fresh = record(agent_asset=agent, assets=[], nonce="ff" * 16)
        store.add(fresh)
        store.mark_committed(fresh.digest, commit_record(chain, signer, fresh))
        assert recorded_in(store.get(fresh.digest)) == "InferenceRecord"
        # A committed row is found by where it went on chain, whatever its body says.
        sap_id = store.get(fresh.digest)["record_id"]
        assert store.committed_as(sap_id, "InferenceRecord")["digest"] == fresh.digest
        assert store.committed_as(legacy_id, "Provenance")["digest"] == rec.digest
        assert store.committed_as(10_000, "InferenceRecord") is None
        dropped = record(agent_asset=agent, nonce="ee" * 16)
        store.add(dropped)
        assert store.discard(dropped.digest)
        with pytest.raises(AgentError, match="no provenance record"):
            store.get(dropped.digest)
