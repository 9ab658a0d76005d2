"""``sahara setup kubo|cometbft``: go install of the pinned version into the cache layout
that the lookup reads (and the test set-up writes)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sahara_cli.errors import GoBuildFailed, GoMissing, UsageError
from sahara_cli.gobin import COMETBFT, KUBO, cache_dir, locate
from sahara_cli.gosetup import binary_named, go_install

REAL_CACHE = Path(os.environ.get("SAHARA_CACHE") or Path.home() / ".cache" / "sahara")
GO = shutil.which("go")


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(COMETBFT.env, raising=False)
    monkeypatch.delenv(KUBO.env, raising=False)
    monkeypatch.setenv("SAHARA_CACHE", str(tmp_path / "cache"))
    (tmp_path / "path").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    return tmp_path


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_names(bare: Path) -> None:
    assert binary_named("kubo") is KUBO and binary_named("cometbft") is COMETBFT
    with pytest.raises(UsageError, match="cometbft, kubo"):
        binary_named("geth")


def test_without_go_it_says_how_to_get_go(bare: Path) -> None:
    with pytest.raises(GoMissing, match="'go' was not found") as caught:
        go_install(COMETBFT)
    assert caught.value.code == "setup.go_missing"
    assert "go.dev" in (caught.value.hint or "")
    assert not cache_dir(COMETBFT).exists()


def test_a_complete_build_is_not_built_again(bare: Path) -> None:
    directory = cache_dir(KUBO)
    directory.mkdir(parents=True)
    script(directory / "ipfs", "echo ipfs version 0.39.0\n")
    (directory / ".complete").touch()
    result = go_install(KUBO)  # no go on PATH: it is not needed
    assert result.status == "present" and result.build_s == 0
    assert result.path == str(directory / "ipfs")


def test_a_failed_build_leaves_nothing_that_looks_built(bare: Path) -> None:
    script(bare / "path" / "go", 'echo "$@" >&2; echo "go: module not found" >&2; exit 1\n')
    lines: list[str] = []
    with pytest.raises(GoBuildFailed, match="go: module not found") as caught:
        go_install(KUBO, progress=lines.append)
    assert caught.value.code == "setup.build_failed"
    # the pinned module with the build tag Kubo needs, and go's verbose listing
    assert f"install -v -tags untested_go_version {KUBO.module}@{KUBO.version}" in lines[1]
    assert not cache_dir(KUBO).exists()
    assert list((bare / "cache" / "go").iterdir()) == []


@pytest.mark.e2e
@pytest.mark.slow
def test_setup_builds_cometbft_that_the_lookup_finds(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real go install of the pinned CometBFT into an empty cache; Go's module and
    build caches are the machine's (GOMODCACHE / GOCACHE override the cache's own)."""
    if GO is None:
        pytest.fail("no 'go' on PATH: install Go 1.22 or newer to run this test", pytrace=False)
    monkeypatch.setenv("PATH", f"{Path(GO).parent}:{bare / 'path'}")
    monkeypatch.setenv("GOMODCACHE", str(REAL_CACHE / "go" / "mod"))
    monkeypatch.setenv("GOCACHE", str(REAL_CACHE / "go" / "build"))
    lines: list[str] = []
    result = go_install(COMETBFT, progress=lines.append)
    assert result.status == "built"
    assert (cache_dir(COMETBFT) / ".complete").is_file()
    located = locate(COMETBFT)
    assert (located.path, located.source) == (result.path, "cache")
    assert lines[-1].startswith("built CometBFT")
    assert go_install(COMETBFT).status == "present"
