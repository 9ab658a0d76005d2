"""Start and stop the JSON-RPC nodes that the end-to-end tests and benchmarks talk to.

Two kinds, one interface (``start_node(kind)`` returns a ``RunningNode``):

- ``hardhat``: Hardhat's node, the reference. It runs on the Node.js 22 binary and the
  npm packages that ``scripts/_setup.sh`` installs into the cache (``SAHARA_NODE22``,
  ``SAHARA_NODE_MODULES``). Hardhat 3 looks for its config from the working directory
  and insists that the ``hardhat`` package it resolves from there is the one running,
  inside an ESM package; so each node gets a scratch project folder holding a copy of
  ``js/hardhat.config.js`` and ``js/package.json`` and a ``node_modules`` link to the
  cache. The folder also takes the node's log and the ``artifacts/`` it creates, and is
  removed when the node stops.
- ``sahara``: ``sahara node run --dev --rpc-addr 127.0.0.1:PORT`` with a scratch
  ``SAHARA_HOME`` (and no other SAHARA_* setting of the caller's).
- ``localnet``: ``sahara localnet`` (the library behind it) with N CometBFT validators
  (``SAHARA_E2E_VALIDATORS``, 1 by default) in a scratch folder; the node is validator
  0's JSON-RPC. Its genesis funds the ten dev accounts, but a validator serves no dev
  methods (``evm_mine``, snapshots...).
- any command line, ``{port}`` in it replaced by the port (``start_command``).

A node listens on a free loopback port (so pytest-xdist workers can each run one) and is
ready when ``eth_chainId`` answers; waiting polls with a deadline. A node that exits
first raises ``NodeStartError`` with the end of its log.

    python -m tests.e2e.nodes hardhat [--port N]   run one in the foreground (Ctrl-C stops)
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "js"
KINDS = ("hardhat", "sahara", "localnet")
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 3


class NodeStartError(RuntimeError):
    """A node did not come up: missing tools, an early exit, or no answer in time."""


class _Stoppable:
    """A started node as a ``with`` block: leaving it calls ``stop()``."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class RunningNode(_Stoppable):
    """A node process we started; ``stop()`` (or leaving a ``with`` block) ends it."""

    kind: str
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        shutil.rmtree(self.workdir, ignore_errors=True)


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc(url: str, method: str, params: Sequence[Any] = (), timeout: float = 10.0) -> Any:
    """One JSON-RPC call; raises ``RuntimeError`` with the node's error object."""
    reply = httpx.post(
        url,
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
        timeout=timeout,
    )
    reply.raise_for_status()
    doc = reply.json()
    if "error" in doc:
        raise RuntimeError(f"{method}: {doc['error']}")
    return doc["result"]


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``eth_chainId`` until it answers; fail fast when the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise NodeStartError(f"exited with status {process.returncode} before answering")
        try:
            rpc(url, "eth_chainId", timeout=2.0)
            return
        except (httpx.TransportError, httpx.HTTPStatusError, RuntimeError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise NodeStartError(f"no answer from {url} within {timeout:.0f} s")
        # Not a sleep that stands for "long enough": a short pause between polls.
        time.sleep(0.05)


def node_tools(node_modules: str | None = None, node22: str | None = None) -> tuple[Path, Path]:
    """The cached npm packages and Node.js 22 binary, or a ``NodeStartError`` saying why."""
    modules = node_modules or os.environ.get("SAHARA_NODE_MODULES")
    binary = node22 or os.environ.get("SAHARA_NODE22")
    if not modules or not binary:
        raise NodeStartError(
            "SAHARA_NODE_MODULES / SAHARA_NODE22 are not set: run through scripts/test, "
            "or `source scripts/_setup.sh` first (it installs js/package-lock.json with npm)"
        )
    modules_path, binary_path = Path(modules), Path(binary)
    if not (modules_path / "hardhat" / "package.json").is_file():
        raise NodeStartError(f"hardhat is not installed under {modules_path}")
    if not os.access(binary_path, os.X_OK):
        raise NodeStartError(f"no Node.js binary at {binary_path}")
    return modules_path, binary_path


def hardhat_cli(node_modules: Path) -> Path:
    """Hardhat's command-line entry, as its package.json names it."""
    package = json.loads((node_modules / "hardhat" / "package.json").read_text())
    bin_field = package["bin"]
    entry = bin_field["hardhat"] if isinstance(bin_field, dict) else bin_field
    return (node_modules / "hardhat" / entry).resolve()


def _spawn(
    kind: str,
    argv_for_port: Any,
    *,
    port: int | None,
    workdir: Path,
    env: dict[str, str],
    startup_timeout: float,
) -> RunningNode:
    """Start ``argv_for_port(port)`` in ``workdir`` and wait for it; retry a taken port."""
    log_path = workdir / "node.log"
    attempts = 1 if port is not None else PORT_ATTEMPTS
    last_error: NodeStartError | None = None
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        url = f"http://127.0.0.1:{chosen}"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv_for_port(chosen),
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        node = RunningNode(kind, url, process, workdir, log_path)
        try:
            wait_until_ready(url, process, startup_timeout)
            # Stopped by its owner; this is the fallback when the owner is interrupted.
            atexit.register(node.stop)
            return node
        except NodeStartError as exc:
            tail = node.log_tail()
            if process.poll() is None:
                process.kill()
                process.wait()
            last_error = NodeStartError(f"{kind} node: {exc}\n--- log ---\n{tail}")
            if "EADDRINUSE" not in tail and "address already in use" not in tail.lower():
                break
    shutil.rmtree(workdir, ignore_errors=True)
    assert last_error is not None
    raise last_error


def start_hardhat(
    port: int | None = None,
    *,
    node_modules: str | None = None,
    node22: str | None = None,
    quiet: bool = False,
    startup_timeout: float = STARTUP_TIMEOUT_S,
) -> RunningNode:
    """Hardhat's node (automine, chain id 31337, the ten test-mnemonic accounts funded).

    ``quiet`` turns off Hardhat's per-request console log once it is up (benchmarks).
    """
    modules, binary = node_tools(node_modules, node22)
    cli = hardhat_cli(modules)
    workdir = Path(tempfile.mkdtemp(prefix="sahara-hardhat-"))
    for name in ("hardhat.config.js", "package.json"):
        shutil.copyfile(JS_DIR / name, workdir / name)
    (workdir / "node_modules").symlink_to(modules, target_is_directory=True)
    env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY": "true", "NO_COLOR": "1"}

    def argv(chosen: int) -> list[str]:
        return [str(binary), str(cli), "node", "--hostname", "127.0.0.1", "--port", str(chosen)]

    node = _spawn(
        "hardhat", argv, port=port, workdir=workdir, env=env, startup_timeout=startup_timeout
    )
    if quiet:
        rpc(node.url, "hardhat_setLoggingEnabled", [False])
    return node


def sahara_executable() -> str:
    """The ``sahara`` script next to this interpreter (its venv), else the one on PATH."""
    found = shutil.which("sahara", path=str(Path(sys.executable).parent)) or shutil.which("sahara")
    if found is None:
        raise NodeStartError("no 'sahara' executable next to this Python or on PATH")
    return found


def start_command(
    command: str | Sequence[str],
    port: int | None = None,
    *,
    kind: str = "command",
    env: dict[str, str] | None = None,
    workdir: Path | None = None,
    startup_timeout: float = STARTUP_TIMEOUT_S,
) -> RunningNode:
    """Any node started by a command line; ``{port}`` in it is replaced by the port.

    It runs in ``workdir`` (a new scratch folder by default), which ``stop()`` removes,
    with the environment ``env`` (by default this process's).
    """
    words = shlex.split(command) if isinstance(command, str) else list(command)
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"sahara-{kind}-"))

    def argv(chosen: int) -> list[str]:
        return [word.replace("{port}", str(chosen)) for word in words]

    return _spawn(
        kind,
        argv,
        port=port,
        workdir=workdir,
        env=dict(os.environ) if env is None else env,
        startup_timeout=startup_timeout,
    )


