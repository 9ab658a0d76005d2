"""The first steps of the README in a fresh shell: after the set-up (scripts/test or
scripts/demo leave ``.venv/bin/sahara`` in the checkout), ``sahara`` is run with nothing in
the environment but ``HOME`` and a ``PATH`` that starts with ``.venv/bin``: no
``SAHARA_*`` variable, no ``PYTHONPATH``, no virtualenv activated. Everything the
scripts exported must be found by the CLI itself: the packages through the checkout's
venv, Kubo and CometBFT in the project's cache, the embedding model and llama.cpp in the
installed packages. Options go on the command line (``--home``, ``--password-file``,
``--rpc-addr``), as a user would type them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.nodes import free_port
from tests.install.tools import ROOT, clean_env
from tests.schemas import check

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VENV_BIN = ROOT / ".venv" / "bin"


class Shell:
    """``sahara --home HOME --json --no-prompt ...`` from the checkout's venv, in a
    clean environment and an empty working directory."""

    def __init__(self, home: Path, workdir: Path) -> None:
        self.home = home
        self.workdir = workdir

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sahara", "--home", str(self.home), "--json", "--no-prompt", *args],
            capture_output=True,
            text=True,
            env=clean_env(VENV_BIN),
            cwd=self.workdir,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 300) -> Any:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"sahara {' '.join(args)}:\n{result.stderr}"
        document = json.loads(result.stdout)
        check(args, document)
        return document


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    if not (VENV_BIN / "sahara").is_file():
        pytest.skip("no .venv/bin/sahara in this checkout: run scripts/test (or scripts/demo)")
    workdir = tmp_path / "work"
    workdir.mkdir()
    sh = Shell(tmp_path / "home", workdir)
    try:
        yield sh
    finally:
        sh.run("localnet", "down", "--clean", timeout=120)
        sh.run("node", "stop", timeout=60)


def test_readme_steps_work_in_a_fresh_shell(shell: Shell, tmp_path: Path) -> None:
    password = tmp_path / "password.txt"
    password.write_text("a fresh shell password\n")
    pw = ("--password-file", str(password))

    assert shell.ok("init", *pw)["created"] is True

    # A dev node, and the config pointing at it: no SAHARA_NODE_RPC_URL.
    port = free_port()
    started = shell.ok("node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}", *pw)
    assert started["rpc_url"] == f"http://127.0.0.1:{port}", started
    shell.ok("config", "set", "node.rpc_url", f"http://127.0.0.1:{port}")
    assert shell.ok("node", "status")["rpc_url"] == f"http://127.0.0.1:{port}"

    # The vault: an encrypted add, indexed with the packaged embedding model.
    notes = shell.workdir / "notes.md"
    notes.write_text("The quokkas drink at the creek below the lighthouse every evening.\n")
    added = shell.ok("vault", "add", str(notes), *pw)["items"][0]
    assert added["encrypted"] and added["indexed"], added
    hits = shell.ok("vault", "search", "where do quokkas drink", "-k", "1", *pw)
    assert hits["hits"][0]["cid"] == added["cid"], hits

    # Four CometBFT validators: the cometbft binary comes from the cache, not a variable.
    net = shell.ok("localnet", "up", "--validators", "4", timeout=240)
    assert len(net["nodes"]) == 4, net
    assert all(node["cometbft_running"] and node["height"] >= 2 for node in net["nodes"]), net
    shell.ok("localnet", "down", "--clean", timeout=120)

    # An agent on the tiny offline model answers one message.
    shell.ok("model", "demo")
    shell.ok("agent", "create", "scout", "--template", "researcher")
    answer = shell.ok("agent", "chat", "scout", "--message", "Where do the quokkas drink?", *pw)
    assert answer["answer"], answer
