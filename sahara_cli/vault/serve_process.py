"""``vault serve`` in the background: ``--detach``, ``serve-status``, ``serve-stop``.

Like the node's background process (:mod:`sahara_cli.node.process`): files in
``<home>/vault/``: ``serve.pid``, ``serve.json`` (what the running server serves: pid,
URL, address, ID, start time; written by the server once it listens, removed when it
stops) and ``serve.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sahara_cli.errors import VaultPortInUse, VaultServeRunning, VaultServeStartFailed
from sahara_cli.fsutil import atomic_write, ensure_private_dir
from sahara_cli.procutil import listen_error, live_pid, read_runtime
from sahara_cli.vault.results import ServeResult, ServeStatus, ServeStopped

__all__ = [
    "ServePaths",
    "check_can_serve",
    "check_listenable",
    "serve_status",
    "start_serving",
    "stop_serving",
]


@dataclass(frozen=True)
class ServePaths:
    root: Path

    @classmethod
    def of_home(cls, home: Path) -> ServePaths:
        return cls(home / "vault")

    @property
    def pid_file(self) -> Path:
        return self.root / "serve.pid"

    @property
    def runtime_file(self) -> Path:
        return self.root / "serve.json"

    @property
    def log_file(self) -> Path:
        return self.root / "serve.log"

    def runtime(self) -> dict[str, Any] | None:
        return read_runtime(self.runtime_file)

    def running_pid(self) -> int | None:
        """The pid of this home's live vault server, or None (a stale pid file is ignored)."""
        return live_pid(self.pid_file)

    def announce(self, info: dict[str, Any]) -> None:
        """Called by the serving process once it listens."""
        ensure_private_dir(self.root)
        atomic_write(self.pid_file, f"{os.getpid()}\n".encode())
        atomic_write(self.runtime_file, json.dumps(info).encode())

    def forget(self, pid: int | None = None) -> None:
        """Remove the pid and runtime files (only those of ``pid`` when given)."""
        if pid is not None and (self.runtime() or {}).get("pid") not in (pid, None):
            return
        for path in (self.pid_file, self.runtime_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def check_listenable(host: str, port: int) -> None:
    """``vault.port_in_use`` when ``host:port`` cannot be listened on now."""
    exc = listen_error(host, port)
    if exc is not None:
        raise VaultPortInUse(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="Pass another --addr HOST:PORT.",
        )


def check_can_serve(paths: ServePaths, host: str, port: int) -> None:
    """Before serving: ``vault.serve_running`` when this home's server runs (another
    process than this one), ``vault.port_in_use`` when the port is taken."""
    pid = paths.running_pid()
    if pid is not None and pid != os.getpid():
        raise VaultServeRunning(
            f"the vault server of this home runs already (pid {pid})",
            hint="Run 'sahara vault serve-stop' first.",
        )
    check_listenable(host, port)


def _tail(path: Path, count: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-count:]
    except FileNotFoundError:
        return []


def start_serving(
    paths: ServePaths,
    args: list[str],
    password: str | None,
    timeout: float = 60.0,
    *,
    address: tuple[str, int] | None = None,
) -> ServeResult:
    """Run ``sahara <args>`` (a ``vault serve``) detached, logging to ``serve.log``;
    returns once it listens. ``password`` goes to it on stdin, never in its environment.
    ``address`` (HOST, PORT) is checked first: a port in use is ``vault.port_in_use``."""
    ensure_private_dir(paths.root)
    if address is not None:
        check_can_serve(paths, *address)
    elif (pid := paths.running_pid()) is not None:
        raise VaultServeRunning(
            f"the vault server of this home runs already (pid {pid})",
            hint="Run 'sahara vault serve-stop' first.",
        )
    paths.forget()
    env = {k: v for k, v in os.environ.items() if k != "SAHARA_PASSWORD"}
    command = [sys.executable, "-m", "sahara_cli", *args]
    if password is not None:
        command += ["--password-file", "/dev/stdin"]
    with paths.log_file.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603  # our own interpreter and module
            command,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    assert process.stdin is not None
    if password is not None:
        process.stdin.write(password.encode() + b"\n")
    process.stdin.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            errors = [line for line in _tail(paths.log_file, 20) if line.startswith("error:")]
            reason = errors[-1].removeprefix("error:").strip() if errors else "no output"
            if reason.startswith("cannot listen on"):  # taken since the check
                raise VaultPortInUse(reason, hint="Pass another --addr HOST:PORT.")
            raise VaultServeStartFailed(
                f"the vault server exited with status {code} while starting: {reason}",
                hint=f"See {paths.log_file}.",
            )
        info = paths.runtime()
        if info and info.get("pid") == process.pid:
            return ServeResult(
                stopped=False,
                addr=info["addr"],
                detached=True,
                pid=process.pid,
                url=info["url"],
                log=str(paths.log_file),
            )
        time.sleep(0.05)
    process.terminate()
    raise VaultServeStartFailed(
        f"the vault server did not listen within {timeout:g} s", hint=f"See {paths.log_file}."
    )


def stop_serving(paths: ServePaths, timeout: float = 30.0) -> ServeStopped:
    """Stop this home's background vault server (SIGTERM, SIGKILL after ``timeout``)."""
    pid = paths.running_pid()
    if pid is None:
        paths.forget()
        return ServeStopped(stopped=False, pid=None, killed=False)
    os.kill(pid, signal.SIGTERM)
    killed = False
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.05)
    paths.forget()
    return ServeStopped(stopped=True, pid=pid, killed=killed)


def serve_status(paths: ServePaths) -> ServeStatus:
    """Whether this home's vault server runs: its URL, pid and uptime."""
    pid = paths.running_pid()
    info = paths.runtime() if pid is not None else None
    if pid is None or info is None:
        return ServeStatus(running=False, log=str(paths.log_file))
    started = float(info.get("started", time.time()))
    return ServeStatus(
        running=True,
        pid=pid,
        url=info.get("url"),
        addr=info.get("addr"),
        started_at=started,
        uptime_s=round(max(0.0, time.time() - started), 1),
        log=str(paths.log_file),
    )