def start_sahara(
    port: int | None = None, *, startup_timeout: float = STARTUP_TIMEOUT_S
) -> RunningNode:
    """``sahara node run --dev`` on a scratch home inside the node's scratch folder, with
    no SAHARA_* setting of the caller's (home, node URL, password) leaking in."""
    try:
        executable = sahara_executable()
        workdir = Path(tempfile.mkdtemp(prefix="sahara-node-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
        env["SAHARA_HOME"] = str(workdir / "home")
        return start_command(
            [executable, "node", "run", "--dev", "--rpc-addr", "127.0.0.1:{port}"],
            port,
            kind="sahara",
            env=env,
            workdir=workdir,
            startup_timeout=startup_timeout,
        )
    except NodeStartError as exc:
        raise NodeStartError(
            f"{exc}\n(`sahara node run --dev --rpc-addr 127.0.0.1:PORT` must start a dev node "
            "that answers JSON-RPC; is sahara_cli/node/ written yet?)"
        ) from exc


@dataclass
class RunningLocalnet(_Stoppable):
    """A ``sahara localnet`` we started; ``url`` is validator 0's JSON-RPC, ``urls``
    every validator's. ``stop()`` runs ``down`` (every process) and removes the folder."""

    kind: str
    url: str
    urls: list[str]
    net: Any  # sahara_cli.node.localnet.Localnet
    workdir: Path

    @property
    def pid(self) -> int:
        pids: list[int] = self.net.running_pids()
        return pids[0] if pids else 0

    def rss_bytes(self) -> int:
        return sum(rss_bytes(pid) for pid in self.net.running_pids())

    def log_tail(self, lines: int = 40) -> str:
        logs = self.net.logs(0, lines)
        return "\n".join(logs.app.lines + logs.cometbft.lines)

    def stop(self) -> None:
        atexit.unregister(self.stop)
        try:
            self.net.down()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_localnet(
    validators: int = 1,
    *,
    block_time: float = 0.2,
    cometbft_bin: str | None = None,
    startup_timeout: float = 120.0,
) -> RunningLocalnet:
    """``validators`` CometBFT validators with their Sahara apps on loopback, blocks every
    ``block_time`` seconds; returns once validator 0's JSON-RPC answers."""
    from sahara_cli.errors import SaharaError
    from sahara_cli.node.localnet import Localnet

    workdir = Path(tempfile.mkdtemp(prefix="sahara-localnet-"))
    net = Localnet(workdir / "localnet")
    try:
        info = net.up(validators, block_time, cometbft_bin=cometbft_bin, timeout=startup_timeout)
    except SaharaError as exc:
        net.down()
        shutil.rmtree(workdir, ignore_errors=True)
        raise NodeStartError(f"localnet of {validators}: {exc.message}") from exc
    urls = [n.eth_rpc_url for n in info.nodes]
    node = RunningLocalnet("localnet", urls[0], urls, net, workdir)
    atexit.register(node.stop)
    try:
        for url in urls:
            deadline = time.monotonic() + startup_timeout
            while True:
                try:
                    rpc(url, "eth_chainId", timeout=2.0)
                    break
                except (httpx.TransportError, httpx.HTTPStatusError, RuntimeError, ValueError):
                    if time.monotonic() > deadline:
                        raise NodeStartError(f"no answer from {url}") from None
                    time.sleep(0.05)
    except BaseException:
        node.stop()
        raise
    return node


def start_node(kind: str, port: int | None = None, **options: Any) -> Any:
    """Start a node of ``kind`` (one of ``KINDS``): a ``RunningNode``, or for
    ``localnet`` a ``RunningLocalnet`` (same ``url``, ``stop`` and ``with``)."""
    if kind == "hardhat":
        return start_hardhat(port, **options)
    if kind == "sahara":
        return start_sahara(port, **options)
    if kind == "localnet":
        return start_localnet(**options)
    raise NodeStartError(f"unknown node kind {kind!r}: choose one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class DevMethods:
    """Dev-chain RPC methods that differ between nodes; ``None``: the node has none."""

    set_automine: str | None
    mine: str | None


DEV_METHODS = {
    "hardhat": DevMethods(set_automine="evm_setAutomine", mine="evm_mine"),
    # The sahara node has no way yet to turn instant mining off and on.
    "sahara": DevMethods(set_automine="sahara_dev_setAutomine", mine="sahara_dev_mine"),
    # A validator serves no dev methods: CometBFT decides when blocks come.
    "localnet": DevMethods(set_automine=None, mine=None),
}


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process and every process under it, from /proc.

    ``field`` is a /proc/PID/status line: ``VmRSS`` (all resident pages) or ``RssAnon``
    (the heap alone, without file pages such as a memory-mapped database).
    """
    return sum(_vm_rss(each, field) for each in _process_tree(pid))


def _process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in children.read_text().split())
    return pids


def _vm_rss(pid: int, field: str = "VmRSS") -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one node in the foreground.")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        node = start_node(args.kind, args.port)
    except NodeStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with node:
        if isinstance(node, RunningLocalnet):
            print(f"localnet at {' '.join(node.urls)}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
            return 0
        print(f"{args.kind} node at {node.url} (pid {node.pid}, log {node.log_path})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            node.process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
