"""Running a node: in the foreground, or as a background process with a pid file.

Layout in the home: ``<home>/node/chain/`` (LMDB), ``node.pid``, ``node.log`` and
``node.json`` (what the running node serves: pid, RPC URL, chain id, validator).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    ConflictError,
    NodeRunning,
    NodeStartFailed,
    NodeUnreachable,
    PortUnavailable,
    UsageError,
)
from sahara_cli.fsutil import atomic_write, ensure_private_dir
from sahara_cli.identity.keys import Signer
from sahara_cli.procutil import listen_error, live_pid, read_runtime

if TYPE_CHECKING:
    from sahara_cli.node.results import ChainReset, NodeLog, NodeStatus
    from sahara_cli.node.rpc.context import ServerOptions

SAH = 10**18
VALIDATOR_TREASURY = 1_000_000 * SAH


@dataclass(frozen=True)
class NodePaths:
    root: Path

    @classmethod
    def of_home(cls, home: Path) -> NodePaths:
        return cls(home / "node")

    @property
    def chain(self) -> Path:
        return self.root / "chain"

    @property
    def pid_file(self) -> Path:
        return self.root / "node.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "node.log"

    @property
    def runtime_file(self) -> Path:
        return self.root / "node.json"

    def running_pid(self) -> int | None:
        """The pid of a live node of this home, or None (stale pid files are ignored)."""
        return live_pid(self.pid_file)

    def runtime(self) -> dict[str, Any] | None:
        return read_runtime(self.runtime_file)


def parse_addr(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--rpc-addr must be HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def make_genesis(*, dev: bool, chain_id: int, validator: Signer) -> Any:
    from sahara_cli.node.genesis import Genesis, add_protocol, dev_genesis

    if dev:
        return dev_genesis(
            chain_id=chain_id, validator=validator.address, extra=[validator.address]
        )
    genesis = Genesis(chain_id=chain_id, validator=validator.address)
    genesis.fund(validator.address, VALIDATOR_TREASURY)
    return add_protocol(genesis)


def run_foreground(
    paths: NodePaths,
    *,
    validator: Signer,
    dev: bool,
    chain_id: int,
    host: str,
    port: int,
    block_time: float,
    allow_remote_signing: bool = False,
    cors: list[str] | None = None,
    ready: Any = None,
    rpc_options: ServerOptions | None = None,
) -> None:
    """Run a node until SIGINT or SIGTERM; ``ready(info)`` is called once it serves.
    ``rpc_options``: the JSON-RPC server's limits (defaults when None)."""
    from sahara_cli.node.producer import Node, NodeConfig
    from sahara_cli.node.rpc.server import serve_in_thread

    ensure_private_dir(paths.root)
    other = paths.running_pid()
    if other is not None and other != os.getpid():
        raise NodeRunning(
            f"a node of this home is already running (pid {other})", hint="Run 'sahara node stop'."
        )
    node = Node(
        NodeConfig(data_dir=paths.root, block_time=block_time, dev=dev, builder="process"),
        validator=validator,
        genesis=make_genesis(dev=dev, chain_id=chain_id, validator=validator),
    )
    if dev and not node.dev:
        node.stop()
        raise ConflictError(
            "this home's chain was created without --dev",
            hint="Run without --dev, or 'sahara node reset' to start a new dev chain.",
        )
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    server = None
    try:
        node.start()
        try:
            server = serve_in_thread(
                node,
                host,
                port,
                options=rpc_options,
                allow_remote_signing=allow_remote_signing,
                cors_origins=tuple(cors or ()),
            )
        except OSError as exc:
            raise PortUnavailable(
                f"cannot serve JSON-RPC on {host}:{port}: {exc.strerror or exc}", hint=PORT_HINT
            ) from exc
        info = {
            "pid": os.getpid(),
            "rpc_url": server.url,
            "chain_id": node.chain_id,
            "validator": validator.address,
            "dev": node.dev,
            "block_time": block_time,
            "height": node.state.head().block_number,
            "started": time.time(),
        }
        atomic_write(paths.pid_file, f"{os.getpid()}\n".encode())
        atomic_write(paths.runtime_file, json.dumps(info).encode())
        if ready is not None:
            ready(info)
        while not stop.wait(0.5):
            pass
    finally:
        if server is not None:
            server.stop()
        node.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for path in (paths.pid_file, paths.runtime_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


PORT_HINT = "Another program (or node) uses it: pick another --rpc-addr HOST:PORT."


def check_bindable(host: str, port: int) -> None:
    """Raise ``node.port_unavailable`` when ``host:port`` cannot be listened on now (the
    same socket options as the JSON-RPC server, so a port in TIME_WAIT is not refused)."""
    exc = listen_error(host, port)
    if exc is not None:
        raise PortUnavailable(
            f"cannot serve JSON-RPC on {host}:{port}: {exc.strerror or exc}", hint=PORT_HINT
        )


def start_background(
    paths: NodePaths,
    args: list[str],
    password: str | None,
    timeout: float = 60.0,
    *,
    address: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Start ``sahara <args>`` detached, logging to node.log; wait until it serves.
    ``address``: the JSON-RPC HOST, PORT, checked before the node starts (a port in use
    is ``node.port_unavailable``, not a failed start)."""
    ensure_private_dir(paths.root)
    pid = paths.running_pid()
    if pid is not None:
        raise NodeRunning(
            f"a node of this home is already running (pid {pid})", hint="Run 'sahara node stop'."
        )
    if address is not None:
        check_bindable(*address)
    for stale in (paths.pid_file, paths.runtime_file):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    log = paths.log_file.open("ab")
    env = {k: v for k, v in os.environ.items() if k != "SAHARA_PASSWORD"}
    command = [sys.executable, "-m", "sahara_cli", *args]
    if password is not None:
        command += ["--password-file", "/dev/stdin"]
    process = subprocess.Popen(  # noqa: S603  # our own interpreter and module
        command,
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    log.close()
    assert process.stdin is not None
    if password is not None:
        process.stdin.write(password.encode() + b"\n")
    process.stdin.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            tail = tail_lines(paths.log_file, 20)
            errors = [line for line in tail if line.startswith("error:")]
            reason = errors[-1].removeprefix("error:").strip() if errors else "no output"
            if reason.startswith("cannot serve JSON-RPC on"):  # taken since the check
                raise PortUnavailable(reason, hint=PORT_HINT)
            raise NodeStartFailed(
                f"the node exited with status {code} while starting: {reason}",
                hint=f"See {paths.log_file}.",
            )
        info = paths.runtime()
        if info and info.get("pid") == process.pid:
            return info
        time.sleep(0.05)
    process.terminate()
    raise NodeStartFailed(
        f"the node did not start within {timeout:g} s", hint=f"See {paths.log_file}."
    )


def stop_background(paths: NodePaths, timeout: float = 30.0) -> int | None:
    """Stop the node of this home; returns its pid, or None when none was running."""
    pid = paths.running_pid()
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    for path in (paths.pid_file, paths.runtime_file):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return pid


def tail_lines(path: Path, count: int) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []
    return lines[-count:]


def require_reachable(url: str, timeout: float) -> Any:
    """A client for ``url`` after one cheap call proves a node answers there."""
    from sahara_cli.node.client import NodeClient

    client = NodeClient(url, timeout=timeout)
    try:
        client.chain_id()
    except NodeUnreachable as exc:
        raise NodeUnreachable(
            f"no node answers at {url}",
            hint="Start one with 'sahara node start --dev', "
            "or set node.rpc_url / SAHARA_NODE_RPC_URL.",
        ) from exc
    return client


def node_status(rpc_url: str, timeout: float, paths: NodePaths | None = None) -> NodeStatus:
    """What the node at ``rpc_url`` reports of itself; ``local_pid`` is set when it is the
    background node of the home whose ``paths`` are given."""
    from sahara_cli.node.results import NodeStatus

    client = require_reachable(rpc_url, timeout)
    try:
        info = client.node_info()
    finally:
        client.close()
    local = paths.runtime() if paths is not None else None
    local_pid = local.get("pid") if local and local.get("rpc_url") == rpc_url else None
    return NodeStatus.from_node_info(info, rpc_url=rpc_url, local_pid=local_pid)


def node_log(paths: NodePaths, lines: int) -> NodeLog:
    """The last ``lines`` of the background node's log."""
    from sahara_cli.node.results import NodeLog

    return NodeLog(path=str(paths.log_file), lines=tail_lines(paths.log_file, lines))


def reset_chain(paths: NodePaths, confirm: Callable[[str], object] = lambda _q: None) -> ChainReset:
    """Delete the home's chain data (a stopped node's only); ``confirm(question)`` is asked
    first and raises to refuse."""
    import shutil

    from sahara_cli.node.results import ChainReset

    pid = paths.running_pid()
    if pid is not None:
        raise NodeRunning(f"the node is running (pid {pid})", hint="Run 'sahara node stop' first.")
    chain = paths.chain
    existed = chain.exists() or chain.is_symlink()
    if existed:
        confirm(f"Delete the chain data in {chain}?")
        if chain.is_dir() and not chain.is_symlink():
            shutil.rmtree(chain)
        else:
            chain.unlink()
    return ChainReset(deleted=existed, path=str(chain))
