"""sahara id: the whole life of a Sahara ID through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.conftest import (
    PASSWORD,
    TEST_ADDRESS_0,
    TEST_ADDRESS_1,
    TEST_KEY_0,
    TEST_MNEMONIC,
    Invoke,
)


@pytest.fixture
def pw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)


def test_create_list_show_use(cli: Invoke, initialised: Path, pw: None) -> None:
    created = cli("--json", "--no-prompt", "id", "create", "bob")
    assert created.exit_code == 0, created.stderr
    bob = created.json()
    assert bob["is_default"] is False and bob["mnemonic"] is None
    assert bob["origin"] == "generated" and bob["created_at"].endswith("Z")
    names = [i["name"] for i in cli("--json", "id", "list").json()["ids"]]
    assert names == ["bob", "main"]
    assert cli("--json", "id", "show").json()["name"] == "main"
    assert cli("--json", "id", "use", "bob").json()["is_default"] is True
    assert cli("--json", "id", "show").json()["address"] == bob["address"]
    # Global flags after the command work too.
    assert json.loads(cli("id", "show", "bob", "--json").stdout)["name"] == "bob"


def test_import_from_files(cli: Invoke, initialised: Path, pw: None, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text(TEST_KEY_0 + "\n")
    assert (
        cli("--json", "id", "import", "k0", "--private-key-file", str(key)).json()["address"]
        == TEST_ADDRESS_0
    )
    phrase = tmp_path / "phrase"
    phrase.write_text(TEST_MNEMONIC)
    m1 = cli(
        "--json", "id", "import", "k1", "--mnemonic-file", str(phrase), "--path", "m/44'/60'/0'/0/1"
    )
    assert m1.json()["address"] == TEST_ADDRESS_1
    assert m1.json()["hd_path"] == "m/44'/60'/0'/0/1"
    dup = cli("--json", "id", "import", "again", "--mnemonic-file", str(phrase))
    assert dup.exit_code == 7
    assert "already stored as 'k0'" in dup.error()["message"]


def test_import_eth_account_keystore_and_export_back(
    cli: Invoke, initialised: Path, pw: None, tmp_path: Path
) -> None:
    foreign = Account.encrypt(
        bytes.fromhex(TEST_KEY_0[2:]), PASSWORD, kdf="scrypt", iterations=2048
    )
    path = tmp_path / "UTC--foreign.json"
    path.write_text(json.dumps(foreign))
    imported = cli("--json", "id", "import", "geth", "--keystore", str(path))
    assert imported.exit_code == 0, imported.stderr
    assert imported.json()["address"] == TEST_ADDRESS_0
    exported = cli("--json", "id", "export", "geth").json()["keystore"]
    assert "sahara" not in exported
    assert Account.decrypt(exported, PASSWORD).hex() == TEST_KEY_0[2:]


def test_import_needs_exactly_one_source(
    cli: Invoke, initialised: Path, pw: None, tmp_path: Path
) -> None:
    none = cli("--json", "id", "import", "x")
    assert none.exit_code == 2 and none.error()["code"] == "usage"
    key = tmp_path / "k"
    key.write_text(TEST_KEY_0)
    both = cli(
        "--json", "id", "import", "x", "--private-key-file", str(key), "--keystore", str(key)
    )
    assert both.exit_code == 2


@pytest.mark.parametrize(
    ("content", "code"),
    [("not a key", "identity.secret_invalid"), ("", "file.unreadable")],
)
def test_import_bad_key_files(
    cli: Invoke, initialised: Path, pw: None, tmp_path: Path, content: str, code: str
) -> None:
    key = tmp_path / "k"
    key.write_text(content)
    result = cli("--json", "id", "import", "x", "--private-key-file", str(key))
    assert result.exit_code == 8
    assert result.error()["code"] == code
    assert not (initialised / "keystore" / "x.json").exists()


def test_import_bad_keystore_file(cli: Invoke, initialised: Path, pw: None, tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    path.write_text('{"version": 3}')
    result = cli("--json", "id", "import", "x", "--keystore", str(path))
    assert result.exit_code == 8
    assert result.error()["code"] == "identity.keystore_invalid"


def test_export_keystore_with_wrong_password(cli: Invoke, initialised: Path) -> None:
    result = cli("--json", "--no-prompt", "id", "export", "main", env={"SAHARA_PASSWORD": "wrong"})
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.error()["code"] == "identity.wrong_password"
    assert "Traceback" not in result.stderr


def test_export_private_key_needs_confirmation(
    cli: Invoke, initialised: Path, pw: None, tmp_path: Path
) -> None:
    refused = cli("--json", "--no-prompt", "id", "export", "--private-key")
    assert refused.exit_code == 2
    assert refused.error()["code"] == "confirmation_required"
    declined = cli("id", "export", "--private-key", input="n\n")
    assert declined.exit_code == 130 and "0x" not in declined.stdout
    out = tmp_path / "secret.txt"
    written = cli(
        "--json", "--no-prompt", "id", "export", "--private-key", "--yes", "-o", str(out)
    ).json()
    assert written["private_key"] is None and written["keystore"] is None
    assert written["output"] == str(out)
    assert out.stat().st_mode & 0o777 == 0o600
    key = out.read_text().strip()
    assert Account.from_key(key).address == written["address"]


def test_password_file_and_prompt(cli: Invoke, initialised: Path, password_file: Path) -> None:
    by_file = cli("--json", "id", "sign-message", "hi", "--password-file", str(password_file))
    assert by_file.exit_code == 0, by_file.stderr
    by_prompt = cli("--json", "id", "sign-message", "hi", input=PASSWORD + "\n")
    assert by_prompt.json()["signature"] == by_file.json()["signature"]
    no_prompt = cli("--json", "--no-prompt", "id", "sign-message", "hi")
    assert no_prompt.exit_code == 4
    assert no_prompt.error()["code"] == "identity.password_required"


def test_sign_and_verify_message(cli: Invoke, initialised: Path, pw: None, tmp_path: Path) -> None:
    signed = cli("--json", "id", "sign-message", "hello sahara").json()
    assert (
        Account.recover_message(encode_defunct(text="hello sahara"), signature=signed["signature"])
        == signed["address"]
    )
    ok = cli(
        "--json",
        "id",
        "verify-message",
        "hello sahara",
        "-s",
        signed["signature"],
        "--address",
        signed["address"],
    )
    assert ok.json() == {
        "recovered": signed["address"],
        "valid": True,
        "expected": signed["address"],
        "signer_name": "main",
    }
    wrong = cli(
        "--json",
        "id",
        "verify-message",
        "hello sahara!",
        "-s",
        signed["signature"],
        "--address",
        signed["address"],
    )
    assert wrong.exit_code == 1
    assert wrong.error()["code"] == "identity.signature_mismatch"
    garbage = cli("--json", "id", "verify-message", "x", "-s", "0x1234")
    assert garbage.exit_code == 8
    data = tmp_path / "blob.bin"
    data.write_bytes(bytes(range(256)))
    by_file = cli("--json", "id", "sign-message", "--file", str(data)).json()
    by_hex = cli("--json", "id", "sign-message", "--hex", bytes(range(256)).hex()).json()
    assert by_file["signature"] == by_hex["signature"]


def test_sign_typed_data(cli: Invoke, initialised: Path, pw: None, tmp_path: Path) -> None:
    from tests.unit.test_keys import TYPED

    path = tmp_path / "mail.json"
    path.write_text(json.dumps(TYPED))
    signed = cli("--json", "id", "sign-typed-data", str(path)).json()
    assert signed["hash"] == "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    from eth_account.messages import encode_typed_data

    assert (
        Account.recover_message(
            encode_typed_data(full_message=TYPED), signature=signed["signature"]
        )
        == signed["address"]
    )
    path.write_text("{}")
    bad = cli("--json", "id", "sign-typed-data", str(path))
    assert bad.exit_code == 8


def test_rename_and_delete(cli: Invoke, initialised: Path, pw: None) -> None:
    address = cli("--json", "id", "show").json()["address"]
    assert cli("--json", "id", "rename", "main", "primary").json()["is_default"] is True
    assert cli("--json", "config", "get", "identity.default").json()["value"] == "primary"
    refused = cli("--json", "--no-prompt", "id", "delete", "primary")
    assert refused.exit_code == 2
    deleted = cli("--json", "id", "delete", "primary", "--yes").json()
    assert deleted["address"] == address
    kept = Path(deleted["moved_to"])
    assert (
        Account.from_key(Account.decrypt(json.loads(kept.read_text()), PASSWORD)).address == address
    )
    assert cli("--json", "id", "list").json() == {"ids": []}
    assert cli("--json", "id", "show").exit_code == 3


def test_unreadable_keystore_is_reported_not_crashed(cli: Invoke, initialised: Path) -> None:
    (initialised / "keystore" / "main.json").write_bytes(b"\xff\xfe not json")
    listed = cli("--json", "id", "list")
    assert listed.exit_code == 0
    assert listed.json()["ids"][0]["error"]["code"] == "identity.keystore_invalid"
    shown = cli("--json", "id", "show")
    assert shown.exit_code == 8
    human = cli("id", "show")
    assert human.stderr.startswith("error:") and "Traceback" not in human.stderr


def test_missing_home(cli: Invoke, home: Path) -> None:
    result = cli("--json", "id", "list")
    assert result.exit_code == 3
    assert result.error()["code"] == "home.not_found"
    assert "sahara init" in result.error()["hint"]


def test_a_password_is_not_read_from_a_pipe(cli: Invoke, initialised: Path) -> None:
    piped = cli("--json", "id", "sign-message", "hi", input=PASSWORD + "\n", tty=False)
    assert piped.exit_code == 4 and piped.stdout == ""
    error = piped.error()
    assert error["code"] == "identity.password_required"
    assert "not a terminal" in error["message"] and "SAHARA_PASSWORD" in error["hint"]


def test_a_wrong_password_names_the_id(cli: Invoke, initialised: Path) -> None:
    address = cli("--json", "id", "show", "main").json()["address"]
    result = cli("--json", "id", "sign-message", "hi", env={"SAHARA_PASSWORD": "nope"})
    assert result.exit_code == 4
    assert result.error()["message"] == f"wrong password for Sahara ID 'main' ({address})"


def test_verify_message_without_address_says_who_signed(
    cli: Invoke, initialised: Path, pw: None
) -> None:
    signed = cli("--json", "id", "sign-message", "hello sahara").json()
    text = cli("id", "verify-message", "hello sahara", "-s", signed["signature"])
    assert text.exit_code == 0, text.stderr
    assert f"signed by {signed['address']}" in text.stdout and "'main'" in text.stdout
    assert "valid" not in text.stdout
    other = Account.create()
    foreign = Account.sign_message(encode_defunct(text="hi"), other.key).signature.hex()
    stranger = cli("id", "verify-message", "hi", "-s", "0x" + foreign.removeprefix("0x"))
    assert f"signed by {other.address}" in stranger.stdout and "no local ID" in stranger.stdout
    by_name = cli("--json", "id", "verify-message", "hello sahara", "-s", signed["signature"],
                  "--address", "main")  # fmt: skip
    assert by_name.json()["expected"] == signed["address"]
