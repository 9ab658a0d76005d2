"""Ethereum JSON-RPC from a validator's application process.

:class:`AppNode` gives the RPC layer of :mod:`sahara_cli.node.rpc` what it needs from a
:class:`~sahara_cli.node.producer.Node` (a :class:`~sahara_cli.node.abc.NodeAPI`),
backed by the application instead:

- reads come from the state machine's committed state (what CometBFT committed);
- ``submit`` posts the signed transaction to CometBFT's ``broadcast_tx_sync``, so it
  goes through CheckTx and CometBFT's mempool and gossip; a refusal becomes the error
  the solo node raises (nonce too low, insufficient funds, invalid transaction...);
- ``pending_nonce`` is the committed nonce, or past it the sender's transactions that
  CheckTx accepted since the last commit;
- ``subscribe`` listeners run after every Commit (``eth_subscribe``, filters);
- ``mempool`` answers ``txpool_*`` from CometBFT's ``unconfirmed_txs``, and
  ``eth_getTransactionByHash`` of a pending transaction from what this process sent.

A validator is not a dev chain: ``dev`` is False, so the ``sahara_dev_*``, ``evm_*``,
``anvil_*`` and ``hardhat_*`` methods answer "does not exist/is not available", and no
dev key signs anything.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from eth.abc import SignedTransactionAPI

from sahara_cli.errors import (
    CometBFTError,
    CometBFTUnreachable,
    InsufficientFunds,
    NonceTooLow,
    OversizedData,
    SaharaError,
    TxAlreadyKnown,
    TxInvalid,
    TxPoolFull,
)
from sahara_cli.node.abc import NodeAPI
from sahara_cli.node.abci.app import (
    CODE_INSUFFICIENT_FUNDS,
    CODE_NONCE_TOO_LOW,
    CODE_OK,
    SaharaApp,
)
from sahara_cli.node.cometbft import CometRPC
from sahara_cli.node.mempool import PoolContent
from sahara_cli.node.producer import Stats
from sahara_cli.node.rpc.context import ServerOptions
from sahara_cli.node.rpc.dispatch import Spec, method_table
from sahara_cli.node.rpc.server import RPCServer
from sahara_cli.node.state import BlockResult, ChainView, decode_tx

__all__ = ["AppNode", "ValidatorRPCServer", "refusal"]

log = logging.getLogger("sahara.node.abci.rpc")

Listener = Callable[[BlockResult], None]
#: Transactions sent through this process kept for eth_getTransactionByHash until mined.
MAX_SENT = 10_000
#: Unconfirmed transactions txpool_content and txpool_inspect decode at most.
MAX_UNCONFIRMED = 1_000
#: Methods that wait on CometBFT's RPC: run on a worker thread, not on the event loop.
BLOCKING = ("eth_sendRawTransaction", "txpool_status")


def refusal(code: int, message: str) -> SaharaError:
    """The error the solo node raises for a transaction CheckTx refused with ``code``."""
    if code == CODE_NONCE_TOO_LOW:
        return NonceTooLow(message)
    if code == CODE_INSUFFICIENT_FUNDS:
        return InsufficientFunds(message)
    return TxInvalid(message or f"transaction refused (code {code})")


def _comet_refusal(exc: CometBFTError) -> SaharaError:
    """geth's words for CometBFT's own mempool refusals."""
    if isinstance(exc, CometBFTUnreachable):
        return exc
    text = exc.message
    if "already exists in cache" in text:
        return TxAlreadyKnown("already known")
    if "mempool is full" in text:
        return TxPoolFull("txpool is full")
    if "too large" in text:
        return OversizedData("oversized data")
    return exc


class CometMempool:
    """The ``mempool`` the RPC layer reads: CometBFT's, plus what this process sent."""

    def __init__(self, comet: CometRPC) -> None:
        self.comet = comet
        self._sent: OrderedDict[bytes, SignedTransactionAPI] = OrderedDict()
        self._lock = threading.Lock()

    def sent(self, tx: SignedTransactionAPI) -> None:
        with self._lock:
            self._sent[bytes(tx.hash)] = tx
            while len(self._sent) > MAX_SENT:
                self._sent.popitem(last=False)

    def forget(self, hashes: list[bytes]) -> None:
        with self._lock:
            for tx_hash in hashes:
                self._sent.pop(tx_hash, None)

    def get(self, tx_hash: bytes) -> SignedTransactionAPI | None:
        with self._lock:
            return self._sent.get(bytes(tx_hash))

    def status(self) -> dict[str, int]:
        result = self.comet.call("num_unconfirmed_txs")
        return {"pending": int(result.get("n_txs") or 0), "queued": 0}

    def content(self) -> PoolContent:
        result = self.comet.call("unconfirmed_txs", limit=str(MAX_UNCONFIRMED))
        pending: dict[Any, dict[int, SignedTransactionAPI]] = {}
        for encoded in result.get("txs") or []:
            try:
                tx = decode_tx(base64.b64decode(encoded))
                sender = bytes(tx.sender)
            except Exception:  # CheckTx let it in, so this should not happen
                log.debug("undecodable unconfirmed transaction", exc_info=True)
                continue
            pending.setdefault(sender, {})[int(tx.nonce)] = tx
        for by_nonce in pending.values():
            ordered = dict(sorted(by_nonce.items()))
            by_nonce.clear()
            by_nonce.update(ordered)
        return {"pending": pending, "queued": {}}


