"""The one lookup of the Go programs (Kubo's ipfs, cometbft): its order and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahara_cli.errors import CometbftMissing, VaultKuboMissing
from sahara_cli.gobin import (
    BINARIES,
    COMETBFT,
    KUBO,
    GoBinary,
    Located,
    cache_dir,
    cache_root,
    find_binary,
    locate,
)


def fake(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No environment variable, an empty cache and an empty PATH."""
    for binary in (KUBO, COMETBFT):
        monkeypatch.delenv(binary.env, raising=False)
    monkeypatch.setenv("SAHARA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    return tmp_path


@pytest.mark.parametrize("binary", [KUBO, COMETBFT], ids=lambda b: b.executable)
def test_nothing_found_says_how_to_install(bare: Path, binary: GoBinary) -> None:
    with pytest.raises(binary.error) as caught:
        find_binary(binary)
    assert f"'{binary.executable}' binary was not found" in caught.value.message
    assert f"go install {binary.module}@{binary.version}" in (caught.value.hint or "")
    assert binary.env in (caught.value.hint or "")


def test_the_order_is_flag_env_cache_path(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = fake(bare / "path" / "cometbft")
    assert find_binary(COMETBFT) == on_path
    cached = fake(bare / "cache" / "go" / f"bin-cometbft-{COMETBFT.version}" / "cometbft")
    assert find_binary(COMETBFT) == on_path, "a build without .complete is not used"
    (Path(cached).parent / ".complete").touch()
    assert find_binary(COMETBFT) == cached
    from_env = fake(bare / "env" / "cometbft")
    monkeypatch.setenv(COMETBFT.env, from_env)
    assert find_binary(COMETBFT) == from_env
    flag = fake(bare / "flag" / "cometbft")
    assert find_binary(COMETBFT, flag) == flag


def test_a_named_binary_that_is_not_there_is_an_error(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake(bare / "path" / "ipfs")  # never a fallback for a wrong explicit value
    missing = str(bare / "no-such-ipfs")
    with pytest.raises(VaultKuboMissing, match=r"vault\.ipfs_bin") as caught:
        find_binary(KUBO, missing)
    assert missing in caught.value.message
    assert caught.value.code == "vault.kubo_missing"
    monkeypatch.setenv(COMETBFT.env, missing)
    with pytest.raises(CometbftMissing, match="SAHARA_COMETBFT_BIN") as comet:
        find_binary(COMETBFT)
    assert comet.value.code == "localnet.cometbft_missing"
    with pytest.raises(CometbftMissing, match="--cometbft-bin"):
        find_binary(COMETBFT, missing, source="--cometbft-bin")


def test_a_name_on_path_is_accepted(bare: Path) -> None:
    found = fake(bare / "path" / "my-ipfs")
    assert find_binary(KUBO, "my-ipfs") == found


def test_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SAHARA_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("SAHARA_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "sahara"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "sahara"


def test_locate_says_which_source_gave_the_binary(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake(bare / "path" / "ipfs")
    assert locate(KUBO).source == "PATH"
    cached = fake(cache_dir(KUBO) / "ipfs")
    (cache_dir(KUBO) / ".complete").touch()
    assert locate(KUBO) == Located(cached, "cache")
    assert cache_dir(KUBO) == bare / "cache" / "go" / f"bin-kubo-{KUBO.version}"
    monkeypatch.setenv(KUBO.env, fake(bare / "env" / "ipfs"))
    assert locate(KUBO).source == "env"
    assert locate(KUBO, fake(bare / "flag" / "ipfs")).source == "setting"


def test_the_hint_names_sahara_setup(bare: Path) -> None:
    with pytest.raises(CometbftMissing) as caught:
        find_binary(COMETBFT)
    assert "sahara setup cometbft" in (caught.value.hint or "")
    assert BINARIES == {"kubo": KUBO, "cometbft": COMETBFT}
    assert KUBO.tags == "untested_go_version" and COMETBFT.tags == ""
