"""Serve the Sahara chain to CometBFT: ``python -m sahara_cli.node.abci --home DIR``.

The chain database is ``DIR/chain`` (created when missing). Block 0 is written when
CometBFT sends ``InitChain``, from the ``app_state`` of CometBFT's genesis when it has
one, else from ``--genesis FILE`` (a Sahara genesis JSON) or ``--dev`` (the standard
test accounts funded). Serves until SIGTERM or SIGINT, then closes the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from sahara_cli.errors import SaharaError
from sahara_cli.identity.keys import Signer
from sahara_cli.node.abci.app import SaharaApp
from sahara_cli.node.abci.server import ABCIServer
from sahara_cli.node.genesis import DEFAULT_CHAIN_ID, Genesis, dev_genesis, dev_keys
from sahara_cli.node.state import StateMachine
from sahara_cli.node.store import BlockStore

log = logging.getLogger("sahara.node.abci")


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
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def default_genesis(args: argparse.Namespace) -> Genesis | None:
    if args.genesis is not None:
        return Genesis.from_json(args.genesis.read_text())
    if args.dev:
        return dev_genesis(chain_id=args.chain_id, validator=Signer(dev_keys(1)[0]).address)
    return None


async def serve(app: SaharaApp, address: str) -> None:
    """Serves ``app`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = ABCIServer(app, address)
    await server.start()
    print(f"ABCI server listening on {server.address}", flush=True)
    serving = asyncio.create_task(server.serve_forever())
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await server.stop()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        genesis = default_genesis(args)
        store = BlockStore(args.home / "chain")
    except (SaharaError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        app = SaharaApp(StateMachine(store), genesis)
        # asyncio.run waits for the worker thread of a call in progress before it
        # returns: the store is closed after the last call into the state machine.
        asyncio.run(serve(app, args.abci))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
