"""The node drivers behind one interface: :class:`NodeAPIConformance` runs the same tests
on the solo node and on a CometBFT validator's application (its CometBFT played by a
small in-process stand-in that runs CheckTx and commits blocks through ABCI), then the
same JSON-RPC requests on both through the RPC layer, which knows only ``NodeAPI``."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sahara_cli.errors import CometBFTError, NonceTooLow, TxInvalid
from sahara_cli.identity.keys import Signer
from sahara_cli.identity.transactions import sign_eip1559
from sahara_cli.node.abc import DevNodeAPI, NodeAPI
from sahara_cli.node.abci.app import SaharaApp
from sahara_cli.node.abci.generated.tendermint.abci import types_pb2 as abci
from sahara_cli.node.abci.rpc import AppNode
from sahara_cli.node.client import NodeClient
from sahara_cli.node.genesis import dev_genesis, dev_keys
from sahara_cli.node.producer import Node, NodeConfig
from sahara_cli.node.rpc.local import LocalTransport
from sahara_cli.node.state import BlockResult, StateMachine
from sahara_cli.node.store import BlockStore

KEYS = dev_keys()
SENDER = Signer(KEYS[1])
RECIPIENT = "0x" + "ab" * 20
VALIDATOR = Signer(KEYS[0])


def transfer(nonce: int, chain_id: int, value: int = 10**15) -> bytes:
    return sign_eip1559(
        KEYS[1],
        chain_id=chain_id,
        nonce=nonce,
        to=RECIPIENT,
        value=value,
        data=b"",
        gas=21_000,
        max_fee_per_gas=5 * 10**9,
        max_priority_fee_per_gas=2,
    ).raw


class StandInComet:
    """What AppNode asks of CometBFT: broadcast_tx_sync runs CheckTx; the mempool holds
    what passed until :meth:`commit_block` finalizes and commits it."""

    def __init__(self, app: SaharaApp) -> None:
        self.app = app
        self.pool: list[bytes] = []
        self.height = 0

    def call(self, method: str, **params: Any) -> Any:
        if method == "broadcast_tx_sync":
            raw = base64.b64decode(params["tx"])
            if raw in self.pool:
                raise CometBFTError("tx already exists in cache")
            resp = self.app.check_tx(abci.RequestCheckTx(tx=raw, type=abci.CheckTxType.NEW))
            if resp.code == 0:
                self.pool.append(raw)
            return {"code": resp.code, "log": resp.log}
        if method == "num_unconfirmed_txs":
            return {"n_txs": str(len(self.pool))}
        if method == "unconfirmed_txs":
            return {"txs": [base64.b64encode(raw).decode() for raw in self.pool]}
        raise AssertionError(f"unexpected CometBFT call {method}")

    def commit_block(self) -> None:
        self.height += 1
        txs, self.pool = self.pool, []
        self.app.finalize_block(
            abci.RequestFinalizeBlock(
                txs=txs,
                height=self.height,
                time={"seconds": 1_700_000_000 + 10 * self.height},
                proposer_address=bytes(20),
                hash=self.height.to_bytes(32, "big"),
            )
        )
        self.app.commit(abci.RequestCommit())


class Driver:
    """One node under test and the way to get its pending transactions into a block."""

    node: NodeAPI

    def commit(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SoloDriver(Driver):
    def __init__(self, data: Path) -> None:
        config = NodeConfig(data_dir=data, dev=True)
        self.solo = Node(config, VALIDATOR, dev_genesis(validator=VALIDATOR.address))
        self.solo.start()
        self.node = self.solo

    def commit(self) -> None:
        deadline = time.monotonic() + 10
        while self.solo.pool_status()["pending"] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # the block that took them is announced after it is committed

    def close(self) -> None:
        self.solo.stop()


class ValidatorDriver(Driver):
    def __init__(self, data: Path) -> None:
        app = SaharaApp(
            StateMachine(BlockStore(data / "chain")), dev_genesis(validator=VALIDATOR.address)
        )
        app.init_chain(
            abci.RequestInitChain(
                time={"seconds": 1_700_000_000}, chain_id="sahara-test", initial_height=1
            )
        )
        self.app_node = AppNode(app, "http://127.0.0.1:9")
        self.comet = StandInComet(app)
        self.app_node.comet = self.app_node.mempool.comet = self.comet  # type: ignore[assignment]
        self.node = self.app_node

    def commit(self) -> None:
        self.comet.commit_block()

    def close(self) -> None:
        self.app_node.close()
        self.app_node.app.machine.store.close()


class NodeAPIConformance:
    """What every :class:`NodeAPI` does; a driver's test class gives ``driver``."""

    @pytest.fixture
    def driver(self, tmp_path: Path) -> Iterator[Driver]:
        raise NotImplementedError

    def test_is_a_node_api(self, driver: Driver) -> None:
        node = driver.node
        assert isinstance(node, NodeAPI)
        assert node.chain_id == 31313
        assert node.validator_address == VALIDATOR.address
        assert node.block_time >= 0
        assert node.view().head().block_number >= 0

    def test_a_submitted_transaction_waits_in_the_pool_then_is_committed(
        self, driver: Driver
    ) -> None:
        node = driver.node
        seen: list[BlockResult] = []
        unsubscribe = node.subscribe(seen.append)
        before = node.stats.blocks
        if isinstance(node, DevNodeAPI):
            node.automine = False  # hold it in the pool, as CometBFT does until a block
        raw = transfer(0, node.chain_id)
        tx_hash = node.submit(raw)
        assert node.pool_status() == {"pending": 1, "queued": 0}
        assert node.pending_transaction(tx_hash) is not None
        sender = bytes.fromhex(SENDER.address[2:])
        assert node.pending_nonce(sender) == 1
        assert sender in node.pool_content()["pending"]
        if isinstance(node, DevNodeAPI):
            node.automine = True
            node.mine()
        driver.commit()
        assert node.pool_status()["pending"] == 0
        assert node.pending_transaction(tx_hash) is None
        view = node.view()
        assert view.tx_location(tx_hash) is not None
        assert any(tx_hash in [r.hash for r in block.included] for block in seen)
        assert node.stats.blocks > before and node.stats.txs >= 1
        unsubscribe()
        heard = len(seen)
        node.submit(transfer(1, node.chain_id))
        driver.commit()
        assert node.pending_nonce(sender) == 2 and node.pool_status()["pending"] == 0
        assert len(seen) == heard, "an unsubscribed listener still hears blocks"

    def test_refusals_have_geths_words(self, driver: Driver) -> None:
        node = driver.node
        with pytest.raises(TxInvalid, match="invalid chain id"):
            node.submit(transfer(0, node.chain_id + 1))
        node.submit(transfer(0, node.chain_id))
        driver.commit()
        with pytest.raises(NonceTooLow, match="nonce too low"):
            node.submit(transfer(0, node.chain_id))

    def test_the_rpc_layer_serves_it(self, driver: Driver) -> None:
        client = NodeClient(LocalTransport(driver.node))
        assert client.chain_id() == 31313
        tx_hash = client.send_raw(transfer(0, driver.node.chain_id))
        assert client.call("txpool_status")["pending"] in {"0x0", "0x1"}
        driver.commit()
        receipt = client.wait_for_receipt(tx_hash, timeout=10)
        assert receipt["status"] == "0x1"
        assert client.balance(RECIPIENT) == 10**15
        info = client.node_info()
        assert info["validator"] == VALIDATOR.address
        proof = client.call("eth_getProof", RECIPIENT, ["0x0"], "latest")
        assert int(proof["balance"], 16) == 10**15
        assert len(proof["storageProof"]) == 1
        client.close()


