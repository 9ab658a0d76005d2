"""Serve the Sahara chain to CometBFT: ``python -m sahara_cli.node.abci --home DIR``.

The chain database is ``DIR/chain`` (created when missing). Block 0 is written when
CometBFT sends ``InitChain``, from the ``app_state`` of CometBFT's genesis when it has
one, else from ``--genesis FILE`` (a Sahara genesis JSON) or ``--dev`` (the standard
test accounts funded). Serves until SIGTERM or SIGINT, then closes the database.

With ``--rpc-addr HOST:PORT`` the same process also serves Ethereum JSON-RPC (HTTP and
WebSocket, see :mod:`sahara_cli.node.abci.rpc`) from the committed state, once block 0
exists; transactions sent to it go to CometBFT's RPC at ``--comet-rpc``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from sahara_cli.errors import SaharaError
from sahara_cli.identity.keys import Signer
from sahara_cli.node.abci.app import SaharaApp
from sahara_cli.node.abci.rpc import AppNode, ValidatorRPCServer
from sahara_cli.node.abci.server import ABCIServer
from sahara_cli.node.genesis import DEFAULT_CHAIN_ID, Genesis, dev_genesis, dev_keys
from sahara_cli.node.rpc.context import ServerOptions
from sahara_cli.node.state import StateMachine
from sahara_cli.node.store import BlockStore

log = logging.getLogger("sahara.node.abci")

#: Told what listens where once it does: ``("abci", "tcp://...")``, ``("rpc", "http://...")``.
Announce = Callable[[str, str], None]
LABELS = {"abci": "ABCI server", "rpc": "JSON-RPC"}


def print_announce(what: str, address: str) -> None:
    print(f"{LABELS.get(what, what)} listening on {address}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sahara_cli.node.abci",
        description="Run the Sahara chain as a CometBFT (ABCI 2.0) application.",
    )
    parser.add_argument("--home", type=Path, required=True, help="data directory")
    parser.add_argument(
        "--abci",
        default="tcp://127.0.0.1:26658",
        help="address to listen on: tcp://HOST:PORT or unix://PATH (CometBFT's proxy_app)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--dev", action="store_true", help="without app_state: a dev genesis (test accounts)"
    )
    source.add_argument("--genesis", type=Path, help="without app_state: this Sahara genesis")
    parser.add_argument("--chain-id", type=int, default=DEFAULT_CHAIN_ID, help="with --dev")
    parser.add_argument(
        "--rpc-addr",
        metavar="HOST:PORT",
        help="also serve Ethereum JSON-RPC (HTTP and WebSocket) here, e.g. 127.0.0.1:8545",
    )
    parser.add_argument(
        "--comet-rpc",
        metavar="URL",
        default="http://127.0.0.1:26657",
        help="CometBFT's RPC, where JSON-RPC sends transactions (with --rpc-addr)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.rpc_addr is not None:
        try:
            args.rpc_host, args.rpc_port = split_host_port(args.rpc_addr)
        except ValueError as exc:
            parser.error(f"--rpc-addr: {exc}")
    return args


def split_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; an empty host is 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def default_genesis(args: argparse.Namespace) -> Genesis | None:
    return app_genesis(genesis_file=args.genesis, dev=args.dev, chain_id=args.chain_id)


def app_genesis(
    *, genesis_file: Path | None = None, dev: bool = False, chain_id: int = DEFAULT_CHAIN_ID
) -> Genesis | None:
    """The genesis InitChain uses when CometBFT's has no ``app_state``: ``genesis_file``
    (a Sahara genesis JSON), else with ``dev`` the standard test accounts funded."""
    if genesis_file is not None:
        return Genesis.from_json(genesis_file.read_text())
    if dev:
        return dev_genesis(chain_id=chain_id, validator=Signer(dev_keys(1)[0]).address)
    return None


async def serve_rpc(
    app: SaharaApp,
    host: str,
    port: int,
    comet_rpc: str,
    stop: asyncio.Event,
    announce: Announce = print_announce,
    options: ServerOptions | None = None,
) -> None:
    """Serves JSON-RPC on ``host:port`` from when block 0 exists until ``stop``, with
    the limits of ``options`` (the solo node's defaults when None)."""
    while app.machine.genesis is None:  # InitChain has not come yet
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
        if stop.is_set():
            return
    node = AppNode(app, comet_rpc)
    server = ValidatorRPCServer(node, options)
    try:
        await server.start(host, port)
        announce("rpc", server.url)
        await stop.wait()
    finally:
        await server.stop()
        node.close()


async def serve(
    app: SaharaApp,
    address: str,
    rpc: tuple[str, int, str] | None = None,
    announce: Announce = print_announce,
    options: ServerOptions | None = None,
) -> int:
    """Serves ``app`` until SIGTERM or SIGINT; JSON-RPC too with ``rpc``:
    ``(host, port, CometBFT RPC URL)``. Returns the exit status: 1 when the JSON-RPC
    server failed (and so stopped the process)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = ABCIServer(app, address)
    await server.start()
    announce("abci", server.address)
    serving = asyncio.create_task(server.serve_forever())
    rpc_task = (
        asyncio.create_task(serve_rpc(app, *rpc, stop, announce, options))
        if rpc is not None
        else None
    )
    try:
        if rpc_task is not None:
            # A JSON-RPC server that cannot start (port taken) stops the process.
            await asyncio.wait(
                [asyncio.create_task(stop.wait()), rpc_task],
                return_when=asyncio.FIRST_COMPLETED,
            )
            stop.set()
        else:
            await stop.wait()
    finally:
        log.info("stopping")
        status = 0
        if rpc_task is not None:
            try:
                await rpc_task
            except Exception:
                log.exception("the JSON-RPC server failed")
                status = 1
        await server.stop()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    return status


def run_app(
    home: Path,
    address: str,
    genesis: Genesis | None,
    rpc: tuple[str, int, str] | None = None,
    announce: Announce = print_announce,
    options: ServerOptions | None = None,
) -> int:
    """Opens (or creates) the chain database ``home/chain`` and serves the application
    on ``address`` until SIGTERM or SIGINT (JSON-RPC too with ``rpc``: ``(host, port,
    CometBFT RPC URL)``); closes the database after the last call. The exit status."""
    store = BlockStore(home / "chain")
    try:
        app = SaharaApp(StateMachine(store), genesis)
        # asyncio.run waits for the worker thread of a call in progress before it
        # returns: the store is closed after the last call into the state machine.
        return asyncio.run(serve(app, address, rpc, announce, options))
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    rpc = (args.rpc_host, args.rpc_port, args.comet_rpc) if args.rpc_addr else None
    try:
        genesis = default_genesis(args)
        return run_app(args.home, args.abci, genesis, rpc)
    except (SaharaError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
