"""sahara init: creates a home once, is idempotent, and --force keeps a backup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from tests.conftest import PASSWORD, Invoke


def test_init_creates_home_config_and_first_id(
    cli: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    result = cli("--json", "--no-prompt", "init")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["created"] is True
    assert doc["address"].startswith("0x") and len(doc["address"]) == 42
    assert doc["identity"]["name"] == "main" and doc["identity"]["is_default"] is True
    assert doc["identity"]["address"] == doc["address"]
    assert (home / "config.toml").exists()
    assert home.stat().st_mode & 0o777 == 0o700
    keystore = json.loads((home / "keystore" / "main.json").read_text())
    assert Account.from_key(Account.decrypt(keystore, PASSWORD)).address == doc["address"]
    listed = cli("--json", "id", "list").json()["ids"]
    assert [i["address"] for i in listed] == [doc["address"]]


def test_init_twice_changes_nothing_and_says_so(cli: Invoke, initialised: Path) -> None:
    before = {
        p: p.read_bytes() for p in initialised.rglob("*") if p.is_file() and p.suffix != ".log"
    }
    result = cli("--json", "--no-prompt", "init")  # no password needed: nothing to create
    assert result.exit_code == 0
    assert result.json()["created"] is False
    assert "already initialised" in result.json()["notes"][0]
    after = {
        p: p.read_bytes() for p in initialised.rglob("*") if p.is_file() and p.suffix != ".log"
    }
    assert before == after
    human = cli("--no-prompt", "init")
    assert "already initialised" in human.stdout


def test_init_force_backs_up_the_old_keys(
    cli: Invoke, initialised: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = cli("--json", "id", "show").json()["address"]
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    result = cli("--json", "--no-prompt", "init", "--force")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["created"] is True and doc["address"] != old
    backup = Path(doc["backup"])
    saved = json.loads((backup / "keystore" / "main.json").read_text())
    assert Account.from_key(Account.decrypt(saved, PASSWORD)).address == old
    assert (backup / "config.toml").exists()


def test_init_force_recovers_from_a_broken_config(
    cli: Invoke, initialised: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (initialised / "config.toml").write_text("[[[ broken")
    assert cli("--json", "config", "show").exit_code == 8
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    result = cli("--json", "--no-prompt", "init", "--force")
    assert result.exit_code == 0, result.stderr
    assert (Path(result.json()["backup"]) / "config.toml").read_text() == "[[[ broken"
    assert cli("--json", "config", "show").exit_code == 0


def test_init_without_id(cli: Invoke, home: Path) -> None:
    result = cli("--json", "--no-prompt", "init", "--no-id")
    assert result.exit_code == 0
    assert result.json()["identity"] is None and result.json()["address"] is None
    assert cli("--json", "id", "list").json() == {"ids": []}


def test_init_no_prompt_without_password_is_an_error_not_a_hang(cli: Invoke, home: Path) -> None:
    result = cli("--json", "--no-prompt", "init")
    assert result.exit_code == 4
    assert result.error()["code"] == "identity.password_required"
    assert result.stdout == ""
    assert not home.exists()  # nothing half-made


def test_init_prompts_for_a_new_password_twice(cli: Invoke, home: Path) -> None:
    result = cli("init", "--name", "me", input="s3cret\ns3cret\n")
    assert result.exit_code == 0, result.stderr
    assert "Initialised" in result.stdout
    shown = cli("--json", "id", "show", "me").json()
    assert shown["name"] == "me"
    mismatch = cli("init", "--force", input="a\nb\n")  # confirmation differs, then EOF
    assert mismatch.exit_code != 0


def test_init_mnemonic_is_shown_once(
    cli: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    doc = cli("--json", "--no-prompt", "init", "--mnemonic").json()
    Account.enable_unaudited_hdwallet_features()
    assert Account.from_mnemonic(doc["mnemonic"]).address == doc["address"]
    assert doc["mnemonic"] not in (home / "keystore" / "main.json").read_text()
    assert "mnemonic" not in cli("--json", "id", "show").json()