class AppNode(NodeAPI):
    """The application process as a :class:`~sahara_cli.node.abc.NodeAPI`, served by
    :class:`ValidatorRPCServer`."""

    def __init__(self, app: SaharaApp, comet_rpc: str, *, timeout: float = 10.0) -> None:
        self.app = app
        self.machine = app.machine
        self.store = app.machine.store
        self.comet = CometRPC(comet_rpc, timeout)
        self.mempool = CometMempool(self.comet)
        self.stats = Stats()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._unhook: Callable[[], None] | None = app.add_commit_listener(self._on_commit)

    @property
    def chain_id(self) -> int:
        return self.machine.chain_id

    @property
    def dev(self) -> bool:
        return False  # a validator is never a dev chain, whatever its genesis says

    @property
    def genesis(self) -> Any:
        return self.machine.genesis

    @property
    def validator_address(self) -> str:
        genesis = self.machine.genesis
        return genesis.validator if genesis is not None else ""

    @property
    def block_time(self) -> float:
        return 0.0  # CometBFT decides when blocks come

    def close(self) -> None:
        if self._unhook is not None:
            self._unhook()
            self._unhook = None

    # -- transactions ------------------------------------------------------------------

    def submit(self, raw: bytes) -> bytes:
        """Hand a signed transaction to CometBFT (CheckTx); returns its hash."""
        tx = decode_tx(raw)  # TxInvalid, OversizedData: as the solo node
        try:
            result = self.comet.call("broadcast_tx_sync", tx=base64.b64encode(raw).decode("ascii"))
        except CometBFTError as exc:
            raise _comet_refusal(exc) from None
        code = int(result.get("code") or 0)
        if code != CODE_OK:
            raise refusal(code, str(result.get("log") or ""))
        self.mempool.sent(tx)
        return bytes(tx.hash)

    def pending_transaction(self, tx_hash: bytes) -> SignedTransactionAPI | None:
        return self.mempool.get(tx_hash)

    def pool_status(self) -> dict[str, int]:
        return self.mempool.status()

    def pool_content(self) -> PoolContent:
        return self.mempool.content()

    def pending_nonce(self, address: bytes) -> int:
        view = self.view()
        committed = int(view.state_at(view.head()).get_nonce(address))
        pooled = self.app.mempool_nonce(address)
        return max(committed, pooled) if pooled is not None else committed

    # -- reads and events --------------------------------------------------------------

    def view(self) -> ChainView:
        return self.machine.view()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def _on_commit(self, result: BlockResult) -> None:
        """After each Commit, on the ABCI worker thread."""
        included = [r.hash for r in result.included]
        self.stats.record(len(included))
        self.mempool.forget(included)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(result)
            except Exception:
                log.exception("a block listener failed")


def validator_table() -> dict[str, Spec]:
    """The method table, with the methods that call CometBFT off the event loop."""
    table = dict(method_table())
    for name in BLOCKING:
        spec = table[name]
        table[name] = replace(spec, flags=replace(spec.flags, inline=False))
    return table


class ValidatorRPCServer(RPCServer):
    """:class:`RPCServer` on an :class:`AppNode`."""

    def __init__(self, node: AppNode, options: ServerOptions | None = None, **opts: Any) -> None:
        super().__init__(node, options, **opts)

    async def start(self, host: str = "127.0.0.1", port: int = 8545) -> tuple[str, int]:
        bound = await super().start(host, port)
        self.dispatcher.table = validator_table()
        return bound
