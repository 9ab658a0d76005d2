"""The SAPs on a real dev node: training jobs and inference records, through web-style
transactions and eth_call, with their licence checks, bonds, windows and payouts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from eth_abi.abi import encode

from sahara_cli.errors import NodeRPCError, ProtocolError
from sahara_cli.identity.keys import Signer, keccak256
from sahara_cli.node.saps import training
from sahara_cli.protocol.artifacts import sap_addresses
from tests.unit.chain_fixtures import SAH, Chain

pytest_plugins = ("tests.unit.chain_fixtures",)

BOND = SAH // 100
HPARAMS = b"\x11" * 32
COMMIT = b"\x22" * 32


def submit(chain: Chain, signer: Signer, inputs: list[int], **kw: object) -> int:
    args: dict[str, object] = {
        "kind": "train",
        "base": 0,
        "inputs": inputs,
        "weights_bps": [],
        "hparams": HPARAMS,
        "cid": f"bafy-out-{len(inputs)}-{kw.get('tag', '')}",
        "commitment": COMMIT,
        "name": "tuned",
        "uri": "http://127.0.0.1:8788",
        "metrics": '{"loss": 1.5}',
        "upstream_bps": 3_000,
        "bond_wei": BOND,
    }
    args.update({k: v for k, v in kw.items() if k != "tag"})
    job, _ = chain.proto.training.submit(signer, **args)  # type: ignore[arg-type]
    return job


def past_window(chain: Chain, job: int) -> None:
    """Mine a block at the end of the job's challenge window."""
    chain.client.call("sahara_dev_mine", 1, chain.proto.training.get_job(job).finalize_after)


def test_the_saps_sit_at_their_manifest_addresses() -> None:
    from sahara_cli.node.saps import ADDRESSES

    for name, address in ADDRESSES.items():
        assert "0x" + address.hex() == sap_addresses()[name].lower()


def test_a_dev_chain_has_the_sap_parameters(chain: Chain) -> None:
    assert chain.proto.training.parameters() == (BOND, training.DEV_CHALLENGE_WINDOW)
    assert chain.proto.training.job_count() == 0
    assert chain.proto.inference.record_count() == 0


def test_the_owner_of_a_dataset_trains_on_it_and_the_job_finalises(chain: Chain) -> None:
    t = chain.proto.training
    before = chain.client.call("eth_getBalance", chain.owner.address, "latest")
    job = submit(chain, chain.owner, [chain.asset])
    record = t.get_job(job)
    assert (record.status, record.kind, record.inputs, record.bond_wei) == (
        "pending",
        "train",
        [chain.asset],
        BOND,
    )
    assert record.submitter.lower() == chain.owner.address.lower()
    assert t.submitted_metrics(job) == '{"loss": 1.5}'
    with pytest.raises(ProtocolError, match="open to challenges"):
        t.finalize(chain.buyer, job)
    past_window(chain, job)
    # Anyone finalises; the output is the submitter's, derived from the dataset.
    asset, _ = t.finalize(chain.buyer, job)
    got = chain.proto.asset(asset)
    assert got.owner.lower() == chain.owner.address.lower()
    assert got.parents == [chain.asset]
    assert got.uri == "http://127.0.0.1:8788"
    assert t.get_job(job).status == "finalized" and t.get_job(job).asset == asset
    # The bond came back: the owner paid only gas.
    after = int(chain.client.call("eth_getBalance", chain.owner.address, "latest"), 16)
    spent = int(before, 16) - after
    assert 0 < spent < BOND
    assert (
        int(chain.client.call("eth_getBalance", sap_addresses()["TrainingRecord"], "latest"), 16)
        == 0
    )
    with pytest.raises(ProtocolError, match="not pending"):
        t.finalize(chain.buyer, job)


