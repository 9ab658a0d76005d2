"""Our ABCI server under the real CometBFT v0.38.25: a tiny key-value application gets
transactions committed and queried through CometBFT's RPC, and resumes after both
CometBFT and the server are restarted on the same state (the Info handshake)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sahara_cli.node.abci.generated.tendermint.abci import types_pb2 as abci
from sahara_cli.node.abci.server import Application
from tests.cometbft import CometNode, cometbft_bin, running_node, serving

pytestmark = pytest.mark.e2e


class KVApp(Application):
    """``key=value`` transactions; the state (height, app hash, pairs) is saved to a JSON
    file at each Commit, so a new instance on the same file resumes where this one was."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls: list[str] = []
        self.finalized: list[int] = []
        doc = json.loads(path.read_text()) if path.exists() else {}
        self.height: int = doc.get("height", 0)
        self.app_hash = bytes.fromhex(doc.get("app_hash", ""))
        self.kv: dict[str, str] = doc.get("kv", {})
        self._pending: tuple[int, bytes, dict[str, str]] | None = None

    def _enter(self, name: str) -> None:
        self.calls.append(name)

    @staticmethod
    def _parse(tx: bytes) -> tuple[str, str] | None:
        key, sep, value = tx.decode(errors="replace").partition("=")
        return (key, value) if sep and key else None

    def info(self, req: abci.RequestInfo) -> abci.ResponseInfo:
        self._enter("info")
        return abci.ResponseInfo(
            data="kv",
            version="1",
            last_block_height=self.height,
            last_block_app_hash=self.app_hash,
        )

    def check_tx(self, req: abci.RequestCheckTx) -> abci.ResponseCheckTx:
        self._enter("check_tx")
        if self._parse(req.tx) is None:
            return abci.ResponseCheckTx(code=1, log="want key=value")
        return abci.ResponseCheckTx(code=0)

    def finalize_block(self, req: abci.RequestFinalizeBlock) -> abci.ResponseFinalizeBlock:
        self._enter("finalize_block")
        self.finalized.append(req.height)
        kv = dict(self.kv)
        results = []
        for tx in req.txs:
            pair = self._parse(tx)
            if pair is None:
                results.append(abci.ExecTxResult(code=1, log="want key=value"))
                continue
            kv[pair[0]] = pair[1]
            results.append(abci.ExecTxResult(code=0))
        app_hash = hashlib.sha256(json.dumps(kv, sort_keys=True).encode()).digest()
        self._pending = (req.height, app_hash, kv)
        return abci.ResponseFinalizeBlock(tx_results=results, app_hash=app_hash)

    def commit(self, req: abci.RequestCommit) -> abci.ResponseCommit:
        self._enter("commit")
        assert self._pending is not None, "Commit without FinalizeBlock"
        self.height, self.app_hash, self.kv = self._pending
        self._pending = None
        doc = {"height": self.height, "app_hash": self.app_hash.hex(), "kv": self.kv}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.path)
        return abci.ResponseCommit()

    def query(self, req: abci.RequestQuery) -> abci.ResponseQuery:
        self._enter("query")
        key = req.data.decode(errors="replace")
        if key not in self.kv:
            return abci.ResponseQuery(code=1, log="not found", height=self.height)
        return abci.ResponseQuery(
            code=0, key=req.data, value=self.kv[key].encode(), height=self.height
        )


def test_kv_app_commits_queries_and_resumes(tmp_path: Path) -> None:
    cometbft_bin()
    node = CometNode(tmp_path / "cometbft")
    node.init()
    state = tmp_path / "kv.json"

    # First run: CometBFT reaches the app over a unix socket.
    app = KVApp(state)
    with serving(app, f"unix://{tmp_path / 'abci.sock'}") as address:
        node.configure(address)
        with running_node(node):
            result = node.rpc("broadcast_tx_commit", tx="a=b")
            assert result["check_tx"]["code"] == 0, result
            assert result["tx_result"]["code"] == 0, result
            committed = int(result["height"])
            bad = node.rpc("broadcast_tx_sync", tx="no-equals-sign")
            assert bad["code"] == 1, bad

            reached = node.wait_height(committed + 2)
            assert reached >= committed + 2
            answer = node.query(b"a")
            assert answer["code"] == 0, answer
            assert answer["value"] == b"b"
            assert node.query(b"missing")["code"] == 1
            block = node.rpc("block", timeout=5)
            assert block["block"]["header"]["app_hash"] == app.app_hash.hex().upper()

    assert {"info", "check_tx", "finalize_block", "commit", "query"} <= set(app.calls)
    saved = json.loads(state.read_text())
    assert saved["kv"] == {"a": "b"}
    stopped_at = saved["height"]
    assert stopped_at >= reached

    # Second run: a new server (over TCP) and a new app instance on the saved state.
    app2 = KVApp(state)
    assert app2.height == stopped_at
    with serving(app2) as address:
        node.configure(address)
        with running_node(node):
            assert node.wait_height(stopped_at + 2) >= stopped_at + 2
            assert node.query(b"a")["value"] == b"b"
            result = node.rpc("broadcast_tx_commit", tx="c=d")
            assert result["tx_result"]["code"] == 0, result
            assert int(result["height"]) > stopped_at
            assert node.query(b"c")["value"] == b"d"

    # The handshake asked Info first, and no block was run twice: the new app finalised
    # the blocks after the one it resumed from, each once, in order.
    assert app2.calls[0] == "info"
    assert app2.finalized == list(range(stopped_at + 1, app2.height + 1))
    assert app2.kv == {"a": "b", "c": "d"}
    assert json.loads(state.read_text())["height"] == app2.height > stopped_at
