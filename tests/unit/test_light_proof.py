"""verify_account against real eth_getProof answers of a dev node: an honest answer is
proven, and every kind of lie (balance, nonce, storage value, a proof node, the address,
a missing slot) is refused with light.proof_invalid."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from sahara_cli.errors import LightProofInvalid
from sahara_cli.identity.keys import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.node.genesis import dev_keys
from sahara_cli.node.light_proof import TrustRoot, VerifiedHeader, verify_account
from sahara_cli.node.rpc.testing import dev_node

FUNDED = Signer(dev_keys()[1]).address
#: A contract whose runtime stores 0x2a at slot 0 (SSTORE at deploy, via its constructor).
INIT = bytes.fromhex("602a60005560018060106000396000f300")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeClient, str]]:
    with dev_node(tmp_path_factory.mktemp("light")) as (_, server):
        client = NodeClient(server.url)
        tx = client.call("eth_sendTransaction", {"from": FUNDED, "data": "0x" + INIT.hex()})
        contract = client.wait_for_receipt(tx)["contractAddress"]
        yield client, contract
        client.close()


def header_of(client: NodeClient, number: int) -> VerifiedHeader:
    block = client.call("eth_getBlockByNumber", hex(number), False)
    return VerifiedHeader(
        height=number + 1,
        hash="AB" * 32,
        app_hash=bytes.fromhex(block["stateRoot"][2:]),
        time="2026-12-07T00:00:00Z",
        chain_id="sahara-test",
        validators_hash="CD" * 32,
    )


def proof_of(client: NodeClient, address: str, slots: list[int], number: int) -> Any:
    return client.call("eth_getProof", address, [hex(s) for s in slots], hex(number))


def test_an_honest_answer_is_proven(chain: tuple[NodeClient, str]) -> None:
    client, contract = chain
    number = client.block_number()
    header = header_of(client, number)
    account = verify_account(
        bytes.fromhex(FUNDED[2:]), proof_of(client, FUNDED, [], number), header
    )
    assert account.balance == client.balance(FUNDED, hex(number)) and account.nonce == 1
    stored = verify_account(
        bytes.fromhex(contract[2:]), proof_of(client, contract, [0, 1], number), header, [0, 1]
    )
    assert stored.storage == {0: 0x2A, 1: 0} and stored.nonce == 1
    doc = stored.result(TrustRoot(1, "EF" * 32, "--trust-hash")).model_dump(mode="json")
    assert doc["storage"] == {"0x0": "0x2a", "0x1": "0x0"}
    assert doc["header"]["state_root_of_block"] == number and doc["verified"] is True
    nobody = "0x" + "77" * 20
    empty = verify_account(bytes.fromhex(nobody[2:]), proof_of(client, nobody, [], number), header)
    assert empty.balance == 0 and empty.nonce == 0  # a proof of absence


def lie_balance(proof: dict[str, Any]) -> None:
    proof["balance"] = hex(int(proof["balance"], 16) + 1)


def lie_nonce(proof: dict[str, Any]) -> None:
    proof["nonce"] = "0x5"


def lie_storage(proof: dict[str, Any]) -> None:
    proof["storageProof"][0]["value"] = "0x2b"


def lie_node(proof: dict[str, Any]) -> None:
    last = proof["accountProof"][-1]
    proof["accountProof"][-1] = last[:-2] + ("00" if last[-2:] != "00" else "11")


def lie_address(proof: dict[str, Any]) -> None:
    proof["address"] = FUNDED


def drop_slot(proof: dict[str, Any]) -> None:
    proof["storageProof"] = []


@pytest.mark.parametrize(
    "lie", [lie_balance, lie_nonce, lie_storage, lie_node, lie_address, drop_slot]
)
def test_every_lie_is_refused(chain: tuple[NodeClient, str], lie: Any) -> None:
    client, contract = chain
    number = client.block_number()
    honest = proof_of(client, contract, [0], number)
    forged = copy.deepcopy(honest)
    lie(forged)
    with pytest.raises(LightProofInvalid) as caught:
        verify_account(bytes.fromhex(contract[2:]), forged, header_of(client, number), [0])
    assert caught.value.code == "light.proof_invalid"


def test_a_proof_against_another_state_root_is_refused(chain: tuple[NodeClient, str]) -> None:
    client, _ = chain
    number = client.block_number()
    stale = header_of(client, 0)  # genesis: the sender had sent nothing yet
    with pytest.raises(LightProofInvalid):
        verify_account(bytes.fromhex(FUNDED[2:]), proof_of(client, FUNDED, [], number), stale)


def test_header_result_is_a_light_header() -> None:
    header = VerifiedHeader(5, "AB" * 32, b"\1" * 32, "2026-12-07T00:00:00Z", "c", "CD" * 32)
    doc = header.result().model_dump(mode="json")
    assert doc["hash"] == "0x" + "ab" * 32 and doc["app_hash"] == "0x" + "01" * 32
    assert doc["produced_at"] == "2026-12-07T00:00:00Z" and doc["state_root_of_block"] == 4