@pytest.mark.parametrize(
    ("kind", "price", "duration", "allowed"),
    [
        ("api", SAH // 1000, 0, False),
        ("full", SAH // 10, 0, True),
        ("long-term", SAH // 10, 86_400, True),
    ],
)
def test_only_a_licence_that_opens_the_data_allows_training(
    chain: Chain, kind: str, price: int, duration: int, allowed: bool
) -> None:
    with pytest.raises(ProtocolError, match="not licensed to the submitter for training"):
        submit(chain, chain.buyer, [chain.asset])
    offer, _ = chain.proto.offer(chain.owner, chain.asset, kind, price=price, duration=duration)
    chain.proto.buy(chain.buyer, offer, 3 if kind == "api" else 0)
    if allowed:
        assert chain.proto.training.get_job(submit(chain, chain.buyer, [chain.asset])).inputs == [
            chain.asset
        ]
    else:
        with pytest.raises(ProtocolError, match="not licensed to the submitter for training"):
            submit(chain, chain.buyer, [chain.asset])


def test_an_expired_licence_no_longer_allows_training(chain: Chain) -> None:
    offer, _ = chain.proto.offer(
        chain.owner, chain.asset, "long-term", price=SAH // 10, duration=100
    )
    chain.proto.buy(chain.buyer, offer)
    expiry = chain.proto.access_until(chain.asset, chain.buyer.address, "long-term")
    chain.client.call("sahara_dev_mine", 1, expiry + 1)
    with pytest.raises(ProtocolError, match="not licensed to the submitter for training"):
        submit(chain, chain.buyer, [chain.asset])


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"bond_wei": BOND - 1}, "bond too small"),
        ({"inputs": []}, "at least one input"),
        ({"inputs": [999]}, "unknown asset 999"),
        ({"weights_bps": [5_000]}, "weights: one per input"),
        ({"upstream_bps": 10_001}, "upstream share is over"),
        ({"cid": ""}, "output CID is empty"),
        ({"name": ""}, "output name is empty"),
    ],
)
def test_bad_jobs_are_refused_and_keep_no_bond(
    chain: Chain, overrides: dict[str, object], reason: str
) -> None:
    inputs = overrides.pop("inputs", [chain.asset])
    with pytest.raises(ProtocolError, match=reason):
        submit(chain, chain.owner, inputs, **overrides)  # type: ignore[arg-type]
    assert chain.proto.training.job_count() == 0


def test_a_submitter_cancels_its_pending_job_and_gets_the_bond_back(chain: Chain) -> None:
    t = chain.proto.training
    job = submit(chain, chain.owner, [chain.asset], tag="c")
    with pytest.raises(ProtocolError, match="only the job's submitter"):
        t.cancel(chain.buyer, job)
    t.cancel(chain.owner, job)
    assert t.get_job(job).status == "cancelled"
    assert (
        int(chain.client.call("eth_getBalance", sap_addresses()["TrainingRecord"], "latest"), 16)
        == 0
    )
    past_window(chain, job)
    with pytest.raises(ProtocolError, match="not pending"):
        t.finalize(chain.owner, job)
    # The output CID is free again for a new job.
    assert submit(chain, chain.owner, [chain.asset], tag="c") == job + 1


