"""``vault serve`` on a port in use: ``vault.port_in_use`` at once, before the chain is
asked (no node runs here), in the foreground and with ``--detach``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, Invoke


@pytest.mark.parametrize("detach", [[], ["--detach"]], ids=["foreground", "detach"])
def test_a_port_in_use_is_named(
    cli: Invoke, initialised: Path, monkeypatch: pytest.MonkeyPatch, detach: list[str]
) -> None:
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli(
            "--json", "--no-prompt", "vault", "serve", "--addr", f"127.0.0.1:{port}", *detach
        )
    assert result.exit_code == 7, result.stderr
    error = result.error()
    assert error["code"] == "vault.port_in_use"
    assert f"127.0.0.1:{port}" in error["message"]
    assert not (initialised / "vault" / "serve.pid").exists()
