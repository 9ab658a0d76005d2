"""The keystore directory: modes, names, defaults, duplicates, broken files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from eth_account import Account

from sahara_cli.config import load_config
from sahara_cli.errors import (
    FileUnreadable,
    IdentityExists,
    IdentityNotFound,
    KeystoreInvalid,
    NoDefaultIdentity,
    SecretInvalid,
    WrongPassword,
)
from sahara_cli.identity.store import KeyStore, read_secret_file
from tests.conftest import TEST_ADDRESS_0, TEST_KEY_0, TEST_MNEMONIC


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(
        tmp_path / "keystore",
        config_path=tmp_path / "config.toml",
        scrypt_n=1024,
        trash_dir=tmp_path / "backups" / "deleted-ids",
    )


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_create_writes_a_private_keystore_v3(store: KeyStore) -> None:
    info, phrase = store.create("alice", "pw")
    assert phrase is None
    assert mode(store.directory) == 0o700
    assert mode(info.path) == 0o600
    document = json.loads(info.path.read_text())
    assert document["version"] == 3
    assert document["crypto"]["kdf"] == "scrypt"
    key = Account.decrypt(document, "pw")
    assert Account.from_key(key).address == info.address
    assert info.public_key.startswith("0x04") and len(info.public_key) == 132


def test_create_with_mnemonic_derives_from_the_phrase(store: KeyStore) -> None:
    info, phrase = store.create("alice", "pw", with_mnemonic=True, words=15)
    assert phrase is not None and len(phrase.split()) == 15
    Account.enable_unaudited_hdwallet_features()
    assert Account.from_mnemonic(phrase).address == info.address
    assert info.origin == "mnemonic" and info.hd_path == "m/44'/60'/0'/0/0"


def test_unlock_and_wrong_password(store: KeyStore) -> None:
    info, _ = store.create("alice", "pw")
    assert store.unlock("alice", "pw").address == info.address
    with pytest.raises(WrongPassword):
        store.unlock("alice", "nope")


def test_export_strips_sahara_metadata_and_checks_the_password(store: KeyStore) -> None:
    store.create("alice", "pw")
    exported = store.export("alice", "pw")
    assert "sahara" not in exported
    assert Account.decrypt(exported, "pw")
    with pytest.raises(WrongPassword):
        store.export("alice", "wrong")


def test_import_private_key_mnemonic_and_keystore(store: KeyStore) -> None:
    info = store.import_private_key("k", bytes.fromhex(TEST_KEY_0[2:]), "pw")
    assert info.address == TEST_ADDRESS_0
    m = store.import_mnemonic("m", TEST_MNEMONIC, "pw", path="m/44'/60'/0'/0/2")
    assert (
        m.address
        == Account.from_key(
            "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
        ).address
    )
    foreign = Account.encrypt(Account.create().key, "theirs", kdf="pbkdf2", iterations=1000)
    imported = store.import_keystore("g", foreign, "theirs")
    stored = json.loads(imported.path.read_text())
    assert stored["crypto"]["kdf"] == "scrypt"  # re-encrypted
    assert store.unlock("g", "theirs").address.lower() == "0x" + foreign["address"].lower()


def test_the_same_key_twice_is_a_conflict(store: KeyStore) -> None:
    store.import_private_key("k", bytes.fromhex(TEST_KEY_0[2:]), "pw")
    with pytest.raises(IdentityExists, match="already stored as 'k'"):
        store.import_mnemonic("m", TEST_MNEMONIC, "pw")
    with pytest.raises(IdentityExists):
        store.create("k", "pw")


@pytest.mark.parametrize("name", ["", "-x", "a/b", "../up", "x" * 65, "a b", "x.json"])
def test_bad_names(store: KeyStore, name: str) -> None:
    with pytest.raises(SecretInvalid, match="invalid ID name"):
        store.create(name, "pw")


def test_default_follows_use_rename_and_delete(store: KeyStore, tmp_path: Path) -> None:
    store.create("a", "pw")
    store.create("b", "pw")
    with pytest.raises(NoDefaultIdentity):
        store.resolve(None)
    store.use("a")
    config = tmp_path / "config.toml"
    assert load_config(config, environ={}).get("identity.default") == "a"
    assert store.resolve(None).name == "a"
    store.rename("a", "c")
    assert load_config(config, environ={}).get("identity.default") == "c"
    assert store.resolve(None).name == "c"
    _, kept = store.delete("c")
    assert kept is not None and kept.exists() and mode(kept) == 0o600
    assert Account.decrypt(json.loads(kept.read_text()), "pw")  # nothing is lost
    assert load_config(config, environ={}).get("identity.default") is None
    assert [i.name for i in store.list()] == ["b"]  # type: ignore[union-attr]
    assert store.resolve(None).name == "b"  # the only one left


def test_rename_to_an_existing_name_and_missing_ids(store: KeyStore) -> None:
    store.create("a", "pw")
    store.create("b", "pw")
    with pytest.raises(IdentityExists):
        store.rename("a", "b")
    with pytest.raises(IdentityNotFound):
        store.rename("zz", "yy")
    with pytest.raises(IdentityNotFound):
        store.delete("zz")
    with pytest.raises(IdentityNotFound):
        store.get("zz")


def test_broken_keystore_is_listed_as_an_error_and_can_be_deleted(store: KeyStore) -> None:
    store.create("good", "pw")
    (store.directory / "bad.json").write_text("{ not json")
    items = store.list()
    assert [type(i).__name__ for i in items] == ["KeystoreInvalid", "IdentityInfo"]
    with pytest.raises(KeystoreInvalid, match="not valid JSON"):
        store.get("bad")
    store.delete("bad")
    assert store.names() == ["good"]


def test_unreadable_keystore(store: KeyStore) -> None:
    info, _ = store.create("a", "pw")
    if os.geteuid() == 0:  # root reads any mode: make it unreadable another way
        info.path.unlink()
        info.path.mkdir()
        expected = "Is a directory"
    else:
        info.path.chmod(0)
        expected = "permission denied"
    with pytest.raises(KeystoreInvalid, match=expected):
        store.get("a")
    with pytest.raises(KeystoreInvalid):
        store.unlock("a", "pw")


def test_keystore_whose_public_key_disagrees_with_its_address(store: KeyStore) -> None:
    info, _ = store.create("a", "pw")
    document = json.loads(info.path.read_text())
    other, _ = store.create("b", "pw")
    document["sahara"]["publicKey"] = other.public_key
    info.path.write_text(json.dumps(document))
    with pytest.raises(KeystoreInvalid, match="does not match"):
        store.get("a")


def test_read_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with pytest.raises(FileUnreadable, match="does not exist"):
        read_secret_file(path, "password")
    path.write_text("\n\n")
    with pytest.raises(FileUnreadable, match="empty"):
        read_secret_file(path, "password")
    path.write_text("  secret \n")
    assert read_secret_file(path, "password") == "secret"


def test_password_files_use_their_first_line_only(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("pass word\nsecond line\n")
    assert read_secret_file(path, "password", first_line=True) == "pass word"
    assert read_secret_file(path, "mnemonic") == "pass word\nsecond line"


# -- no check-then-replace: an ID is never overwritten ------------------------------------


def test_an_id_written_while_another_is_encrypted_is_not_overwritten(
    store: KeyStore, tmp_path: Path
) -> None:
    # A second process (another KeyStore on the same directory) stores an ID named "t"
    # after this one checked the name was free and while it derives its key.
    other = KeyStore(store.directory, scrypt_n=1024)
    other_key = bytes.fromhex(TEST_KEY_0[2:])

    def meanwhile(_: str) -> None:
        if not (store.directory / "t.json").exists():
            other.import_private_key("t", other_key, "other pw")

    with pytest.raises(IdentityExists, match="'t' exists already"):
        store.create("t", "pw", progress=meanwhile)
    assert Account.decrypt(json.loads((store.directory / "t.json").read_text()), "other pw") == (
        other_key
    )


def test_an_id_renamed_while_another_is_encrypted_is_not_overwritten(store: KeyStore) -> None:
    other = KeyStore(store.directory, scrypt_n=1024)
    moved, _ = other.create("x", "other pw")

    def meanwhile(_: str) -> None:
        if (store.directory / "x.json").exists():
            other.rename("x", "t")

    with pytest.raises(IdentityExists):
        store.create("t", "pw", progress=meanwhile)
    assert store.get("t").address == moved.address
    assert store.names() == ["t"]


def test_rename_and_create_never_replace_a_taken_name(store: KeyStore) -> None:
    # A dangling link makes Path.exists() say False: a check-then-rename replaces it.
    store.create("a", "pw")
    (store.directory / "b.json").symlink_to(store.directory / "gone.json")
    with pytest.raises(IdentityExists):
        store.rename("a", "b")
    assert (store.directory / "b.json").is_symlink()
    assert store.get("a").name == "a"
    with pytest.raises(IdentityExists):
        store.import_private_key("b", bytes.fromhex(TEST_KEY_0[2:]), "pw")
    assert (store.directory / "b.json").is_symlink()


def test_backups_of_the_same_name_never_overwrite_each_other(store: KeyStore) -> None:
    # Four delete-and-recreate rounds take well under three seconds, so at least two
    # deletes fall in the same second: each must keep its own backup.
    addresses = []
    kept = []
    for _ in range(4):
        info, _ = store.create("again", "pw")
        addresses.append(info.address)
        _, path = store.delete("again")
        assert path is not None
        kept.append(path)
    assert len(set(kept)) == 4
    backups = sorted((store.trash_dir or Path()).glob("again-*.json"))
    assert len(backups) == 4
    recovered = {"0x" + json.loads(p.read_text())["address"].lower() for p in backups}
    assert recovered == {a.lower() for a in addresses}


def test_ids_are_kept_on_a_file_system_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """exFAT, some FUSE and SMB mounts refuse os.link (EPERM): creating, renaming and
    deleting an ID still work there, and a taken name is still refused."""
    import errno
    import os

    from sahara_cli.errors import IdentityExists
    from sahara_cli.identity.store import KeyStore

    def no_links(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store = KeyStore(tmp_path / "keystore", scrypt_n=2)
    store.create("alice", "pw")
    with pytest.raises(IdentityExists):
        store.create("alice", "pw")
    store.create("bob", "pw")
    with pytest.raises(IdentityExists):
        store.rename("alice", "bob")
    store.rename("alice", "carol")
    store.delete("carol")
    assert [i.name for i in store.list()] == ["bob"]
