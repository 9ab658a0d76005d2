"""The state machine and its LMDB store: checks, blocks, atomic commits, restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from sahara_cli.errors import NonceTooLow, SaharaError, TxInvalid
from sahara_cli.identity.keys import Signer
from sahara_cli.node.genesis import DEV_BALANCE, Genesis, dev_genesis, dev_keys
from sahara_cli.node.state import StateMachine
from sahara_cli.node.store import BlockStore

KEYS = dev_keys()
ADDR = [Signer(k).address for k in KEYS]
CHAIN_ID = 31313


def transfer(
    i: int, nonce: int, *, value: int = 1, chain_id: int = CHAIN_ID, **over: object
) -> bytes:
    tx = {
        "type": 2,
        "chainId": chain_id,
        "nonce": nonce,
        "to": ADDR[(i + 1) % 10],
        "value": value,
        "gas": 21_000,
        "maxFeePerGas": 3 * 10**9,
        "maxPriorityFeePerGas": 1,
        **over,
    }
    return bytes(Account.sign_transaction(tx, KEYS[i]).raw_transaction)


def open_machine(path: Path) -> StateMachine:
    machine = StateMachine(BlockStore(path / "chain"))
    if machine.genesis is None:
        machine.init_chain(dev_genesis(validator=ADDR[0]))
    return machine


@pytest.fixture
def machine(tmp_path: Path) -> StateMachine:
    return open_machine(tmp_path)


def balance(machine: StateMachine, address: str) -> int:
    view = machine.view()
    return int(view.state_at(view.head()).get_balance(bytes.fromhex(address[2:])))


def test_genesis_funds_the_dev_accounts_and_is_written_once(
    machine: StateMachine, tmp_path: Path
) -> None:
    info = machine.info()
    assert info.chain_id == CHAIN_ID and info.height == 0
    assert all(balance(machine, a) == DEV_BALANCE for a in ADDR)
    again = machine.init_chain(Genesis(chain_id=5))  # an existing chain wins
    assert again == info.app_hash
    machine.store.close()
    reopened = open_machine(tmp_path)
    assert reopened.info() == info


def test_a_block_executes_transfers_and_survives_a_restart(
    machine: StateMachine, tmp_path: Path
) -> None:
    txs = [machine.check_tx(transfer(1, n, value=10)).tx for n in range(3)]
    result = machine.finalize_block(txs)
    assert [r.included for r in result.results] == [True, True, True]
    root = machine.commit()
    header = machine.head()
    assert header.block_number == 1 and header.state_root == root
    fee_each = 21_000 * result.header.base_fee_per_gas + 21_000 * 1
    assert balance(machine, ADDR[1]) == DEV_BALANCE - 3 * (10 + fee_each)
    machine.store.close()
    reopened = open_machine(tmp_path)
    assert reopened.head().hash == header.hash
    assert balance(reopened, ADDR[2]) == DEV_BALANCE + 30
    view = reopened.view()
    assert view.tx_location(txs[2].hash) == (1, 2)
    assert [r.state_root for r in view.receipts(view.head())] == [b"\x01"] * 3  # status: success


def test_an_uncommitted_block_is_gone_after_a_crash(machine: StateMachine, tmp_path: Path) -> None:
    tx = machine.check_tx(transfer(2, 0)).tx
    machine.finalize_block([tx])  # executed, persisted to the overlay, not committed
    assert machine.head().block_number == 0  # readers never see it
    machine.store.close()  # the process "dies" here
    reopened = open_machine(tmp_path)
    assert reopened.head().block_number == 0
    assert reopened.view().tx_location(tx.hash) is None


def test_invalid_transactions_are_left_out_of_the_block_with_a_reason(
    machine: StateMachine,
) -> None:
    good = machine.check_tx(transfer(3, 0)).tx
    gap = machine.check_tx(transfer(3, 5)).tx  # nonce 5 while the account is at 1 after `good`
    result = machine.finalize_block([good, gap])
    assert [r.included for r in result.results] == [True, False]
    assert result.results[1].error
    machine.commit()
    assert len(machine.view().transactions(machine.head())) == 1


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (lambda: transfer(4, 0, chain_id=1), "invalid chain id"),
        (lambda: transfer(4, 0, gas=20_000), "intrinsic gas too low"),
        (lambda: transfer(4, 0, value=DEV_BALANCE), "insufficient funds for gas * price + value"),
        (
            lambda: transfer(4, 0, maxFeePerGas=10, maxPriorityFeePerGas=1),
            "max fee per gas less than block base fee",
        ),
        (lambda: transfer(4, 0, gas=10**9), "exceeds block gas limit"),
        (lambda: b"\x02\xc0", "invalid transaction"),
        (lambda: b"\x01" * 200_000, "oversized data"),
    ],
)
def test_check_tx_rejects_with_the_texts_clients_expect(
    machine: StateMachine, raw, text: str
) -> None:
    with pytest.raises(SaharaError) as info:
        machine.check_tx(raw())
    assert info.value.message.startswith(text)


def test_nonce_too_low_after_a_block(machine: StateMachine) -> None:
    machine.finalize_block([machine.check_tx(transfer(5, 0)).tx])
    machine.commit()
    with pytest.raises(NonceTooLow, match=r"^nonce too low"):
        machine.check_tx(transfer(5, 0))


def test_a_bad_signature_is_rejected(machine: StateMachine) -> None:
    raw = bytearray(transfer(6, 0))
    raw[-5] ^= 0xFF  # another s: it recovers to some other, unfunded, account
    with pytest.raises(SaharaError, match=r"insufficient funds|invalid sender"):
        machine.check_tx(bytes(raw))
    zero_s = transfer(6, 0)[:-32] + bytes(32)  # s zeroed: not even canonical RLP
    with pytest.raises(TxInvalid):
        machine.check_tx(zero_s)


def test_revert_to_forgets_later_blocks_and_their_txs(machine: StateMachine) -> None:
    tx = machine.check_tx(transfer(7, 0)).tx
    machine.finalize_block([tx])
    machine.commit()
    assert machine.view().tx_location(tx.hash) == (1, 0)
    machine.revert_to(0)
    assert machine.head().block_number == 0
    assert machine.view().tx_location(tx.hash) is None
    assert balance(machine, ADDR[7]) == DEV_BALANCE
    # The chain goes on from block 0 again.
    machine.finalize_block([machine.check_tx(transfer(7, 0, value=5)).tx])
    machine.commit()
    assert machine.head().block_number == 1


def test_blocks_are_signed_by_the_validator(tmp_path: Path) -> None:
    from sahara_cli.identity.keys import recover_hash, sign_hash

    machine = StateMachine(
        BlockStore(tmp_path / "chain"), sign_block=lambda h: sign_hash(KEYS[0], h)
    )
    machine.init_chain(dev_genesis(validator=ADDR[0]))
    block = machine.finalize_block([]).block
    assert block is not None
    machine.commit()
    signature = machine.block_signature(block.hash)
    assert signature is not None
    assert recover_hash(block.hash, signature) == ADDR[0]
    assert block.header.coinbase == bytes.fromhex(ADDR[0][2:])


def test_timestamps_strictly_increase_even_within_one_second(machine: StateMachine) -> None:
    stamps = []
    for _ in range(5):
        stamps.append(machine.finalize_block([]).header.timestamp)
        machine.commit()
    assert stamps == sorted(set(stamps))


def test_a_damaged_database_is_a_clear_error(tmp_path: Path) -> None:
    from sahara_cli.errors import ChainStoreError

    chain = tmp_path / "chain"
    chain.mkdir()
    (chain / "data.mdb").write_bytes(b"not an lmdb file" * 100)
    with pytest.raises(ChainStoreError, match="damaged or not an LMDB database") as info:
        BlockStore(chain)
    assert "node reset" in (info.value.hint or "")
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(ChainStoreError, match="cannot use"):
        BlockStore(blocked)
