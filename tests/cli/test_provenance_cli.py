"""sahara provenance list|show|verify against a live in-process dev node.

The chain gets a published agent whose answers were recorded both ways: one in the
Provenance contract (before the inference SAP) and one through the SAP, metering a call
of a caller's API license and paying the agent and the dataset it used; a third answer
no agent of the home kept; and two jobs of the training SAP on the dataset, one
finalised. The home keeps the agent and the records it made. The commands must list,
show and verify them, and a local record or job file changed after the fact must fail
``verify`` with ``provenance.mismatch``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sahara_cli.agent.record import Record, RecordStore, build_record, commit_record
from sahara_cli.identity.keys import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.node.genesis import dev_keys
from sahara_cli.node.rpc.testing import dev_node
from sahara_cli.protocol.client import Contribution, Protocol
from tests.conftest import Invoke

SAH = 10**18
PRICE = SAH // 1000
ALICE, BOB, CAROL = (Signer(k) for k in dev_keys()[:3])
WIDE = {"COLUMNS": "220"}
MADE: dict[str, Any] = {}


def answer(agent: int, text: str, sources: list[int]) -> Record:
    return build_record(
        agent="helper",
        agent_asset=agent,
        model_cid="bafy-model",
        runner="llama",
        messages=[{"role": "user", "content": f"Say {text}"}],
        answer=text,
        assets=sources,
    )


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dev_node(tmp_path_factory.mktemp("provenance-node")) as (_, server):
        proto = Protocol(NodeClient(server.url))
        model, _ = proto.register(
            ALICE, kind="model", cid="bafy-model", commitment=b"\3" * 32, name="model"
        )
        agent, _ = proto.register(
            ALICE,
            kind="agent",
            cid="bafy-helper",
            commitment=b"\1" * 32,
            name="helper",
            parents=[model],
            upstream_bps=3_000,  # the sources of its answers share 30% of what it earns
        )
        data, _ = proto.register(
            CAROL,
            kind="dataset",
            cid="bafy-zebras",
            commitment=b"\2" * 32,
            name="zebras",
            contributors=[Contribution(CAROL.address, 10_000)],
        )
        offer, _ = proto.offer(ALICE, agent, "api", price=PRICE)
        lic, _ = proto.buy(BOB, offer, 3)
        old = answer(agent, "before the SAP", [data])
        legacy_id, legacy_tx = proto.provenance.record_inference(ALICE, agent, old.digest, [data])
        new = answer(agent, "through the SAP", [data])
        done = commit_record(proto, ALICE, new, lic, sources=[data], calls=1)
        stranger = answer(agent, "kept nowhere", [])
        elsewhere = commit_record(proto, ALICE, stranger)
        bond, _ = proto.training.parameters()

        def submit(cid: str) -> int:
            job, _ = proto.training.submit(
                CAROL,
                kind="train",
                base=0,
                inputs=[data],
                weights_bps=[],
                hparams=b"\x11" * 32,
                cid=cid,
                commitment=b"\x22" * 32,
                name="zebra-tuned",
                metrics='{"loss": 1.5}',
                upstream_bps=3_000,
                bond_wei=bond,
            )
            return job

        job = submit("bafy-tuned")
        proto.node.call("sahara_dev_mine", 1, proto.training.get_job(job).finalize_after)
        output, _ = proto.training.finalize(BOB, job)
        pending = submit("bafy-pending")
        MADE.update(
            agent=agent,
            data=data,
            license=lic,
            old=old,
            legacy=legacy_id,
            legacy_row={
                "record_id": legacy_id,
                "tx": legacy_tx.hash,
                "block": legacy_tx.block,
                "gas_used": legacy_tx.gas_used,
                "license_id": 0,
            },
            new=new,
            new_row=done,
            elsewhere=elsewhere["record_id"],
            stranger=stranger,
            job=job,
            output=output,
            pending=pending,
        )
        yield server.url


@pytest.fixture
def chain(initialised: Path, node_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The home, with the published agent 'helper' and the two records it kept."""
    from sahara_cli.agent.spec import AgentSpec, AgentStore

    monkeypatch.setenv("SAHARA_NODE_RPC_URL", node_url)
    store = AgentStore(initialised)
    store.save(AgentSpec(name="helper", asset_id=MADE["agent"]))
    with RecordStore(store.dir("helper") / "records.sqlite") as records:
        for record, row in ((MADE["old"], MADE["legacy_row"]), (MADE["new"], MADE["new_row"])):
            records.add(record)
            records.mark_committed(record.digest, row)
    return initialised


