"""``sahara setup kubo|cometbft`` as a person and a script run it (the real build is in
tests/unit/test_gosetup.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahara_cli.gobin import COMETBFT, KUBO, cache_dir
from tests.conftest import Invoke


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAHARA_CACHE", str(tmp_path / "cache"))
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path / "cache"


def test_an_existing_build_is_reported_not_rebuilt(cli: Invoke, cache: Path) -> None:
    built = cache_dir(KUBO) / "ipfs"
    built.parent.mkdir(parents=True)
    built.write_text("#!/bin/sh\n")
    built.chmod(0o755)
    (built.parent / ".complete").touch()
    result = cli("--json", "setup", "kubo")
    assert result.exit_code == 0
    assert result.json() == {
        "name": "kubo",
        "version": KUBO.version,
        "module": KUBO.module,
        "path": str(built),
        "status": "present",
        "build_s": 0.0,
    }
    human = cli("setup", "kubo")
    assert f"Kubo {KUBO.version} is built already: {built}" in human.stdout


def test_without_go_one_clear_error(cli: Invoke, cache: Path) -> None:
    result = cli("--json", "setup", "cometbft")
    assert result.exit_code == 3 and result.stdout == ""
    error = result.error()
    assert error["code"] == "setup.go_missing"
    assert f"CometBFT {COMETBFT.version}" in error["message"]
    assert not cache_dir(COMETBFT).exists()
