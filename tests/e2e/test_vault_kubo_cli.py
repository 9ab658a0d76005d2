"""The vault CLI on the Kubo backend: `vault daemon start` runs a real IPFS node for the
home, and add, get, export and rm go through it."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli_home import CliHome
from tests.e2e.test_protocol_cli import PASSWORD
from tests.vault_kubo import ipfs_bin

pytestmark = pytest.mark.e2e


@pytest.fixture
def kubo_home(tmp_path: Path) -> Iterator[CliHome]:
    binary = ipfs_bin()
    work = tmp_path / "work"
    work.mkdir()
    h = CliHome(tmp_path / "home", work, password=PASSWORD)
    h.env["SAHARA_VAULT_IPFS_BIN"] = binary
    h.env["SAHARA_VAULT_BACKEND"] = "kubo"
    h.ok("init")
    started = h.ok("vault", "daemon", "start")
    assert started["running"] and started["api_url"].startswith("http://127.0.0.1:")
    try:
        yield h
    finally:
        h.run("vault", "daemon", "stop")
    assert h.ok("vault", "daemon", "status")["running"] is False


def test_public_add_gives_kubos_cid_and_round_trips(kubo_home: CliHome) -> None:
    data = os.urandom(700_000)
    src = kubo_home.workdir / "blob.bin"
    src.write_bytes(data)
    added = kubo_home.ok("vault", "add", "blob.bin", "--public")
    assert added["backend"] == "kubo"
    cid = added["items"][0]["cid"]
    scratch = kubo_home.workdir / "ipfs-repo"
    env = {**os.environ, "IPFS_PATH": str(scratch)}
    binary = kubo_home.env["SAHARA_VAULT_IPFS_BIN"]
    subprocess.run([binary, "init", "--profile=test"], env=env, capture_output=True, check=True)
    expected = subprocess.run(
        [binary, "add", "-Q", "--only-hash", "--cid-version=1", str(src)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert cid == expected
    out = kubo_home.workdir / "back.bin"
    kubo_home.ok("vault", "get", cid, "-o", str(out))
    assert out.read_bytes() == data
    status = kubo_home.ok("vault", "status")
    assert status["backend"] == "kubo" and status["items"] == 1
    removed = kubo_home.ok("vault", "rm", cid, "--yes")
    assert removed["removed_blocks"] >= 4


def test_private_add_and_get_through_kubo(kubo_home: CliHome) -> None:
    text = "kubo keeps only ciphertext\n" * 1000
    (kubo_home.workdir / "notes.txt").write_text(text)
    item = kubo_home.ok("vault", "add", "notes.txt", "--no-index")["items"][0]
    assert item["encrypted"]
    assert item["commitment"] != "0x" + hashlib.sha256(text.encode()).hexdigest()  # salted
    out = kubo_home.workdir / "notes.back"
    kubo_home.ok("vault", "get", item["cid"], "-o", str(out))
    assert out.read_text() == text
    car = kubo_home.workdir / "notes.car"
    exported = kubo_home.ok("vault", "export", item["cid"], "--car", str(car))
    assert exported["root"] == item["cid"] and car.stat().st_size > len(text)
