"""init_home: the library side of 'sahara init', with its typed report."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from sahara_cli.bootstrap import init_home, is_initialised
from sahara_cli.config import load_config
from sahara_cli.errors import PasswordRequired
from sahara_cli.home import Home
from sahara_cli.identity import KeyStore

PW = "pw"


def test_init_home_creates_config_and_a_default_id(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    steps: list[str] = []
    report = init_home(home, password=PW, id_name="me", scrypt_n=1024, progress=steps.append)
    assert report.created and is_initialised(home) and steps
    assert report.identity is not None and report.identity.name == "me"
    assert report.identity.is_default and report.address == report.identity.address
    assert load_config(home.config_file, environ={}).config.identity.default == "me"
    store = KeyStore(home.keystore_dir, config_path=home.config_file)
    assert Account.from_key(store.unlock("me", PW).private_key).address == report.address
    assert report.mnemonic is None and report.backup is None and report.notes == []
    document = report.model_dump(mode="json")
    assert document["home"] == str(home.root) and "id" not in document

    again = init_home(home, password=None)
    assert not again.created and again.identity is None
    assert "already initialised" in again.notes[0]


def test_init_home_force_backs_up_and_mnemonic_is_returned_once(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    first = init_home(home, password=PW, scrypt_n=1024)
    redone = init_home(home, password=PW, with_mnemonic=True, force=True, scrypt_n=1024)
    assert redone.created and redone.backup is not None
    assert (redone.backup / "keystore" / "main.json").exists()
    assert redone.address != first.address
    Account.enable_unaudited_hdwallet_features()
    assert Account.from_mnemonic(redone.mnemonic).address == redone.address
    assert str(redone.backup) in redone.notes[0]


def test_init_home_without_id_or_password(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    with pytest.raises(PasswordRequired):
        init_home(home, password=None)
    assert not home.exists()
    bare = init_home(home, password=None, create_id=False)
    assert bare.created and bare.identity is None and bare.address is None
    assert home.config_file.exists() and not any(home.keystore_dir.iterdir())
