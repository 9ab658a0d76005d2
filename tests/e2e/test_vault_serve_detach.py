"""``vault serve --detach`` with ``serve-status`` and ``serve-stop``, like the node's
``start``, ``status`` and ``stop``: a pid file and a log in the home, a stop that waits."""

from __future__ import annotations

import json
import os
import socket

import httpx
import pytest

from sahara_cli.errors import ExitCode
from tests.e2e.cli_home import CliHome
from tests.e2e.nodes import free_port
from tests.e2e.test_vault_cli import owner  # noqa: F401  # the fixture: a home and a node

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_detached_server_life_cycle(owner: CliHome) -> None:  # noqa: F811
    assert owner.ok("vault", "serve-status")["running"] is False
    started = owner.ok("vault", "serve", "--detach")
    try:
        assert started["detached"] is True and started["stopped"] is False
        addr = owner.env["SAHARA_VAULT_SERVE_ADDR"]
        assert (started["addr"], started["url"]) == (addr, f"http://{addr}")
        assert started["log"] == str(owner.root / "vault" / "serve.log")
        pid = started["pid"]
        assert alive(pid)
        httpx.get(started["url"] + "/v1/info", timeout=10).raise_for_status()

        status = owner.ok("vault", "serve-status")
        assert status["running"] is True
        assert (status["pid"], status["url"], status["addr"]) == (pid, started["url"], addr)
        assert status["uptime_s"] >= 0 and status["started_at"]

        for args in (["--detach"], ["--addr", f"127.0.0.1:{free_port()}"]):
            again = owner.run("vault", "serve", *args)
            assert again.returncode == ExitCode.CONFLICT, again.stderr
            assert json.loads(again.stderr)["error"]["code"] == "vault.serve_running"
    finally:
        stopped = owner.ok("vault", "serve-stop")
    assert stopped == {"stopped": True, "pid": pid, "killed": False}
    assert not alive(pid)
    assert not (owner.root / "vault" / "serve.pid").exists()
    assert owner.ok("vault", "serve-status")["running"] is False
    assert owner.ok("vault", "serve-stop")["stopped"] is False


def test_detach_on_a_port_in_use_is_one_clear_error(owner: CliHome) -> None:  # noqa: F811
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = owner.run("vault", "serve", "--detach", "--addr", f"127.0.0.1:{port}")
    assert result.returncode == ExitCode.CONFLICT, result.stderr
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "vault.port_in_use" and str(port) in error["message"]
    assert owner.ok("vault", "serve-status")["running"] is False
