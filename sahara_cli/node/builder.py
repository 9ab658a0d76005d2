"""Block builders: who runs ``finalize_block`` + ``commit`` for the producer.

- :class:`ThreadBuilder` runs them in the node's own process (tests, the library).
- :class:`ProcessBuilder` runs them in a child process that owns the write side of the
  LMDB store. py-evm execution is CPU-bound Python: in one process it shares one core
  (the GIL) with the JSON-RPC server; in a child it runs on the second core while the
  server keeps taking transactions. The parent reads committed blocks straight from
  LMDB, which serves several processes at once.

Both take the same request (raw transactions, timestamp, time offset, an optional
balance to set first) and give the same reply (the block's hash, per-transaction
outcomes). A child exits when its parent goes away (end of the pipe), whatever state
it is in: a block is committed in one LMDB transaction or not at all.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sahara_cli.errors import BlockBuilderFailed

log = logging.getLogger("sahara.node")


@dataclass
class BuildRequest:
    raws: list[bytes]
    timestamp: int | None = None
    time_offset: int = 0
    set_balance: tuple[bytes, int] | None = None
    #: The decoded transactions, when the builder runs in this process (saves decoding).
    txs: list[Any] | None = None


@dataclass
class BuildReply:
    block_hash: bytes
    number: int
    included: list[bytes] = field(default_factory=list)
    failed: list[tuple[bytes, str]] = field(default_factory=list)


def _execute(machine: Any, request: BuildRequest) -> BuildReply:
    from sahara_cli.node.state import decode_tx

    machine.time_offset = request.time_offset
    txs = request.txs if request.txs is not None else [decode_tx(raw) for raw in request.raws]
    pre_state = None
    if request.set_balance is not None:
        address, balance = request.set_balance

        def pre_state(state: Any) -> None:
            state.set_balance(address, balance)

    try:
        result = machine.finalize_block(txs, timestamp=request.timestamp, pre_state=pre_state)
        machine.commit()
    except BaseException:
        machine.abort()
        raise
    header = result.header
    return BuildReply(
        block_hash=bytes(header.hash),
        number=int(header.block_number),
        included=[bytes(r.hash) for r in result.results if r.included],
        failed=[(bytes(r.hash), r.error or "") for r in result.results if not r.included],
    )


class ThreadBuilder:
    """Builds blocks with the node's own state machine, in the calling thread."""

    def __init__(self, machine: Any) -> None:
        self.machine = machine

    def build(self, request: BuildRequest) -> BuildReply:
        return _execute(self.machine, request)

    def revert_to(self, number: int) -> None:
        self.machine.revert_to(number)

    def close(self) -> None:
        pass


def _child_main(conn: Any, chain_dir: str, validator_key: bytes) -> None:
    """The builder process: one state machine, requests in, replies out, until EOF."""
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops us
    from sahara_cli.identity.keys import sign_hash
    from sahara_cli.node.state import StateMachine
    from sahara_cli.node.store import BlockStore

    machine = StateMachine(
        BlockStore(Path(chain_dir)), sign_block=lambda h: sign_hash(validator_key, h)
    )
    conn.send(("ready", os.getpid()))
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            break
        try:
            if kind == "build":
                conn.send(("ok", _execute(machine, payload)))
            elif kind == "revert":
                machine.revert_to(payload)
                conn.send(("ok", None))
            else:
                conn.send(("error", f"unknown request {kind!r}"))
        except Exception as exc:  # report, keep serving: the parent decides
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    machine.store.close()


class ProcessBuilder:
    """Builds blocks in a child process; restarts it if it dies."""

    def __init__(self, chain_dir: Path, validator_key: bytes) -> None:
        self.chain_dir = chain_dir
        self._key = validator_key
        self._lock = threading.Lock()
        self._ctx = multiprocessing.get_context("spawn")
        self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._process = self._ctx.Process(
            target=_child_main,
            args=(child, str(self.chain_dir), self._key),
            name="sahara-builder",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._conn = parent
        try:
            kind, _ = self._conn.recv()
        except EOFError as exc:
            raise BlockBuilderFailed("the block builder process did not start") from exc
        if kind != "ready":
            raise BlockBuilderFailed("the block builder process did not start")

    def _call(self, kind: str, payload: Any) -> Any:
        with self._lock:
            try:
                self._conn.send((kind, payload))
                status, value = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                log.error("the block builder process died (%s); starting a new one", exc)
                self._process.join(timeout=5)
                self._start()
                raise BlockBuilderFailed(
                    "the block builder process died; the block was dropped"
                ) from exc
        if status != "ok":
            raise BlockBuilderFailed(f"building the block failed: {value}")
        return value

    def build(self, request: BuildRequest) -> BuildReply:
        request.txs = None  # the child decodes the raw bytes itself
        reply: BuildReply = self._call("build", request)
        return reply

    def revert_to(self, number: int) -> None:
        self._call("revert", number)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
