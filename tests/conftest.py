"""Shared fixtures: an isolated home per test, a fast scrypt, and a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sahara_cli.commands.main import run

# Test modules import helpers from this plugin and also load it for its fixtures.
pytest.register_assert_rewrite("tests.agent_models")

# Keystores in tests use a small scrypt work factor (the default 2^18 takes ~1 s each).
FAST_SCRYPT = "1024"
PASSWORD = "correct horse battery staple"
#: The mnemonic anvil and hardhat use; account 0 is a well-known address.
TEST_MNEMONIC = "test test test test test test test test test test test junk"
TEST_ADDRESS_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
TEST_ADDRESS_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TEST_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SAHARA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SAHARA_IDENTITY_SCRYPT_N", FAST_SCRYPT)
    monkeypatch.setenv("SAHARA_HOME", str(tmp_path / "home"))
    # No test may reach a real node by accident.
    monkeypatch.setenv("SAHARA_NODE_RPC_URL", "http://127.0.0.1:9")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str
    args: tuple[str, ...] = ()

    def json(self) -> Any:
        """The --json document on stdout, checked against the command's published schema."""
        from tests.schemas import check

        document = json.loads(self.stdout)
        if self.exit_code == 0:
            check(self.args, document)
        return document

    def error(self) -> dict[str, Any]:
        doc = json.loads(self.stderr.strip().splitlines()[-1])
        assert set(doc) == {"error"}, doc
        err: dict[str, Any] = doc["error"]
        return err


Invoke = Callable[..., Result]


@pytest.fixture
def cli() -> Invoke:
    """Run the real CLI entry (``run``) in-process with captured streams."""

    def invoke(
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        tty: bool | None = None,
    ) -> Result:
        """``input`` is typed at a terminal (stdin is a TTY) unless ``tty=False``."""
        runner = CliRunner()
        with runner.isolation(input=input, env=env) as (out, err, _):
            if input is not None if tty is None else tty:
                sys.stdin.isatty = lambda: True  # type: ignore[method-assign]
            code = run(list(args))
            sys.stdout.flush()
            sys.stderr.flush()
            return Result(code, out.getvalue().decode(), err.getvalue().decode(), args)

    return invoke


@pytest.fixture
def initialised(cli: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home made by ``sahara init`` with one ID, 'main', under PASSWORD."""
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    result = cli("--json", "--no-prompt", "init")
    assert result.exit_code == 0, result.stderr
    monkeypatch.delenv("SAHARA_PASSWORD")
    return home


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password.txt"
    path.write_text(PASSWORD + "\n")
    return path


def sahara_executable() -> str:
    exe = Path(sys.executable).with_name("sahara")
    if exe.exists():
        return str(exe)
    found = shutil.which("sahara")
    assert found, "the sahara console script is not installed"
    return found


@pytest.fixture
def sahara() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """Run the installed ``sahara`` console script as a real subprocess."""

    def call(
        args: Sequence[str], *, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sahara_executable(), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            input=input,
            timeout=60,
            check=False,
        )

    yield call
