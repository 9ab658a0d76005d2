"""One member of a peer-to-peer team, in a process of its own.

``python -m sahara_cli.agent.servers.a2a_member --home H --agent NAME --port P --peer URL
...`` serves one agent of a home over A2A (:mod:`sahara_cli.agent.servers.a2a`) until
stopped; teams start their peer-to-peer members this way. The ID's password and the team
secret come in the environment and are removed from it as they are read.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.agent.servers.a2a import DEFAULT_TIMEOUT, serve_a2a
from sahara_cli.agent.servers.a2a_auth import SECRET_ENV, Credentials, require_loopback
from sahara_cli.agent.servers.limits import DEFAULT_RATE_PER_IP
from sahara_cli.errors import SaharaError, UsageError

if TYPE_CHECKING:
    from sahara_cli.identity import Signer


def _watch_parent(parent: int) -> None:
    """Exit when the process that started this one is gone (no orphans)."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _keystore(home_root: Path) -> Any:
    from sahara_cli.config import load_config
    from sahara_cli.home import Home
    from sahara_cli.identity.store import KeyStore

    home = Home(home_root)
    cfg = load_config(home.config_file).config
    return KeyStore(
        home.keystore_dir,
        config_path=home.config_file,
        default=cfg.identity.default,
        scrypt_n=cfg.identity.scrypt_n,
    )


def take_env_secrets() -> tuple[str | None, str | None]:
    """The ID's password (``SAHARA_PASSWORD``) and the team secret (:data:`SECRET_ENV`)
    a team runner handed this member, removed from the environment as they are read,
    so that no child of the member (an IPFS daemon, a tool) inherits them."""
    password = os.environ.pop("SAHARA_PASSWORD", None) or None
    secret = os.environ.pop(SECRET_ENV, None) or None
    return password, secret


def unlock_with(home_root: Path, agent: str, password: str | None) -> Signer | None:
    """The agent's ID, unlocked with ``password`` (a team runner passes it to its
    members in ``SAHARA_PASSWORD``); None leaves the agent on public data."""
    if not password:
        return None
    from sahara_cli.agent.spec import AgentStore

    store = _keystore(home_root)
    spec = AgentStore(home_root).load(agent)
    signer: Signer = store.unlock(store.resolve(spec.identity).name, password)
    return signer


def owner_address(home_root: Path, agent: str) -> str | None:
    """The address of the agent's ID (read without its password); None when the home
    has no such ID."""
    from sahara_cli.agent.spec import AgentStore

    spec = AgentStore(home_root).load(agent)
    try:
        address: str = _keystore(home_root).resolve(spec.identity).address
    except SaharaError:
        return None
    return address


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sahara_cli.agent.servers.a2a_member",
        description=(
            "Serve one agent over A2A. Callers sign with the team secret in "
            f"{SECRET_ENV} or with the agent's own ID (unlocked from SAHARA_PASSWORD)."
        ),
    )
    parser.add_argument("--home", required=True, type=Path, help="the sahara home")
    parser.add_argument("--agent", required=True, help="the agent's name in the home")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--network", action="store_true", help="allow a --host beyond loopback")
    parser.add_argument("--peer", action="append", default=[], help="a peer's base URL")
    parser.add_argument("--max-peers", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument(
        "--rate-per-ip",
        type=float,
        default=DEFAULT_RATE_PER_IP,
        help="requests a second one address may make (bursts of twice that)",
    )
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    password, secret = take_env_secrets()
    if args.parent_pid is not None:
        _watch_parent(args.parent_pid)
    from sahara_cli.agent.brain import open_agent

    try:
        require_loopback(args.host, args.network)
        signer = unlock_with(args.home, args.agent, password)
        del password
        owner = signer.address if signer is not None else owner_address(args.home, args.agent)
        credentials = Credentials(secret, signer)
        if credentials.secret is None and owner is None:
            raise UsageError(
                "no team secret and no owner ID: no one could call this agent",
                hint=f"Set {SECRET_ENV}, or give the agent an ID of the home.",
            )
        agent = open_agent(args.home, args.agent, signer=signer)
    except SaharaError as exc:
        print(f"error: {exc.message}", file=sys.stderr, flush=True)
        return exc.exit_code
    try:
        serve_a2a(
            agent,
            args.host,
            args.port,
            args.peer,
            credentials=credentials,
            owner=owner,
            network=args.network,
            max_peers=args.max_peers,
            timeout=args.timeout,
            rate_per_ip=args.rate_per_ip if args.rate_per_ip > 0 else None,
        )
    finally:
        agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
