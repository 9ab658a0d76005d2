"""The solo node: state machine + mempool + the solo proof-of-stake block producer.

The solo driver is the embedded default consensus: the local Sahara ID is the single
bonded validator; it orders the mempool into blocks, signs each block hash, and commits
it. ``block_time=0`` (automine) builds a block as soon as transactions are waiting,
packing all that are ready; ``block_time=N`` builds one every N seconds, empty or not.

Other threads (the RPC server) call :meth:`Node.submit` and read committed data through
:meth:`Node.view`; new blocks are announced to listeners registered with
:meth:`Node.subscribe`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eth.abc import SignedTransactionAPI

from sahara_cli.identity.keys import Signer, sign_hash
from sahara_cli.node.abc import DevNodeAPI, ProductionStats
from sahara_cli.node.builder import BuildRequest, ProcessBuilder, ThreadBuilder
from sahara_cli.node.genesis import Genesis, add_protocol
from sahara_cli.node.mempool import Mempool, PoolConfig, PoolContent
from sahara_cli.node.state import (
    BlockResult,
    ChainView,
    StateMachine,
    TxResult,
    decode_tx,
)
from sahara_cli.node.store import BlockStore

log = logging.getLogger("sahara.node")

Listener = Callable[[BlockResult], None]


@dataclass
class NodeConfig:
    data_dir: Path
    block_time: float = 0.0
    dev: bool = False
    pool: PoolConfig = field(default_factory=PoolConfig)
    max_block_txs: int = 5_000
    #: With block time 0, consecutive blocks are at least this far apart (seconds): a
    #: lone transaction is mined at once, a burst is packed into a few blocks.
    automine_gap: float = 0.01
    #: "thread": build blocks in this process; "process": in a child process, on its
    #: own core, while this one serves JSON-RPC (what ``sahara node run`` uses).
    builder: str = "thread"


@dataclass
class Stats(ProductionStats):
    started: float = field(default_factory=time.time)
    blocks: int = 0
    txs: int = 0
    last_block_time: float = 0.0
    recent: list[tuple[float, int]] = field(default_factory=list)  # (time, txs) per block

    def record(self, txs: int) -> None:
        now = time.time()
        self.blocks += 1
        self.txs += txs
        self.last_block_time = now
        self.recent.append((now, txs))
        cutoff = now - 60
        while self.recent and self.recent[0][0] < cutoff:
            self.recent.pop(0)

    def tx_per_second(self, window: float = 10.0) -> float:
        now = time.time()
        count = sum(n for t, n in self.recent if t >= now - window)
        return count / window


class Node(DevNodeAPI):
    """One running Sahara node (solo validator): a :class:`~sahara_cli.node.abc.DevNodeAPI`."""

    def __init__(
        self, config: NodeConfig, validator: Signer, genesis: Genesis | None = None
    ) -> None:
        self.config = config
        self.validator = validator
        self.store = BlockStore(config.data_dir / "chain")
        self.state = StateMachine(
            self.store, sign_block=lambda h: sign_hash(validator.private_key, h)
        )
        if self.state.genesis is None:
            if genesis is None:
                genesis = add_protocol(Genesis(validator=validator.address))
            self.state.init_chain(genesis)
        if config.builder == "process":
            self.builder: ThreadBuilder | ProcessBuilder = ProcessBuilder(
                config.data_dir / "chain", validator.private_key
            )
        else:
            self.builder = ThreadBuilder(self.state)
        self.mempool = Mempool(config.pool)
        self.stats = Stats()
        self._listeners: list[Listener] = []
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._producer: threading.Thread | None = None
        self._build_lock = threading.Lock()
        #: With block time 0: mine as soon as transactions wait. Dev chains may turn it
        #: off (``sahara_dev_setAutomine``) to hold transactions until ``mine``.
        self.automine = True
        self._dev_snapshots: dict[int, int] = {}
        self._next_snapshot = 1

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        return self.state.chain_id

    @property
    def dev(self) -> bool:
        genesis = self.state.genesis
        return bool(self.config.dev or (genesis and genesis.dev))

    @property
    def validator_address(self) -> str:
        return self.validator.address

    @property
    def block_time(self) -> float:
        return self.config.block_time

    def start(self) -> None:
        # The producer is CPU-bound; with Python's default 5 ms GIL switch interval every
        # RPC request waits up to 5 ms behind it. Hand the GIL over more often.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
        self._stop.clear()
        self._producer = threading.Thread(target=self._run, name="sahara-producer", daemon=True)
        self._producer.start()

    def stop(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._producer is not None:
            self._producer.join(timeout=30)
        self.builder.close()
        self.store.close()

    def _run(self) -> None:
        interval = self.config.block_time
        next_at = time.monotonic() + interval
        last_block = 0.0
        while not self._stop.is_set():
            with self._wake:
                if interval > 0:
                    self._wake.wait(timeout=max(0.0, next_at - time.monotonic()))
                    if time.monotonic() < next_at:
                        continue
                    next_at += interval
                    if next_at < time.monotonic():  # fell behind: do not burst
                        next_at = time.monotonic() + interval
                elif not self.automine or not self.mempool.status()["pending"]:
                    # Queued transactions (a nonce gap) cannot go into a block yet:
                    # mining empty blocks for them would only spin.
                    self._wake.wait(timeout=0.5)
                    continue
                else:
                    gap = last_block + self.config.automine_gap - time.monotonic()
                    if gap > 0:
                        self._wake.wait(timeout=gap)
                        continue
            if self._stop.is_set():
                break
            last_block = time.monotonic()
            try:
                self.build_block()
            except Exception:  # a bug must not kill the producer; the block is dropped
                log.exception("building a block failed")
                self.state.abort()
                time.sleep(0.1)

    # -- transactions ------------------------------------------------------------------

    def submit(self, raw: bytes) -> bytes:
        """Check a signed transaction and add it to the mempool; returns its hash."""
        tx = decode_tx(raw)
        checked = self.state.check_decoded(tx, raw)
        self.mempool.add(
            tx, raw, account_nonce=checked.account_nonce, account_balance=checked.account_balance
        )
        with self._wake:
            self._wake.notify_all()
        return bytes(tx.hash)

    def pending_nonce(self, address: bytes) -> int:
        view = self.view()
        nonce = int(view.state_at(view.head()).get_nonce(address))
        return int(self.mempool.pending_nonce(address, nonce))

    def pending_transaction(self, tx_hash: bytes) -> SignedTransactionAPI | None:
        return self.mempool.get(tx_hash)

    def pool_status(self) -> dict[str, int]:
        return self.mempool.status()

    def pool_content(self) -> PoolContent:
        return self.mempool.content()

    def build_block(
        self, *, timestamp: int | None = None, set_balance: tuple[bytes, int] | None = None
    ) -> BlockResult:
        """Build, commit and announce one block from what the mempool has ready."""
        with self._build_lock:
            head = self.state.head()
            base_fee = self.state.next_base_fee(head)
            txs: list[SignedTransactionAPI] = self.mempool.ready(
                base_fee, max_count=self.config.max_block_txs, gas_limit=head.gas_limit
            )
            raws = [self.mempool.raw(tx.hash) or b"" for tx in txs]
            reply = self.builder.build(
                BuildRequest(
                    raws,
                    timestamp=timestamp,
                    time_offset=self.state.time_offset,
                    set_balance=set_balance,
                    txs=txs,
                )
            )
            self.store.generation += 1  # a commit happened (maybe in the builder process)
            for tx_hash, error in reply.failed:
                log.info("dropped tx 0x%s: %s", tx_hash.hex(), error)
                self.mempool.remove(tx_hash)
            view = self.view()
            state = view.state_at(view.head())
            self.mempool.on_block(reply.included, lambda a: int(state.get_nonce(a)))
            self.stats.record(len(reply.included))
            header = view.header_by_hash(reply.block_hash)
            assert header is not None, "a committed block must be readable"
            result = BlockResult(
                header,
                [TxResult(h, True) for h in reply.included]
                + [TxResult(h, False, e) for h, e in reply.failed],
            )
        for listener in list(self._listeners):
            try:
                listener(result)
            except Exception:
                log.exception("a block listener failed")
        return result

    # -- reads and events --------------------------------------------------------------

    def view(self) -> ChainView:
        return self.state.view()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # -- development methods -----------------------------------------------------------

    def mine(self, blocks: int = 1, timestamp: int | None = None) -> list[BlockResult]:
        return [self.build_block(timestamp=timestamp if i == 0 else None) for i in range(blocks)]

    def snapshot(self) -> int:
        with self._build_lock:
            snap = self._next_snapshot
            self._next_snapshot += 1
            self._dev_snapshots[snap] = self.state.head().block_number
            return snap

    def revert(self, snapshot: int) -> bool:
        with self._build_lock:
            number = self._dev_snapshots.get(snapshot)
            if number is None:
                return False
            self.builder.revert_to(number)
            self.store.generation += 1
            # Like anvil and hardhat: a snapshot and all later ones are used up.
            for key in [k for k in self._dev_snapshots if k >= snapshot]:
                del self._dev_snapshots[key]
            view = self.view()
            state = view.state_at(view.head())
            self.mempool.on_block([], lambda a: int(state.get_nonce(a)))
            return True

    def set_balance(self, address: bytes, balance: int) -> BlockResult:
        return self.build_block(set_balance=(address, balance))

    @property
    def time_offset(self) -> int:
        return int(self.state.time_offset)

    def increase_time(self, seconds: int) -> int:
        self.state.time_offset += seconds
        return self.state.time_offset


__all__ = ["Node", "NodeConfig"]
