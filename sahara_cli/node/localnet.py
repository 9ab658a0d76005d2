"""A local network of N CometBFT validators on 127.0.0.1, each with its Sahara app.

Layout under ``<home>/localnet/`` (the *root*)::

    localnet.json          ports, pids and the binary of every node (what runs)
    node<I>/               CometBFT's home of validator I (``cometbft testnet``)
    node<I>/app/           the Sahara application's data (``python -m sahara_cli.node.abci``)
    node<I>/logs/          app.log and cometbft.log

Every process runs detached (its own session) so that the network outlives the command
that started it; :meth:`Localnet.down` stops them by their recorded pids.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    CometBFTError,
    LocalnetExists,
    LocalnetNodeUnknown,
    LocalnetNotFound,
    LocalnetPortInUse,
    LocalnetRunning,
    LocalnetStartFailed,
    UsageError,
)
from sahara_cli.fsutil import atomic_write
from sahara_cli.gobin import COMETBFT, find_binary
from sahara_cli.node.cometbft import CometRPC

if TYPE_CHECKING:
    from sahara_cli.node.results import (
        LocalnetDown,
        LocalnetLogs,
        LocalnetNodeStarted,
        LocalnetNodeStopped,
        LocalnetStatus,
    )

HOST = "127.0.0.1"
PORT_NAMES = ("p2p", "rpc", "abci", "eth_rpc")
MAX_VALIDATORS = 32
#: A new localnet's validators and block time when ``up`` is not told.
DEFAULT_VALIDATORS = 4
DEFAULT_BLOCK_TIME = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


#: Where a localnet's saved ports are drawn from when the system's ephemeral range
#: cannot be read (Linux's default range starts at 32768, macOS's at 49152).
SAVED_PORTS_LOW = 20000
EPHEMERAL_LOW_DEFAULT = 32768


def ephemeral_low() -> int:
    """The first port of the range the system hands out to outgoing connections."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_LOW_DEFAULT


def saved_port(used: set[int], *, rng: random.Random | None = None) -> int:
    """A free port for a localnet to keep across stops and starts.

    Drawn below the ephemeral range: a port from ``bind(0)`` is in it, and while the
    localnet is stopped any program's outgoing connection may take it, so that the
    localnet could not start again on its ports.
    """
    pick = rng or random.SystemRandom()
    high = ephemeral_low() - 1
    low = SAVED_PORTS_LOW if high - SAVED_PORTS_LOW >= 1000 else 1024
    for _ in range(200):
        port = pick.randint(low, high)
        if port not in used and port_free(port):
            return port
    port = free_port()  # the range below is full: fall back to one the system picks
    while port in used:
        port = free_port()
    return port


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As CometBFT and the app bind (SO_REUSEADDR): a port whose last connections
        # linger in TIME_WAIT after a stop is free again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def tail(path: Path, count: int) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []
    return lines[-count:] if count > 0 else []


def set_toml(text: str, section: str | None, key: str, value: str) -> str:
    """``key = value`` in ``[section]`` (None: the top level) of a config.toml text."""
    start = 0
    if section is not None:
        head = re.search(rf"^\[{re.escape(section)}\]\s*$", text, re.M)
        if head is None:
            raise LocalnetStartFailed(f"CometBFT's config.toml has no [{section}] section")
        start = head.end()
    nxt = re.compile(r"^\[", re.M).search(text, start)
    end = nxt.start() if nxt else len(text)
    body, n = re.subn(
        rf"^{re.escape(key)}\s*=.*$", f"{key} = {value}", text[start:end], count=1, flags=re.M
    )
    if n != 1:
        raise LocalnetStartFailed(f"CometBFT's config.toml has no {key} in [{section}]")
    return text[:start] + body + text[end:]


def node_id(home: Path) -> str:
    """The P2P node id of a CometBFT home: the first 20 bytes of SHA-256 of its ed25519
    public key, in hex (what ``cometbft show-node-id`` prints)."""
    doc = json.loads((home / "config" / "node_key.json").read_text())
    key = base64.b64decode(doc["priv_key"]["value"])
    return hashlib.sha256(key[32:]).digest()[:20].hex()