def ok(cli: Invoke, *args: str) -> dict[str, Any]:
    result = cli("--json", "--no-prompt", "provenance", *args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def fails(cli: Invoke, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("--json", "--no-prompt", "provenance", *args)
    assert result.exit_code != 0 and result.stdout == ""
    return result.exit_code, result.error()


# -- list ------------------------------------------------------------------------------


def test_list_shows_answers_of_both_places_and_jobs_newest_first(cli: Invoke, chain: Path) -> None:
    found = ok(cli, "list")
    answers = found["answers"]
    assert [a["ref"] for a in answers] == [
        f"answer:{MADE['elsewhere']}",
        f"answer:{MADE['new_row']['record_id']}",
        f"legacy:{MADE['legacy']}",
    ]
    assert [a["recorded_in"] for a in answers] == [
        "InferenceRecord",
        "InferenceRecord",
        "Provenance",
    ]
    assert [a["local_agent"] for a in answers] == [None, "helper", "helper"]
    metered = answers[1]
    assert metered["digest"] == MADE["new"].digest
    assert (metered["input_hash"], metered["output_hash"]) == (
        MADE["new"].prompt_hash,
        MADE["new"].answer_hash,
    )
    assert (metered["license_id"], metered["calls_metered"], metered["fee_wei"]) == (
        MADE["license"],
        1,
        str(PRICE),
    )
    assert metered["source_asset_ids"] == [MADE["data"]]
    assert answers[2]["input_hash"] is None and answers[2]["source_asset_ids"] == [MADE["data"]]
    jobs = found["jobs"]
    assert [(j["ref"], j["status"]) for j in jobs] == [
        (f"job:{MADE['pending']}", "pending"),
        (f"job:{MADE['job']}", "finalized"),
    ]
    assert jobs[1]["output_asset_id"] == MADE["output"] and jobs[0]["output_asset_id"] is None
    assert jobs[1]["input_asset_ids"] == [MADE["data"]] and jobs[1]["kind"] == "train"
    assert found["shown"] == "all" and not found["more"]


def test_list_filters_by_agent_asset_and_kind(cli: Invoke, chain: Path) -> None:
    mine = ok(cli, "list", "--agent", "helper")
    assert mine["shown"] == "answers" and mine["jobs"] == []
    assert len(mine["answers"]) == 3
    about_data = ok(cli, "list", "--asset", str(MADE["data"]))
    assert {a["ref"] for a in about_data["answers"]} == {
        f"answer:{MADE['new_row']['record_id']}",
        f"legacy:{MADE['legacy']}",
    }  # the answers that used it; the one that used nothing is not about it
    assert len(about_data["jobs"]) == 2
    about_output = ok(cli, "list", "--asset", str(MADE["output"]), "--jobs")
    assert [j["job_id"] for j in about_output["jobs"]] == [MADE["job"]]
    assert about_output["answers"] == []
    limited = ok(cli, "list", "--answers", "--limit", "1")
    assert len(limited["answers"]) == 1 and limited["more"] and limited["jobs"] == []
    code, error = fails(cli, "list", "--agent", "nobody")
    assert (code, error["code"]) == (3, "agent.not_found")
    code, error = fails(cli, "list", "--jobs", "--answers")
    assert code == 2


def test_list_for_people(cli: Invoke, chain: Path) -> None:
    result = cli("provenance", "list", env=WIDE)
    assert result.exit_code == 0, result.stderr
    assert "Answers" in result.stdout and "Jobs" in result.stdout
    assert f"legacy:{MADE['legacy']}" in result.stdout and "finalized" in result.stdout


# -- show ------------------------------------------------------------------------------


def test_show_an_answer_with_its_payouts_and_local_record(cli: Invoke, chain: Path) -> None:
    shown = ok(cli, "show", f"answer:{MADE['new_row']['record_id']}")
    assert shown["kind"] == "answer" and shown["job"] is None
    a = shown["answer"]
    assert (a["asset_id"], a["asset_name"], a["recorder"]) == (
        MADE["agent"],
        "helper",
        ALICE.address,
    )
    assert a["tx_hash"] == MADE["new_row"]["tx"]
    # The metered call's price went to the agent's owner and the dataset's contributor.
    assert sum(int(p["amount_wei"]) for p in a["payouts"]) == PRICE
    assert {p["account"] for p in a["payouts"]} == {ALICE.address, CAROL.address}
    assert a["local_agent"] == "helper"
    assert a["local_record"]["digest"] == MADE["new"].digest
    assert a["local_record"]["prompt_hash"] == a["input_hash"]
    # A bare number is an answer too.
    assert ok(cli, "show", str(MADE["new_row"]["record_id"]))["answer"]["ref"] == a["ref"]


def test_show_a_legacy_record_and_a_job(cli: Invoke, chain: Path) -> None:
    old = ok(cli, "show", f"legacy:{MADE['legacy']}")["answer"]
    assert old["recorded_in"] == "Provenance" and old["digest"] == MADE["old"].digest
    assert old["payouts"] == [] and old["local_record"]["answer_hash"] == MADE["old"].answer_hash
    job = ok(cli, "show", f"job:{MADE['job']}")["job"]
    assert job["metrics"] == {"loss": 1.5} and job["name"] == "zebra-tuned"
    assert job["output_asset_id"] == MADE["output"] and job["parent_asset_ids"] == [MADE["data"]]
    assert job["upstream_bps"] == 3_000 and job["bond_sah"] == "0.01"  # the bond it locked
    pending = ok(cli, "show", f"job:{MADE['pending']}")["job"]
    assert pending["status"] == "pending" and pending["output_asset_id"] is None
    assert pending["bond_sah"] == "0.01"
    result = cli("provenance", "show", f"job:{MADE['job']}", env=WIDE)
    assert result.exit_code == 0 and "zebra-tuned" in result.stdout


@pytest.mark.parametrize(
    ("ref", "exit_code", "code"),
    [
        ("answer:999", 3, "provenance.not_found"),
        ("legacy:999", 3, "provenance.not_found"),
        ("job:999", 3, "provenance.not_found"),
        ("job:zero", 2, "usage"),
        ("receipt:1", 2, "usage"),
    ],
)
def test_show_refuses_what_is_not_there(
    cli: Invoke, chain: Path, ref: str, exit_code: int, code: str
) -> None:
    got, error = fails(cli, "show", ref)
    assert (got, error["code"]) == (exit_code, code)


# -- verify ----------------------------------------------------------------------------


def test_verify_recomputes_the_digest_from_the_local_record(cli: Invoke, chain: Path) -> None:
    for ref in (f"answer:{MADE['new_row']['record_id']}", f"legacy:{MADE['legacy']}"):
        done = ok(cli, "verify", ref)
        assert done["verified"] and done["against"] == "the records of agent helper"
        assert {c["name"] for c in done["checks"]} >= {"digest", "asset"}
        assert all(c["ok"] for c in done["checks"])
    names = {
        c["name"] for c in ok(cli, "verify", f"answer:{MADE['new_row']['record_id']}")["checks"]
    }
    assert {"input_hash", "output_hash"} <= names  # the SAP keeps the hashes too
    # An answer no agent of this home kept: nothing to check against, unless given.
    code, error = fails(cli, "verify", f"answer:{MADE['elsewhere']}")
    assert (code, error["code"]) == (3, "provenance.not_found")


def test_a_changed_local_record_fails_verify(cli: Invoke, chain: Path) -> None:
    path = chain / "agents" / "helper" / "records.sqlite"
    digest = MADE["new"].digest
    with sqlite3.connect(path) as db:
        (body,) = db.execute("SELECT body FROM records WHERE digest = ?", (digest,)).fetchone()
        changed = {**json.loads(body), "answer_hash": "0x" + "ab" * 32}
        db.execute("UPDATE records SET body = ? WHERE digest = ?", (json.dumps(changed), digest))
    code, error = fails(cli, "verify", f"answer:{MADE['new_row']['record_id']}")
    assert (code, error["code"]) == (8, "provenance.mismatch")
    failed = {c["name"] for c in error["details"]["checks"] if not c["ok"]}
    assert failed == {"digest", "output_hash"}
    # Its digest rewritten to match the changed body, it is still found (by the chain
    # record it says it is) and still fails.
    with sqlite3.connect(path) as db:
        forged = Record.from_dict({k: v for k, v in changed.items() if k != "digest"}).digest
        body = json.dumps({**changed, "digest": forged})
        db.execute(
            "UPDATE records SET digest = ?, body = ? WHERE digest = ?", (forged, body, digest)
        )
    code, error = fails(cli, "verify", f"answer:{MADE['new_row']['record_id']}")
    assert (code, error["code"]) == (8, "provenance.mismatch")
    failed = {c["name"] for c in error["details"]["checks"] if not c["ok"]}
    assert failed == {"digest", "stored digest", "output_hash"}


def test_verify_a_record_file_a_caller_kept(cli: Invoke, chain: Path, tmp_path: Path) -> None:
    """A caller keeps the record a served answer came with: verify reads it from a file
    (the record, or the whole response), and a changed one fails."""
    ref = f"answer:{MADE['elsewhere']}"
    kept = tmp_path / "answer.json"
    stranger = MADE["stranger"].to_dict()
    done = ok(cli, "verify", ref, "--record", str(_write(kept, stranger)))
    assert done["verified"] and done["against"] == f"file {kept}"
    served = {"choices": [], "sahara": {"record": {**stranger, "tx": "0x" + "00" * 32}}}
    assert ok(cli, "verify", ref, "--record", str(_write(kept, served)))["verified"]
    changed = {**stranger, "answer_hash": "0x" + "cd" * 32}
    del changed["digest"]  # recomputed, it no longer matches the chain's
    code, error = fails(cli, "verify", ref, "--record", str(_write(kept, changed)))
    assert (code, error["code"]) == (8, "provenance.mismatch")
    code, error = fails(cli, "verify", ref, "--record", str(_write(kept, ["not", "a", "record"])))
    assert (code, error["code"]) == (8, "file.unreadable")


def _write(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


def test_verify_a_job_against_the_chain_and_its_job_file(cli: Invoke, chain: Path) -> None:
    ref = f"job:{MADE['job']}"
    done = ok(cli, "verify", ref)
    assert done["against"] == "the chain only (no job of this home)"
    assert {c["name"] for c in done["checks"]} == {
        "metrics",
        "output cid",
        "output commitment",
        "output parents",
    }
    # The record 'compute train' leaves of a job it ran in this home.
    from sahara_cli.compute.jobs import LocalJob, mark

    local = LocalJob(
        key="0123456789ab",
        kind="train",
        name="zebra-tuned",
        base="tiny",
        base_asset=0,
        inputs=[MADE["data"]],
        hparams={},
        hparams_hash="0x" + "11" * 32,
        state="recorded",
        job_id=MADE["job"],
        output_cid="bafy-tuned",
        metrics={"loss": 1.5},
    )
    local.save(chain)
    done = ok(cli, "verify", ref)
    assert done["against"] == "this home's job 0123456789ab" and len(done["checks"]) == 11
    mark(local, chain, output_cid="bafy-something-else")
    code, error = fails(cli, "verify", ref)
    assert (code, error["code"]) == (8, "provenance.mismatch")
    assert [c["name"] for c in error["details"]["checks"] if not c["ok"]] == ["local job cid"]