class TestSoloNode(NodeAPIConformance):
    @pytest.fixture
    def driver(self, tmp_path: Path) -> Iterator[Driver]:
        driver = SoloDriver(tmp_path)
        yield driver
        driver.close()

    def test_dev_orders(self, driver: Driver) -> None:
        node = driver.node
        assert isinstance(node, DevNodeAPI)
        snap = node.snapshot()
        node.mine(2)
        assert node.view().head().block_number == 2
        assert node.revert(snap)
        assert node.view().head().block_number == 0
        assert node.increase_time(60) == node.time_offset == 60


class TestValidatorApp(NodeAPIConformance):
    @pytest.fixture
    def driver(self, tmp_path: Path) -> Iterator[Driver]:
        driver = ValidatorDriver(tmp_path)
        yield driver
        driver.close()

    def test_takes_no_dev_orders(self, driver: Driver) -> None:
        assert not isinstance(driver.node, DevNodeAPI)
        assert driver.node.dev is False
        client = NodeClient(LocalTransport(driver.node))
        with pytest.raises(Exception, match="does not exist"):
            client.call("sahara_dev_mine")
        client.close()


def test_subscribers_run_after_every_block_on_both(tmp_path: Path) -> None:
    """A listener hears every commit once, whichever driver made it."""
    for driver in (SoloDriver(tmp_path / "solo"), ValidatorDriver(tmp_path / "app")):
        heard = threading.Event()
        driver.node.subscribe(lambda _b, heard=heard: heard.set())
        driver.node.submit(transfer(0, driver.node.chain_id))
        driver.commit()
        assert heard.wait(5)
        driver.close()
