"""Helpers for tests that run our ABCI server, alone or under a real CometBFT node.

The cometbft binary is the library's lookup (``SAHARA_COMETBFT_BIN``, the project's cache
where ``scripts/_setup.sh`` and ``sahara setup cometbft`` build v0.38.25, then PATH), done
when this module is imported, because ``tests/conftest.py`` clears every ``SAHARA_*``
variable around each test.

* :func:`serving` runs an :class:`~sahara_cli.node.abci.server.ABCIServer` on an event
  loop in a background thread and yields the address it listens on.
* :class:`CometNode` is one ``cometbft`` home: init, loopback-only config, start, RPC,
  stop (always, from a ``finally``).
* :class:`AppProcess` runs the Sahara application (``python -m sahara_cli.node.abci``)
  as a child process, for CometBFT to connect to.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sahara_cli.gobin import COMETBFT
from sahara_cli.node.abci.server import ABCIServer, Application
from tests.gobin import found_binary

COMETBFT_BIN: str | None = found_binary(COMETBFT)


def cometbft_bin() -> str:
    """The cometbft binary; fails the test with what to do when there is none."""
    if not COMETBFT_BIN:
        pytest.fail(
            "CometBFT was not found (SAHARA_COMETBFT_BIN, the cache, PATH): run 'sahara "
            "setup cometbft', run the tests through scripts/test, or export "
            "SAHARA_COMETBFT_BIN=/path/to/cometbft",
            pytrace=False,
        )
    if not Path(COMETBFT_BIN).is_file():
        pytest.fail(f"SAHARA_COMETBFT_BIN={COMETBFT_BIN} is not a file", pytrace=False)
    return COMETBFT_BIN


def free_port() -> int:
    """A loopback TCP port free right now (for processes that cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(app: Application, address: str = "tcp://127.0.0.1:0") -> Iterator[str]:
    """Serves ``app`` on a loop in a background thread; yields the bound address. The
    server and every connection are closed when the block ends."""
    loop = asyncio.new_event_loop()
    server = ABCIServer(app, address)
    thread = threading.Thread(target=loop.run_forever, name="abci-server", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
        yield server.address
    finally:
        try:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()


def _set(text: str, section: str | None, key: str, value: str) -> str:
    """``key = value`` in ``[section]`` (None: the top level) of a config.toml text."""
    start = 0
    if section is not None:
        head = re.search(rf"^\[{re.escape(section)}\]\s*$", text, re.M)
        assert head, f"no [{section}] in config.toml"
        start = head.end()
    nxt = re.compile(r"^\[", re.M).search(text, start)
    end = nxt.start() if nxt else len(text)
    body, n = re.subn(
        rf"^{re.escape(key)}\s*=.*$", f"{key} = {value}", text[start:end], count=1, flags=re.M
    )
    assert n == 1, f"no {key} in [{section}] of config.toml"
    return text[:start] + body + text[end:]


class CometNode:
    """A single-validator CometBFT node on ``home``, loopback only, run as a child."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.rpc_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / "cometbft.log"

    def init(self) -> None:
        subprocess.run(
            [cometbft_bin(), "init", "--home", str(self.home)],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def configure(
        self, proxy_app: str, *, timeout_commit: str = "200ms", rpc_port: int | None = None
    ) -> None:
        """Fresh free ports for RPC (``rpc_port`` when given: one chosen earlier, e.g. to
        tell the application where CometBFT's RPC will be) and P2P, ``proxy_app`` as the
        ABCI address, short block times, empty blocks on (so heights advance without
        transactions)."""
        self.rpc_port = rpc_port or free_port()
        path = self.home / "config" / "config.toml"
        text = path.read_text()
        for section, key, value in [
            (None, "proxy_app", f'"{proxy_app}"'),
            (None, "log_level", '"error"'),
            ("rpc", "laddr", f'"tcp://127.0.0.1:{self.rpc_port}"'),
            ("p2p", "laddr", f'"tcp://127.0.0.1:{free_port()}"'),
            ("consensus", "timeout_commit", f'"{timeout_commit}"'),
            ("consensus", "create_empty_blocks", "true"),
            ("instrumentation", "prometheus", "false"),
        ]:
            text = _set(text, section, key, value)
        path.write_text(text)

    def start(self, *, timeout: float = 20.0) -> None:
        """Starts ``cometbft node`` and waits until it has made a block."""
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [cometbft_bin(), "node", "--home", str(self.home)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_height(1, timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a clean stop, state flushed), then SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def rpc(self, method: str, timeout: float = 15.0, **params: str) -> Any:
        """GET ``/method?k=v`` on the node's RPC; the ``result`` of the JSON-RPC answer.
        String arguments are passed quoted (``tx="a=b"``), as CometBFT's URI form wants."""
        return self._get(method, {k: f'"{v}"' for k, v in params.items()}, timeout)

    def rpc_raw(self, method: str, timeout: float = 15.0, **params: str) -> Any:
        """:meth:`rpc` with arguments passed as they are: ``tx=0x0102`` is hex bytes,
        ``height=5`` a number."""
        return self._get(method, params, timeout)

    def _get(self, method: str, params: dict[str, str], timeout: float) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.rpc_port}/{method}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                doc = json.load(resp)
        except urllib.error.HTTPError as exc:  # CometBFT answers errors with a 500 too
            try:
                doc = json.load(exc)
            except ValueError:
                raise exc from None
        if "error" in doc:
            raise RuntimeError(f"{method}: {doc['error']}")
        return doc["result"]

    def height(self) -> int:
        return int(self.rpc("status")["sync_info"]["latest_block_height"])

    def wait_height(self, height: int, *, timeout: float = 20.0) -> int:
        """Waits until the chain is at ``height`` or above; returns the height seen."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"cometbft exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                now = self.height()
                if now >= height:
                    return now
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                last = exc
            time.sleep(0.05)
        raise TimeoutError(f"no block {height} after {timeout}s ({last}):\n{self.log_tail()}")

    def query(self, key: bytes) -> dict[str, Any]:
        """``abci_query`` of ``key``; the ``response`` with ``value`` decoded to bytes."""
        resp: dict[str, Any] = self.rpc("abci_query", data=key.decode())["response"]
        resp["value"] = base64.b64decode(resp["value"] or "")
        return resp

    def broadcast(self, raw: bytes, mode: str = "commit", timeout: float = 30.0) -> Any:
        """``broadcast_tx_<mode>`` of the transaction bytes ``raw`` (sent as hex)."""
        return self.rpc_raw(f"broadcast_tx_{mode}", timeout, tx="0x" + raw.hex())

    def abci_query(self, path: str, data: bytes = b"", height: int = 0) -> dict[str, Any]:
        """``abci_query`` with a ``path`` and binary ``data``; the ``response``, with
        ``value`` decoded to bytes and ``code`` and ``height`` to ints."""
        params = {"path": f'"{path}"', "height": str(height)}
        if data:
            params["data"] = "0x" + data.hex()
        resp: dict[str, Any] = self._get("abci_query", params, 15.0)["response"]
        resp["value"] = base64.b64decode(resp.get("value") or "")
        resp["code"] = int(resp.get("code") or 0)
        resp["height"] = int(resp.get("height") or 0)
        return resp


class AppProcess:
    """The Sahara ABCI application (``python -m sahara_cli.node.abci``) as a child
    process on ``home``, listening on a free loopback port."""

    def __init__(self, home: Path, *extra: str) -> None:
        self.home = home
        self.extra = extra
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / "app.log"

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60.0) -> None:
        """Starts the application and waits until it accepts connections."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cmd = [sys.executable, "-m", "sahara_cli.node.abci", "--home", str(self.home)]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [*cmd, "--abci", self.address, *self.extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the app exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            with socket.socket() as sock:
                sock.settimeout(1.0)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"the app did not listen within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (the app closes its database), then SIGKILL if it lingers; returns
        the exit status (None when it was not running)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        return proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@contextmanager
def running_app(app: AppProcess) -> Iterator[AppProcess]:
    """Starts ``app``; stops it when the block ends, even on failure."""
    try:
        app.start()
        yield app
    finally:
        app.stop()


@contextmanager
def running_node(node: CometNode) -> Iterator[CometNode]:
    """Starts ``node``; stops it (no orphan) when the block ends, even on failure."""
    try:
        node.start()
        yield node
    finally:
        node.stop()
