"""SaharaApp driven directly with ABCI request messages (no CometBFT): genesis, blocks of
signed transfers, per-transaction results, app hashes, restarts, CheckTx refusals,
proposals and queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sahara_cli.identity.keys import Signer
from sahara_cli.identity.transactions import RLPItem, rlp_encode, sign_eip1559
from sahara_cli.node.abci import app as codes
from sahara_cli.node.abci.app import SaharaApp
from sahara_cli.node.abci.generated.tendermint.abci import types_pb2 as abci
from sahara_cli.node.genesis import DEV_BALANCE, dev_genesis, dev_keys
from sahara_cli.node.state import StateMachine
from sahara_cli.node.store import BlockStore

KEYS = dev_keys()
ADDR = [Signer(k).address for k in KEYS]
CHAIN_ID = 31313
GENESIS_TIME = 1_700_000_000
PROPOSER = bytes(range(20))  # a CometBFT validator address
RECIPIENT = "0x" + "ab" * 20
MAX_FEE = 3 * 10**9
TIP = 2


def transfer(
    i: int,
    nonce: int,
    *,
    value: int = 10**18,
    to: str | None = RECIPIENT,
    chain_id: int = CHAIN_ID,
    gas: int = 21_000,
    data: bytes = b"",
) -> bytes:
    return sign_eip1559(
        KEYS[i],
        chain_id=chain_id,
        nonce=nonce,
        to=to,
        value=value,
        data=data,
        gas=gas,
        max_fee_per_gas=MAX_FEE,
        max_priority_fee_per_gas=TIP,
    ).raw


def unsigned_garbage_signature() -> bytes:
    """A well-formed type-2 transaction whose signature (r = s = 0) recovers nobody."""
    fields: list[RLPItem] = [
        CHAIN_ID,
        0,
        TIP,
        MAX_FEE,
        21_000,
        bytes.fromhex(RECIPIENT[2:]),
        1,
        b"",
        [],
    ]
    return b"\x02" + rlp_encode([*fields, 0, 0, 0])


def open_app(path: Path) -> SaharaApp:
    return SaharaApp(StateMachine(BlockStore(path / "chain")), dev_genesis(validator=ADDR[0]))


def init(app: SaharaApp) -> bytes:
    resp = app.init_chain(
        abci.RequestInitChain(
            time={"seconds": GENESIS_TIME}, chain_id="sahara-test", initial_height=1
        )
    )
    return bytes(resp.app_hash)


def finalize(
    app: SaharaApp, height: int, txs: list[bytes], *, proposer: bytes = PROPOSER
) -> abci.ResponseFinalizeBlock:
    return app.finalize_block(
        abci.RequestFinalizeBlock(
            txs=txs,
            height=height,
            time={"seconds": GENESIS_TIME + 10 * height},
            proposer_address=proposer,
            hash=height.to_bytes(32, "big"),
        )
    )


def query(app: SaharaApp, path: str, data: bytes = b"", height: int = 0) -> abci.ResponseQuery:
    return app.query(abci.RequestQuery(path=path, data=data, height=height))


def balance(app: SaharaApp, address: str, height: int = 0) -> int:
    resp = query(app, "/eth/balance", address.encode(), height)
    assert resp.code == 0, resp.log
    return int(resp.value)


def check(app: SaharaApp, raw: bytes, recheck: bool = False) -> abci.ResponseCheckTx:
    kind = abci.CheckTxType.RECHECK if recheck else abci.CheckTxType.NEW
    return app.check_tx(abci.RequestCheckTx(tx=raw, type=kind))


@pytest.fixture
def app(tmp_path: Path) -> SaharaApp:
    app = open_app(tmp_path)
    init(app)
    return app


def test_genesis_block_commit_info_and_restart(tmp_path: Path) -> None:
    app = open_app(tmp_path)
    before = app.info(abci.RequestInfo())
    assert before.last_block_height == 0 and before.last_block_app_hash == b""
    assert before.app_version == codes.APP_VERSION

    genesis_hash = init(app)
    head = app.machine.head()
    assert head.block_number == 0 and head.timestamp == GENESIS_TIME
    assert genesis_hash == head.state_root and len(genesis_hash) == 32
    assert init(app) == genesis_hash  # written once: a second InitChain changes nothing
    info = app.info(abci.RequestInfo())
    assert (info.last_block_height, info.last_block_app_hash) == (0, genesis_hash)

    tx1, tx2 = transfer(1, 0), transfer(1, 1)
    assert check(app, tx1).code == 0
    assert check(app, tx2).code == 0
    assert app.process_proposal(abci.RequestProcessProposal(txs=[tx1, tx2], height=1)).status == (
        abci.ResponseProcessProposal.ACCEPT
    )
    block = finalize(app, 1, [tx1, tx2])
    assert [r.code for r in block.tx_results] == [0, 0]
    assert [r.gas_used for r in block.tx_results] == [21_000, 21_000]
    assert [r.gas_wanted for r in block.tx_results] == [21_000, 21_000]
    assert block.tx_results[0].events[0].type == "ethereum_tx"
    assert len(block.app_hash) == 32 and block.app_hash != genesis_hash
    # Nothing is visible before Commit.
    assert app.info(abci.RequestInfo()).last_block_height == 0
    assert balance(app, RECIPIENT) == 0

    assert app.commit(abci.RequestCommit()).retain_height == 0
    info = app.info(abci.RequestInfo())
    assert (info.last_block_height, info.last_block_app_hash) == (1, block.app_hash)
    assert balance(app, RECIPIENT) == 2 * 10**18
    assert int(query(app, "/eth/nonce", ADDR[1].encode()).value) == 2
    evm = app.machine.head()
    assert evm.block_number == 1 and evm.timestamp == GENESIS_TIME + 10
    # Fees: the base fee is burnt, the tip goes to the genesis validator (the default).
    assert balance(app, ADDR[0]) == DEV_BALANCE + 2 * 21_000 * TIP
    assert balance(app, ADDR[1]) < DEV_BALANCE - 2 * 10**18
    app.machine.store.close()

    # A restart: a new process on the same chain dir reports the same height and hash,
    # and continues at the next height only.
    again = open_app(tmp_path)
    info = again.info(abci.RequestInfo())
    assert (info.last_block_height, info.last_block_app_hash) == (1, block.app_hash)
    with pytest.raises(ValueError, match="EVM block"):
        finalize(again, 3, [])
    nxt = finalize(again, 2, [transfer(1, 2)])
    assert [r.code for r in nxt.tx_results] == [0]
    again.commit(abci.RequestCommit())
    assert again.info(abci.RequestInfo()).last_block_height == 2
    assert balance(again, RECIPIENT) == 3 * 10**18
    again.machine.store.close()


def test_a_block_finalized_twice_without_commit_is_redone(app: SaharaApp) -> None:
    """CometBFT restarted after FinalizeBlock and before Commit replays the block."""
    first = finalize(app, 1, [transfer(1, 0)])
    second = finalize(app, 1, [transfer(1, 0)])
    assert second.app_hash == first.app_hash
    app.commit(abci.RequestCommit())
    assert app.info(abci.RequestInfo()).last_block_height == 1
    assert balance(app, RECIPIENT) == 10**18


def test_the_same_block_gives_the_same_app_hash_on_another_validator(tmp_path: Path) -> None:
    hashes = []
    for name in ("a", "b"):
        app = open_app(tmp_path / name)
        hashes.append(init(app))
        hashes.append(bytes(finalize(app, 1, [transfer(1, 0), transfer(2, 0)]).app_hash))
        app.commit(abci.RequestCommit())
        app.machine.store.close()
    assert hashes[0] == hashes[2] and hashes[1] == hashes[3]


def test_fee_recipients_map_proposers_to_evm_addresses(tmp_path: Path) -> None:
    payee = "0x" + "cd" * 20
    app = SaharaApp(
        StateMachine(BlockStore(tmp_path / "chain")),
        dev_genesis(validator=ADDR[0]),
        fee_recipients={PROPOSER: bytes.fromhex(payee[2:])},
    )
    init(app)
    finalize(app, 1, [transfer(1, 0)])
    app.commit(abci.RequestCommit())
    assert balance(app, payee) == 21_000 * TIP
    assert balance(app, ADDR[0]) == DEV_BALANCE
    finalize(app, 2, [transfer(1, 1)], proposer=b"\xee" * 20)  # not in the map
    app.commit(abci.RequestCommit())
    assert balance(app, ADDR[0]) == DEV_BALANCE + 21_000 * TIP


def test_check_tx_refusals_have_codes_and_clear_logs(app: SaharaApp) -> None:
    cases = [
        (b"not a transaction", codes.CODE_ENCODING, "invalid transaction"),
        (b"\x02" + b"\xff" * 200_000, codes.CODE_ENCODING, "oversized data"),
        (unsigned_garbage_signature(), codes.CODE_BAD_SIGNATURE, "invalid sender"),
        (transfer(1, 0, chain_id=1), codes.CODE_WRONG_CHAIN_ID, "invalid chain id"),
        (transfer(1, 5), codes.CODE_NONCE_TOO_HIGH, "nonce too high"),
        (transfer(1, 0, value=DEV_BALANCE), codes.CODE_INSUFFICIENT_FUNDS, "insufficient funds"),
        (transfer(1, 0, gas=20_000), codes.CODE_INVALID, "intrinsic gas too low"),
    ]
    for raw, code, text in cases:
        resp = check(app, raw)
        assert resp.code == code, (text, resp)
        assert resp.log.startswith(text), resp.log
        assert resp.codespace == "sahara"

    ok = check(app, transfer(1, 0))
    assert ok.code == 0 and ok.gas_wanted == 21_000 and len(ok.data) == 32
    # The sender's mempool transactions count: the same nonce again, a gap, the balance.
    dup = check(app, transfer(1, 0, value=2))
    assert dup.code == codes.CODE_NONCE_TOO_LOW and "already in the mempool" in dup.log
    assert check(app, transfer(1, 2)).code == codes.CODE_NONCE_TOO_HIGH
    nearly_all = DEV_BALANCE - 10**18 - 21_000 * MAX_FEE  # the first one's cost is spoken for
    over = check(app, transfer(1, 1, value=nearly_all))
    assert over.code == codes.CODE_INSUFFICIENT_FUNDS and "in the mempool" in over.log
    assert check(app, transfer(1, 1)).code == 0

    # The block takes nonce 0 only; after Commit the mempool is rechecked in order.
    finalize(app, 1, [transfer(1, 0)])
    app.commit(abci.RequestCommit())
    stale = check(app, transfer(1, 0), recheck=True)
    assert stale.code == codes.CODE_NONCE_TOO_LOW and stale.log.startswith("nonce too low")
    assert check(app, transfer(1, 1), recheck=True).code == 0
    assert check(app, transfer(1, 2)).code == 0


def test_prepare_proposal_keeps_order_drops_failures_and_respects_max_bytes(
    app: SaharaApp,
) -> None:
    a0, a1, b0 = transfer(1, 0), transfer(1, 1), transfer(2, 0)
    garbage, gap = b"garbage", transfer(3, 7)
    resp = app.prepare_proposal(
        abci.RequestPrepareProposal(
            txs=[a0, garbage, gap, b0, a1, a1], max_tx_bytes=1 << 20, height=1
        )
    )
    assert list(resp.txs) == [a0, b0, a1]  # the repeated a1 has a used nonce by then
    # Each transaction takes its length plus a tag and a length prefix in the block.
    size = len(a0) + 2
    resp = app.prepare_proposal(
        abci.RequestPrepareProposal(txs=[a0, b0], max_tx_bytes=size + 10, height=1)
    )
    assert list(resp.txs) == [a0]
    resp = app.prepare_proposal(
        abci.RequestPrepareProposal(txs=[a0, b0], max_tx_bytes=size - 1, height=1)
    )
    assert list(resp.txs) == []


def test_process_proposal_rejects_undecodable_transactions(app: SaharaApp) -> None:
    good = transfer(1, 0)
    reject = abci.ResponseProcessProposal.REJECT
    for txs in ([good, b"\x02garbage"], [b""], [b"\xff" * 64]):
        resp = app.process_proposal(abci.RequestProcessProposal(txs=txs, height=1))
        assert resp.status == reject, txs
    empty = app.process_proposal(abci.RequestProcessProposal(txs=[], height=1))
    assert empty.status == abci.ResponseProcessProposal.ACCEPT


def test_finalize_block_reports_each_transaction(app: SaharaApp) -> None:
    reverting = transfer(2, 0, to=None, value=0, gas=100_000, data=bytes.fromhex("60006000fd"))
    txs = [
        transfer(1, 0),  # ok
        b"garbage",  # undecodable (a byzantine proposer)
        transfer(1, 1, chain_id=1),  # wrong chain
        unsigned_garbage_signature(),
        transfer(1, 5),  # nonce gap: the EVM leaves it out
        reverting,  # included, nonce used, gas paid, status 0
        transfer(2, 1),  # the sender's next nonce: fine
    ]
    block = finalize(app, 1, txs)
    got = [(r.code, r.log.split(":")[0]) for r in block.tx_results]
    assert got == [
        (0, ""),
        (codes.CODE_ENCODING, "invalid transaction"),
        (codes.CODE_WRONG_CHAIN_ID, "invalid chain id for signer"),
        (codes.CODE_BAD_SIGNATURE, "invalid sender"),
        (codes.CODE_NONCE_TOO_HIGH, "nonce too high"),
        (codes.CODE_REVERTED, "execution reverted"),
        (0, ""),
    ]
    assert "Expected 1, but got 5" in block.tx_results[4].log
    results = block.tx_results
    assert results[0].gas_used == 21_000 and results[6].gas_used == 21_000
    assert 53_000 < results[5].gas_used <= 100_000
    assert [r.gas_used for r in results[1:5]] == [0, 0, 0, 0]
    app.commit(abci.RequestCommit())
    view = app.machine.view()
    assert len(view.transactions(view.head())) == 3
    assert int(query(app, "/eth/nonce", ADDR[2].encode()).value) == 2


def test_queries(app: SaharaApp) -> None:
    finalize(app, 1, [transfer(1, 0)])
    app.commit(abci.RequestCommit())
    raw_address = bytes.fromhex(RECIPIENT[2:])
    resp = query(app, "/eth/balance", raw_address)
    assert (resp.code, resp.value, resp.height, resp.key) == (
        0,
        b"1000000000000000000",
        1,
        raw_address,
    )
    assert query(app, "/eth/height").value == b"1"
    block = json.loads(query(app, "/eth/block").value)
    head = app.machine.head()
    assert block["number"] == 1 and block["stateRoot"] == "0x" + head.state_root.hex()
    assert block["coinbase"] == ADDR[0].lower()
    assert block["hash"] == "0x" + head.hash.hex()
    assert json.loads(query(app, "/eth/block", height=1).value) == block  # height 0: the last
    for path, data, height, text in [
        ("/eth/balance", b"0x1234", 0, "data must be an address"),
        ("/eth/nonce", b"0x" + b"zz" * 20, 0, "data must be an address"),
        ("/eth/balance", raw_address, 9, "no block 9"),
        ("/eth/storage", raw_address, 0, "unknown query path"),
    ]:
        resp = query(app, path, data, height)
        assert resp.code == codes.CODE_NOT_FOUND and resp.log.startswith(text), resp


def test_init_chain_takes_the_genesis_from_app_state(tmp_path: Path) -> None:
    genesis = dev_genesis(chain_id=4242, validator=ADDR[3])
    genesis.timestamp = 1_600_000_000
    app = SaharaApp(StateMachine(BlockStore(tmp_path / "chain")))  # no default genesis
    with pytest.raises(ValueError, match="no Sahara genesis"):
        app.init_chain(abci.RequestInitChain(time={"seconds": GENESIS_TIME}))
    with pytest.raises(ValueError, match="initial_height"):
        app.init_chain(abci.RequestInitChain(initial_height=5))
    resp = app.init_chain(
        abci.RequestInitChain(
            time={"seconds": GENESIS_TIME}, app_state_bytes=genesis.to_json().encode()
        )
    )
    assert app.machine.chain_id == 4242
    assert app.machine.head().timestamp == 1_600_000_000
    assert resp.app_hash == app.machine.head().state_root
    assert check(app, transfer(1, 0)).code == codes.CODE_WRONG_CHAIN_ID
    assert check(app, transfer(1, 0, chain_id=4242)).code == 0
