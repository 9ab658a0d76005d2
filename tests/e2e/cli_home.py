"""The ``sahara`` command as a user runs it: a subprocess with ``--json --no-prompt``, in
a home of its own and with no SAHARA_* setting of the caller's leaking in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.nodes import free_port
from tests.schemas import check

FAST_SCRYPT = "1024"


class CliHome:
    """``sahara`` against the home ``root``, run in ``workdir``. With ``password`` its
    identities are unlocked by it (and made with a fast scrypt); ``env`` adds settings."""

    def __init__(
        self,
        root: Path,
        workdir: Path | None = None,
        *,
        password: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> None:
        self.root = root
        self.workdir = workdir
        self.timeout = timeout
        self.env: dict[str, str] = {}
        if password is not None:
            self.env |= {"SAHARA_PASSWORD": password, "SAHARA_IDENTITY_SCRYPT_N": FAST_SCRYPT}
        self.env |= env or {}

    def environ(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
        return base | {"SAHARA_HOME": str(self.root), **self.env}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sahara_cli", "--json", "--no-prompt", *args],
            capture_output=True,
            text=True,
            env=self.environ(),
            cwd=self.workdir,
            timeout=self.timeout,
            check=False,
        )

    def ok(self, *args: str) -> Any:
        result = self.run(*args)
        assert result.returncode == 0, f"sahara {' '.join(args)}: {result.stderr}"
        document = json.loads(result.stdout)
        check(args, document)
        return document

    def fails(self, *args: str) -> tuple[int, dict[str, Any]]:
        """The exit status and the error object of a command that must fail cleanly."""
        result = self.run(*args)
        assert result.returncode != 0, result.stdout
        assert result.stdout == ""
        return result.returncode, json.loads(result.stderr.strip().splitlines()[-1])["error"]


@contextmanager
def dev_node(home: CliHome, fund: Sequence[str] = ()) -> Iterator[CliHome]:
    """``sahara node start --dev`` for ``home`` on a free port, with 5 SAH sent to each
    identity in ``fund``; ``sahara node stop`` on the way out."""
    port = free_port()
    home.env["SAHARA_NODE_RPC_URL"] = f"http://127.0.0.1:{port}"
    home.ok("node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}")
    try:
        for name in fund:
            address = home.ok("id", "show", name, "--no-chain")["address"]
            home.ok("tx", "send", "--to", address, "--value", "5")
        yield home
    finally:
        home.run("node", "stop")