def millis(seconds: float) -> str:
    return f'"{max(1, round(seconds * 1000))}ms"'


def _alive(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` runs and (where /proc tells) is one of ours: its command line
    names ``marker`` (the node's directory), so a reused pid is never taken for it."""
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if we started it and it died
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.exists():
        try:
            cmd = cmdline.read_bytes().decode("utf-8", "replace")
        except OSError:
            return False
        return marker + "\0" in cmd or marker + "/" in cmd
    return True


def _terminate(pid: int | None, marker: str, timeout: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; True when it was running."""
    if not _alive(pid, marker):
        return False
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, marker):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid, marker):
        time.sleep(0.05)
    return True


def comet_rpc(port: int, timeout: float = 2.0) -> CometRPC:
    """The CometBFT RPC of a localnet node."""
    return CometRPC(f"http://{HOST}:{port}", timeout)


@dataclass
class NodeEntry:
    index: int
    ports: dict[str, int]
    app_pid: int | None = None
    comet_pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "ports": self.ports,
            "app_pid": self.app_pid,
            "comet_pid": self.comet_pid,
        }


class Localnet:
    """N validators on 127.0.0.1 under ``root`` (``<home>/localnet``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- layout ---------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.root / "localnet.json"

    def node_dir(self, i: int) -> Path:
        return self.root / f"node{i}"

    def log_file(self, i: int, which: str) -> Path:
        return self.node_dir(i) / "logs" / f"{which}.log"

    def _load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise LocalnetNotFound(
                f"no localnet in {self.root}",
                hint="Start one with 'sahara localnet up --validators 4'.",
            ) from None
        except ValueError as exc:
            raise LocalnetNotFound(
                f"{self.state_file} is unreadable: {exc}",
                hint="Run 'sahara localnet down --clean' and start a new one.",
            ) from None
        return data

    def _save(self, data: dict[str, Any]) -> None:
        atomic_write(self.state_file, json.dumps(data, indent=2).encode())

    def _nodes(self, data: dict[str, Any]) -> list[NodeEntry]:
        return [NodeEntry(**n) for n in data["nodes"]]

    def _store(self, data: dict[str, Any], nodes: list[NodeEntry]) -> None:
        data["nodes"] = [n.to_dict() for n in nodes]
        self._save(data)

    def _marker(self, i: int) -> str:
        return str(self.node_dir(i))

    def _entry(self, data: dict[str, Any], i: int) -> NodeEntry:
        nodes = self._nodes(data)
        if not 0 <= i < len(nodes):
            raise LocalnetNodeUnknown(
                f"no node {i}: the localnet has nodes 0 to {len(nodes) - 1}",
                hint="Run 'sahara localnet status' for the nodes.",
            )
        return nodes[i]

    def running_pids(self) -> list[int]:
        """Every pid of this localnet that still runs."""
        try:
            data = self._load()
        except LocalnetNotFound:
            return []
        pids = []
        for n in self._nodes(data):
            for pid in (n.app_pid, n.comet_pid):
                if pid and _alive(pid, self._marker(n.index)):
                    pids.append(pid)
        return pids

    # -- up -------------------------------------------------------------------------

    def up(
        self,
        validators: int | None = None,
        block_time: float | None = None,
        *,
        cometbft_bin: str | None = None,
        reset: bool = False,
        timeout: float = 90.0,
    ) -> LocalnetStatus:
        """Start the localnet; returns :meth:`status` once each node makes blocks.

        A stopped localnet resumes: the same genesis, keys and ports, its chain going on
        from the height it reached (``resumed`` is true); ``validators`` and
        ``block_time`` must then be None or its own. ``reset`` deletes it first for a new
        chain. Otherwise ``validators`` (default 4) nodes are created and started, and
        each reaches height 2. On any failure nothing is left running."""
        if validators is not None and not 1 <= validators <= MAX_VALIDATORS:
            raise UsageError(f"--validators must be 1 to {MAX_VALIDATORS}, got {validators}")
        if block_time is not None and block_time <= 0:
            raise UsageError(f"--block-time must be positive, got {block_time:g}")
        if self.running_pids():
            raise LocalnetRunning(
                f"a localnet runs already in {self.root}",
                hint="Run 'sahara localnet down' first.",
            )
        if reset and self.root.exists():
            shutil.rmtree(self.root)
        if self.state_file.exists():
            return self._resume(self._load(), validators, block_time, cometbft_bin, timeout)
        if self.root.exists() and any(self.root.iterdir()):
            raise LocalnetExists(
                f"{self.root} holds files but no localnet state",
                hint="Run 'sahara localnet up --reset' for a new localnet (it deletes them).",
            )
        validators = DEFAULT_VALIDATORS if validators is None else validators
        block_time = DEFAULT_BLOCK_TIME if block_time is None else block_time
        binary = find_binary(COMETBFT, cometbft_bin)
        nodes = self._create(binary, validators, block_time)
        data: dict[str, Any] = {
            "validators": validators,
            "block_time": block_time,
            "cometbft_bin": binary,
            "created": time.time(),
            "nodes": [],
        }
        self._store(data, nodes)
        self._start_all(data, nodes, binary, timeout, height=2)
        return self.status()

    def _start_all(
        self,
        data: dict[str, Any],
        nodes: list[NodeEntry],
        binary: str,
        timeout: float,
        *,
        height: int = 1,
    ) -> None:
        """Every app, then every CometBFT, until each node is at ``height``; on failure
        everything is stopped again."""
        try:
            for n in nodes:
                self._check_ports(n)
            for n in nodes:
                n.app_pid = self._spawn_app(n)
            self._store(data, nodes)
            for n in nodes:
                self._wait_listening(n, timeout=60.0)
            for n in nodes:
                n.comet_pid = self._spawn_comet(binary, n)
            self._store(data, nodes)
            self._wait_heights(nodes, height, timeout=timeout)
        except BaseException:
            self._stop_all(nodes)
            self._store(data, [NodeEntry(n.index, n.ports) for n in nodes])
            raise

    def _resume(
        self,
        data: dict[str, Any],
        validators: int | None,
        block_time: float | None,
        cometbft_bin: str | None,
        timeout: float,
    ) -> LocalnetStatus:
        """Start a stopped localnet again, on its data: its chain continues."""
        asked = {"--validators": validators, "--block-time": block_time}
        held = {"--validators": data["validators"], "--block-time": data["block_time"]}
        for option, value in asked.items():
            if value is not None and value != held[option]:
                raise LocalnetExists(
                    f"{self.root} holds a stopped localnet with {option} {held[option]:g}, "
                    f"not {value:g}",
                    hint=f"Leave {option} out to resume it, or add --reset to delete it "
                    "and start a new chain.",
                )
        binary = find_binary(COMETBFT, cometbft_bin or data.get("cometbft_bin"))
        nodes = [NodeEntry(n.index, n.ports) for n in self._nodes(data)]
        self._start_all(data, nodes, binary, timeout)
        try:  # blocks go on from where the chain stopped
            reached = max(self._height(n) or 0 for n in nodes)
            self._wait_heights(nodes, reached + 1, timeout=timeout)
        except BaseException:
            self._stop_all(nodes)
            self._store(data, [NodeEntry(n.index, n.ports) for n in nodes])
            raise
        return self.status().model_copy(update={"resumed": True})

    def _create(self, binary: str, validators: int, block_time: float) -> list[NodeEntry]:
        """``cometbft testnet`` into the root, then ports, peers and timeouts per node."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(  # noqa: S603  # the configured cometbft binary
                [
                    binary,
                    "testnet",
                    "--v",
                    str(validators),
                    "--o",
                    str(self.root),
                    "--starting-ip-address",
                    HOST,
                    "--populate-persistent-peers=false",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            out = getattr(exc, "stderr", b"") or getattr(exc, "stdout", b"") or b""
            lines = out.decode("utf-8", "replace").splitlines()[-20:]
            shutil.rmtree(self.root, ignore_errors=True)
            why = (
                f"status {exc.returncode}"
                if isinstance(exc, subprocess.CalledProcessError)
                else exc
            )
            raise LocalnetStartFailed(
                f"'{binary} testnet' failed ({why})" + (f": {lines[-1]}" if lines else ""),
                hint="Check that it is CometBFT v0.38 ('cometbft version').",
                details={"log": lines},
            ) from exc
        used: set[int] = set()
        nodes = []
        for i in range(validators):
            ports = {}
            for name in PORT_NAMES:
                port = saved_port(used)
                used.add(port)
                ports[name] = port
            nodes.append(NodeEntry(i, ports))
        ids = [node_id(self.node_dir(i)) for i in range(validators)]
        for n in nodes:
            peers = ",".join(
                f"{ids[o.index]}@{HOST}:{o.ports['p2p']}" for o in nodes if o.index != n.index
            )
            self._configure(n, peers, block_time)
            (self.node_dir(n.index) / "logs").mkdir(parents=True, exist_ok=True)
        return nodes

    def _configure(self, n: NodeEntry, peers: str, block_time: float) -> None:
        path = self.node_dir(n.index) / "config" / "config.toml"
        text = path.read_text()
        for section, key, value in [
            (None, "proxy_app", f'"tcp://{HOST}:{n.ports["abci"]}"'),
            (None, "moniker", f'"node{n.index}"'),
            (None, "log_level", '"info"'),
            ("rpc", "laddr", f'"tcp://{HOST}:{n.ports["rpc"]}"'),
            ("rpc", "pprof_laddr", '""'),
            ("p2p", "laddr", f'"tcp://{HOST}:{n.ports["p2p"]}"'),
            ("p2p", "external_address", f'"{HOST}:{n.ports["p2p"]}"'),
            ("p2p", "persistent_peers", f'"{peers}"'),
            ("p2p", "addr_book_strict", "false"),
            ("p2p", "allow_duplicate_ip", "true"),
            ("p2p", "pex", "false"),
            ("consensus", "timeout_commit", millis(block_time)),
            ("consensus", "timeout_propose", '"1s"'),
            ("consensus", "create_empty_blocks", "true"),
            ("instrumentation", "prometheus", "false"),
        ]:
            text = set_toml(text, section, key, value)
        path.write_text(text)

    def _check_ports(self, n: NodeEntry) -> None:
        for name, port in n.ports.items():
            if not port_free(port):
                raise LocalnetPortInUse(
                    f"port {port} ({name} of node {n.index}) on {HOST} is in use",
                    hint="Stop the program that uses it, or 'sahara localnet down --clean' "
                    "and start a new localnet (new ports).",
                )

    def _spawn(self, argv: list[str], log: Path) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603  # our interpreter, or cometbft
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return proc.pid

    def _spawn_app(self, n: NodeEntry) -> int:
        home = self.node_dir(n.index) / "app"
        home.mkdir(parents=True, exist_ok=True)
        return self._spawn(
            [
                sys.executable,
                "-m",
                "sahara_cli.node.abci",
                "--home",
                str(home),
                "--abci",
                f"tcp://{HOST}:{n.ports['abci']}",
                "--dev",
                "--rpc-addr",
                f"{HOST}:{n.ports['eth_rpc']}",
                "--comet-rpc",
                f"http://{HOST}:{n.ports['rpc']}",
            ],
            self.log_file(n.index, "app"),
        )

    def _spawn_comet(self, binary: str, n: NodeEntry) -> int:
        return self._spawn(
            [binary, "node", "--home", str(self.node_dir(n.index))],
            self.log_file(n.index, "cometbft"),
        )

    def _failure(self, n: NodeEntry, message: str) -> LocalnetStartFailed:
        log = {which: tail(self.log_file(n.index, which), 15) for which in ("app", "cometbft")}
        last = [line for lines in log.values() for line in lines[-3:]]
        return LocalnetStartFailed(
            f"{message}" + (": " + " | ".join(last[-3:]) if last else ""),
            hint=f"See the logs in {self.node_dir(n.index) / 'logs'}.",
            details={"node": n.index, "log": log},
        )

    def _wait_listening(self, n: NodeEntry, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(n.app_pid, self._marker(n.index)):
                raise self._failure(n, f"the app of node {n.index} exited while starting")
            with socket.socket() as sock:
                sock.settimeout(1.0)
                if sock.connect_ex((HOST, n.ports["abci"])) == 0:
                    return
            time.sleep(0.05)
        raise self._failure(n, f"the app of node {n.index} did not listen within {timeout:g} s")

    def _height(self, n: NodeEntry) -> int | None:
        try:
            return comet_rpc(n.ports["rpc"]).latest_height()
        except CometBFTError:
            return None

    def _wait_heights(self, nodes: list[NodeEntry], height: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        while pending:
            for n in list(pending):
                marker = self._marker(n.index)
                if not _alive(n.app_pid, marker):
                    raise self._failure(n, f"the app of node {n.index} exited")
                if not _alive(n.comet_pid, marker):
                    raise self._failure(n, f"cometbft of node {n.index} exited")
                now = self._height(n)
                if now is not None and now >= height:
                    pending.remove(n)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise self._failure(
                    pending[0],
                    f"node {pending[0].index} did not reach height {height} within {timeout:g} s",
                )
            time.sleep(0.1)

    # -- status ---------------------------------------------------------------------

    def status(self) -> LocalnetStatus:
        data = self._load()
        out = []
        for n in self._nodes(data):
            marker = self._marker(n.index)
            app_up = _alive(n.app_pid, marker)
            comet_up = _alive(n.comet_pid, marker)
            row: dict[str, Any] = {
                "index": n.index,
                "running": app_up and comet_up,
                "app_running": app_up,
                "cometbft_running": comet_up,
                "app_pid": n.app_pid if app_up else None,
                "cometbft_pid": n.comet_pid if comet_up else None,
                "height": None,
                "app_hash": None,
                "peers": None,
                "catching_up": None,
                "eth_rpc_url": f"http://{HOST}:{n.ports['eth_rpc']}",
                "cometbft_rpc_url": f"http://{HOST}:{n.ports['rpc']}",
                "ports": n.ports,
                "home": str(self.node_dir(n.index)),
            }
            if comet_up:
                with contextlib.suppress(CometBFTError, KeyError, TypeError):
                    sync = comet_rpc(n.ports["rpc"]).status()["sync_info"]
                    row["height"] = int(sync["latest_block_height"])
                    row["app_hash"] = sync["latest_app_hash"]
                    row["catching_up"] = bool(sync["catching_up"])
                with contextlib.suppress(CometBFTError, KeyError, TypeError, ValueError):
                    row["peers"] = int(comet_rpc(n.ports["rpc"]).call("net_info")["n_peers"])
            out.append(row)
        from sahara_cli.node.results import LocalnetStatus, hex_hash

        for row in out:
            row["app_hash"] = hex_hash(row["app_hash"])
        return LocalnetStatus(
            root=str(self.root),
            validators=data["validators"],
            block_time_s=data["block_time"],
            running=sum(1 for r in out if r["running"]),
            nodes=out,
        )

    # -- one node -------------------------------------------------------------------

    def stop_node(self, i: int) -> LocalnetNodeStopped:
        """Stop both processes of node ``i`` (CometBFT first, then its app)."""
        data = self._load()
        n = self._entry(data, i)
        marker = self._marker(i)
        stopped = {
            "cometbft": _terminate(n.comet_pid, marker),
            "app": _terminate(n.app_pid, marker),
        }
        nodes = self._nodes(data)
        nodes[i] = NodeEntry(i, n.ports)
        self._store(data, nodes)
        from sahara_cli.node.results import LocalnetNodeStopped

        return LocalnetNodeStopped(
            index=i, stopped=stopped["cometbft"] or stopped["app"], **stopped
        )

    def start_node(self, i: int, *, timeout: float = 60.0) -> LocalnetNodeStarted:
        """(Re)start node ``i`` on its ports; returns once its CometBFT RPC answers."""
        data = self._load()
        n = self._entry(data, i)
        marker = self._marker(i)
        if _alive(n.app_pid, marker) and _alive(n.comet_pid, marker):
            raise LocalnetRunning(
                f"node {i} runs already", hint=f"Run 'sahara localnet stop-node {i}' first."
            )
        _terminate(n.comet_pid, marker)
        _terminate(n.app_pid, marker)
        n = NodeEntry(i, n.ports)
        nodes = self._nodes(data)
        binary = find_binary(COMETBFT, data.get("cometbft_bin"))
        try:
            self._check_ports(n)
            n.app_pid = self._spawn_app(n)
            nodes[i] = n
            self._store(data, nodes)
            self._wait_listening(n, timeout=timeout)
            n.comet_pid = self._spawn_comet(binary, n)
            self._store(data, nodes)
            deadline = time.monotonic() + timeout
            while self._height(n) is None:
                if not _alive(n.comet_pid, marker):
                    raise self._failure(n, f"cometbft of node {i} exited")
                if time.monotonic() > deadline:
                    raise self._failure(n, f"node {i} did not answer within {timeout:g} s")
                time.sleep(0.1)
        except BaseException:
            _terminate(n.comet_pid, marker)
            _terminate(n.app_pid, marker)
            nodes[i] = NodeEntry(i, n.ports)
            self._store(data, nodes)
            raise
        from sahara_cli.node.results import LocalnetNodeStarted

        return LocalnetNodeStarted(
            index=i,
            app_pid=n.app_pid,
            cometbft_pid=n.comet_pid,
            height=self._height(n),
            eth_rpc_url=f"http://{HOST}:{n.ports['eth_rpc']}",
            cometbft_rpc_url=f"http://{HOST}:{n.ports['rpc']}",
        )

    def logs(self, i: int, lines: int = 50) -> LocalnetLogs:
        """The last ``lines`` of node ``i``'s app and CometBFT logs."""
        from sahara_cli.node.results import LocalnetLogs, LogTail

        self._entry(self._load(), i)
        app, comet = self.log_file(i, "app"), self.log_file(i, "cometbft")
        return LocalnetLogs(
            index=i,
            app=LogTail(path=str(app), lines=tail(app, lines)),
            cometbft=LogTail(path=str(comet), lines=tail(comet, lines)),
        )

    # -- down -----------------------------------------------------------------------

    def _stop_all(self, nodes: list[NodeEntry]) -> list[int]:
        stopped = []
        for n in nodes:  # every CometBFT first, so no app sees a half-stopped network
            if _terminate(n.comet_pid, self._marker(n.index)):
                stopped.append(n.comet_pid or 0)
        for n in nodes:
            if _terminate(n.app_pid, self._marker(n.index)):
                stopped.append(n.app_pid or 0)
        return stopped

    def down(self, *, clean: bool = False) -> LocalnetDown:
        """Stop every process of the localnet (those already dead are skipped); with
        ``clean`` also delete the root. No localnet is not an error."""
        stopped: list[int] = []
        existed = self.state_file.exists()
        if existed:
            try:
                data = self._load()
            except LocalnetNotFound:
                data = None
            if data is not None:
                nodes = self._nodes(data)
                stopped = self._stop_all(nodes)
                self._store(data, [NodeEntry(n.index, n.ports) for n in nodes])
        removed = False
        if clean and self.root.exists():
            shutil.rmtree(self.root)
            removed = True
        from sahara_cli.node.results import LocalnetDown

        return LocalnetDown(root=str(self.root), existed=existed, stopped=stopped, removed=removed)