def test_a_trained_model_pays_its_datasets_by_the_job_weights(chain: Chain) -> None:
    second, _ = chain.proto.register(
        chain.partner, kind="dataset", cid="bafy-second", commitment=b"\3" * 32, name="snow"
    )
    offer, _ = chain.proto.offer(chain.partner, second, "full", price=SAH // 10)
    chain.proto.buy(chain.owner, offer)
    job = submit(
        chain, chain.owner, [chain.asset, second], weights_bps=[7_500, 2_500], upstream_bps=4_000
    )
    past_window(chain, job)
    model, _ = chain.proto.training.finalize(chain.buyer, job)
    before_partner = chain.proto.attribution.claimable(chain.partner.address)
    chain.proto.attribution.pay(chain.buyer, model, 10_001)
    # 4000 upstream: 3000 to the owner's dataset, 1000 to the partner's; 6001 stay.
    assert chain.proto.attribution.claimable(chain.partner.address) - before_partner == 1_000


def test_inference_records_meter_api_calls_for_the_meter(chain: Chain) -> None:
    i = chain.proto.inference
    offer, _ = chain.proto.offer(chain.owner, chain.asset, "api", price=1_000)
    licence, _ = chain.proto.buy(chain.buyer, offer, 5)
    # Only the asset's meter (its owner here) may meter calls.
    with pytest.raises(ProtocolError, match="only the asset's meter"):
        i.record(chain.buyer, chain.asset, b"\5" * 32, license_id=licence, calls=2)
    before = chain.proto.attribution.claimable(chain.owner.address)
    rid, _ = i.record(
        chain.owner,
        chain.asset,
        b"\5" * 32,
        input_hash=b"\6" * 32,
        output_hash=b"\7" * 32,
        license_id=licence,
        calls=2,
    )
    record = i.get_record(rid)
    assert (record.asset, record.license, record.calls, record.fee_wei) == (
        chain.asset,
        licence,
        2,
        2_000,
    )
    assert record.input_hash == "0x" + "06" * 32
    assert chain.proto.attribution.claimable(chain.owner.address) - before == 2_000
    assert chain.proto.get_license(licence).calls == 3
    # A plain record (no licence) meters nothing; calls without a licence are refused.
    plain, _ = i.record(chain.buyer, chain.asset, b"\x08" * 32)
    assert i.get_record(plain).fee_wei == 0
    with pytest.raises(ProtocolError, match="need an API license"):
        i.record(chain.owner, chain.asset, b"\x09" * 32, calls=1)
    other, _ = chain.proto.register(
        chain.owner, kind="model", cid="bafy-other", commitment=b"\3" * 32, name="other"
    )
    for calls in (0, 1):  # a license of one asset never records or meters another's answer
        with pytest.raises(ProtocolError, match="the license is for another asset"):
            i.record(chain.owner, other, b"\x0b" * 32, license_id=licence, calls=calls)
    with pytest.raises(ProtocolError, match="digest is empty"):
        i.record(chain.owner, chain.asset, b"\0" * 32)


def test_the_saps_answer_eth_call_and_refuse_bad_calls(chain: Chain) -> None:
    address = sap_addresses()["TrainingRecord"]
    # Unknown selector: a revert with a reason, like a contract's.
    with pytest.raises(NodeRPCError, match="no such method"):
        chain.client.call("eth_call", {"to": address, "data": "0xdeadbeef"}, "latest")
    # eth_call runs a write's checks too: a submission without a bond is refused.
    submit_data = chain.proto.training.encode(
        "submit", 0, 0, [chain.asset], [], HPARAMS, "bafy-x", COMMIT, "n", "", "", 0
    )
    with pytest.raises(NodeRPCError, match="bond too small"):
        chain.client.call(
            "eth_call",
            {"to": address, "data": "0x" + submit_data.hex(), "from": chain.owner.address},
            "latest",
        )


CALLER = """\
# pragma version ~=0.4.3
TRAINING: constant(address) = 0x5a4a000000000000000000000000000000000100
INFERENCE: constant(address) = 0x5A4A000000000000000000000000000000000101

interface Training:
    def parameters() -> (uint256, uint256): view
interface Inference:
    def record(
        asset: uint256, digest: bytes32, input_hash: bytes32, output_hash: bytes32,
        sources: DynArray[uint256, 4], license_id: uint256, calls: uint256
    ) -> uint256: nonpayable

@external
@view
def window() -> uint256:
    bond: uint256 = 0
    window: uint256 = 0
    bond, window = staticcall Training(TRAINING).parameters()
    return window

@external
def note(asset: uint256, digest: bytes32) -> uint256:
    return extcall Inference(INFERENCE).record(
        asset, digest, empty(bytes32), empty(bytes32), [], 0, 0
    )
"""


def test_a_contract_calls_the_saps(chain: Chain, tmp_path: Path) -> None:
    source = tmp_path / "Caller.vy"
    source.write_text(CALLER)
    done = subprocess.run(
        [sys.executable, "-m", "vyper", "-f", "bytecode", str(source)],
        capture_output=True,
        text=True,
        check=True,
    )
    deploy = chain.client.call(
        "eth_sendTransaction",
        {"from": chain.owner.address, "data": done.stdout.strip(), "gas": hex(2_000_000)},
    )
    contract = chain.client.wait_for_receipt(deploy)["contractAddress"]
    selector = keccak256(b"window()")[:4]
    out = chain.client.call("eth_call", {"to": contract, "data": "0x" + selector.hex()}, "latest")
    assert int(out, 16) == training.DEV_CHALLENGE_WINDOW
    # A contract records an answer: the contract is the record's recorder.
    data = keccak256(b"note(uint256,bytes32)")[:4] + encode(
        ["uint256", "bytes32"], [chain.asset, b"\x0a" * 32]
    )
    tx = chain.client.call(
        "eth_sendTransaction",
        {
            "from": chain.owner.address,
            "to": contract,
            "data": "0x" + data.hex(),
            "gas": hex(500_000),
        },
    )
    assert int(chain.client.wait_for_receipt(tx)["status"], 16) == 1
    record = chain.proto.inference.get_record(chain.proto.inference.record_count())
    assert record.recorder.lower() == contract.lower()
    assert record.digest == "0x" + "0a" * 32
