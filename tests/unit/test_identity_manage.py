"""The Sahara ID workflows as library calls: typed results, no prompts, no CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from sahara_cli.errors import (
    FileUnreadable,
    IdentityExists,
    IdentityNotFound,
    SignatureInvalid,
    SignatureMismatch,
    UsageError,
    WrongPassword,
)
from sahara_cli.identity import KeyStore, Signer
from sahara_cli.identity.manage import (
    create_identity,
    delete_identity,
    export_identity,
    import_identity,
    list_identities,
    peek_identity,
    rename_identity,
    show_identity,
    use_identity,
)
from sahara_cli.identity.results import (
    ChainReceipt,
    ChainStanding,
    Identity,
    KeystoreProblem,
)
from sahara_cli.identity.signing import (
    message_bytes,
    read_typed_data,
    sign_message,
    sign_typed_data,
    verify_message,
)
from tests.conftest import TEST_ADDRESS_0, TEST_ADDRESS_1, TEST_KEY_0, TEST_MNEMONIC

PW = "pw"


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(
        tmp_path / "keystore",
        config_path=tmp_path / "config.toml",
        scrypt_n=1024,
        trash_dir=tmp_path / "trash",
    )


def asked(password: str = PW) -> tuple[Callable[[str, bool], str], list[tuple[str, bool]]]:
    """A password callback that records what it was asked for."""
    questions: list[tuple[str, bool]] = []

    def password_for(purpose: str, new: bool) -> str:
        questions.append((purpose, new))
        return password

    return password_for, questions


def test_create_makes_the_first_id_the_default(store: KeyStore) -> None:
    first = create_identity(store, "alice", PW)
    second = create_identity(store, "bob", PW, with_mnemonic=True, words=15)
    assert first.is_default and not second.is_default
    assert first.mnemonic is None and len((second.mnemonic or "").split()) == 15
    assert first.origin == "generated" and second.hd_path == "m/44'/60'/0'/0/0"
    assert first.created_at is not None
    assert abs((datetime.now(UTC) - first.created_at).total_seconds()) < 60
    assert first.public_key is not None and first.public_key.startswith("0x04")
    document = first.model_dump(mode="json")
    assert document["created_at"].endswith("Z") and "created" not in document
    with pytest.raises(IdentityExists):
        create_identity(store, "alice", PW)


def test_import_reads_the_file_before_asking_for_a_password(
    store: KeyStore, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_text(TEST_KEY_0 + "\n")
    password_for, questions = asked()
    imported = import_identity(store, "k0", password_for, private_key_file=key)
    assert imported.address == TEST_ADDRESS_0 and imported.is_default
    assert questions == [("encrypt the ID 'k0'", True)]

    phrase = tmp_path / "phrase"
    phrase.write_text(TEST_MNEMONIC)
    one = import_identity(store, "k1", asked()[0], mnemonic_file=phrase, hd_path="m/44'/60'/0'/0/1")
    assert (one.address, one.origin, one.is_default) == (TEST_ADDRESS_1, "mnemonic", False)

    foreign = tmp_path / "UTC--foreign.json"
    foreign.write_text(
        json.dumps(Account.encrypt(bytes.fromhex("11" * 32), "theirs", iterations=1024))
    )
    password_for, questions = asked("theirs")
    kept = import_identity(store, "geth", password_for, keystore_file=foreign)
    assert kept.origin == "keystore" and questions == [("open UTC--foreign.json", False)]

    empty = tmp_path / "empty"
    empty.write_text("")
    password_for, questions = asked()
    with pytest.raises(FileUnreadable):
        import_identity(store, "x", password_for, private_key_file=empty)
    assert questions == []  # nothing asked for a file that holds no key


@pytest.mark.parametrize(
    "sources",
    [{}, {"private_key_file": Path("a"), "keystore_file": Path("b")}, {"hd_path": "m/0"}],
)
def test_import_needs_exactly_one_source(store: KeyStore, sources: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        import_identity(store, "x", asked()[0], **sources)  # type: ignore[arg-type]


def test_export_keystore_private_key_and_file(store: KeyStore, tmp_path: Path) -> None:
    alice = create_identity(store, "alice", PW)
    exported = export_identity(store, None, PW)
    assert exported.keystore is not None and "sahara" not in exported.keystore
    assert Account.from_key(Account.decrypt(exported.keystore, PW)).address == alice.address
    assert exported.private_key is None and exported.output is None
    raw = export_identity(store, "alice", PW, private_key=True)
    assert raw.keystore is None and Account.from_key(raw.private_key).address == alice.address
    out = tmp_path / "alice.key"
    written = export_identity(store, "alice", PW, private_key=True, output=out)
    assert written.private_key is None and written.output == out
    assert out.read_text().strip() == raw.private_key
    assert out.stat().st_mode & 0o777 == 0o600
    with pytest.raises(WrongPassword):
        export_identity(store, "alice", "wrong")


def test_list_use_rename_and_delete(store: KeyStore) -> None:
    create_identity(store, "alice", PW)
    bob = create_identity(store, "bob", PW)
    (store.directory / "broken.json").write_text("{not json")
    listed = list_identities(store).ids
    assert [i.name for i in listed] == ["alice", "bob", "broken"]
    problem = listed[2]
    assert isinstance(problem, KeystoreProblem)
    assert problem.error.code == "identity.keystore_invalid"
    assert use_identity(store, "bob").is_default
    renamed = rename_identity(store, "bob", "robert")
    assert (renamed.old, renamed.name, renamed.is_default) == ("bob", "robert", True)
    assert renamed.address == bob.address
    assert peek_identity(store, "robert") is not None
    assert peek_identity(store, "broken") is None and peek_identity(store, "ghost") is None
    deleted = delete_identity(store, "robert")
    assert deleted.address == bob.address and deleted.moved_to is not None
    assert deleted.moved_to.exists() and store.default is None
    broken = delete_identity(store, "broken")  # a file that cannot be read is deleted too
    assert broken.address is None
    with pytest.raises(IdentityNotFound):
        delete_identity(store, "robert")


def test_show_asks_the_reader_for_the_ids_standing(store: KeyStore) -> None:
    alice = create_identity(store, "alice", PW)
    standing = ChainStanding(
        rpc_url="http://node",
        reputation=7000,
        receipts=[
            ChainReceipt(
                receipt_id=1,
                asset_id=2,
                holder=alice.address.lower(),
                role="owner",
                share_bps=7000,
                minted_at=1_765_000_000,
            )
        ],
    )
    seen: list[str] = []

    def reader(address: str) -> ChainStanding:
        seen.append(address)
        return standing

    shown = show_identity(store, None, standing=reader)
    assert seen == [alice.address] and shown.chain == standing
    document = shown.model_dump(mode="json")
    receipt = document["chain"]["receipts"][0]
    assert receipt["holder"] == alice.address  # checksummed
    assert receipt["minted_at"] == "2025-12-06T05:46:40Z"
    assert show_identity(store, "alice").chain is None
    assert isinstance(show_identity(store, "alice"), Identity)


def test_chain_standing_is_none_when_no_node_answers() -> None:
    from sahara_cli.protocol.standing import chain_standing

    assert chain_standing("http://127.0.0.1:9", TEST_ADDRESS_0, timeout=0.5) is None


def test_sign_and_verify_messages() -> None:
    signer = Signer(bytes.fromhex(TEST_KEY_0[2:]))
    signed = sign_message(signer, b"hello sahara")
    recovered = Account.recover_message(
        encode_defunct(text="hello sahara"), signature=signed.signature
    )
    assert recovered == signed.address == TEST_ADDRESS_0
    check = verify_message(b"hello sahara", signed.signature, TEST_ADDRESS_0.lower())
    assert (check.recovered, check.valid, check.expected) == (
        TEST_ADDRESS_0,
        True,
        TEST_ADDRESS_0,
    )
    assert verify_message(b"hello sahara", signed.signature).expected is None
    with pytest.raises(SignatureMismatch) as mismatch:
        verify_message(b"hello sahara", signed.signature, TEST_ADDRESS_1)
    assert mismatch.value.details["recovered"] == TEST_ADDRESS_0
    with pytest.raises(SignatureInvalid):
        verify_message(b"x", "0x1234")


def test_message_bytes(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(bytes(range(256)))
    assert message_bytes(None, blob) == bytes(range(256))
    assert message_bytes("0x00ff", hex_=True) == b"\x00\xff"
    assert message_bytes("hé") == "hé".encode()
    for bad in ((None, None), ("x", blob)):
        with pytest.raises(UsageError):
            message_bytes(*bad)
    with pytest.raises(UsageError):
        message_bytes("zz", hex_=True)
    with pytest.raises(FileUnreadable):
        message_bytes(None, tmp_path / "missing")


def test_typed_data(tmp_path: Path) -> None:
    from tests.unit.test_keys import TYPED

    path = tmp_path / "mail.json"
    path.write_text(json.dumps(TYPED))
    signer = Signer(bytes.fromhex(TEST_KEY_0[2:]))
    signed = sign_typed_data(signer, read_typed_data(path))
    assert signed.hash == "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    for text in ("{}", "[1, 2]"):
        path.write_text(text)
        with pytest.raises(SignatureInvalid):
            read_typed_data(path)
    path.write_text("not json")
    with pytest.raises(FileUnreadable):
        read_typed_data(path)


def test_chain_standing_reads_receipts_and_reputation(tmp_path: Path) -> None:
    """Against a real dev chain: an asset of two contributors gives each a receipt."""
    from sahara_cli.node.client import NodeClient
    from sahara_cli.node.rpc.testing import dev_node
    from sahara_cli.protocol.client import Contribution, Protocol
    from sahara_cli.protocol.standing import chain_standing, standing_reader

    owner = Signer(bytes.fromhex(TEST_KEY_0[2:]))
    with dev_node(tmp_path / "node") as (_, server):
        client = NodeClient(server.url)
        try:
            asset, _ = Protocol(client).register(
                owner,
                kind="dataset",
                cid="bafy-standing",
                commitment=b"\1" * 32,
                name="standing",
                contributors=[
                    Contribution(owner.address, 7000),
                    Contribution(TEST_ADDRESS_1, 3000),
                ],
            )
        finally:
            client.close()
        mine = chain_standing(server.url, owner.address)
        theirs = standing_reader(server.url)(TEST_ADDRESS_1.lower())
    assert mine is not None and theirs is not None
    assert mine.rpc_url == server.url
    assert [(r.asset_id, r.role, r.share_bps) for r in mine.receipts] == [(asset, "owner", 7000)]
    assert [(r.asset_id, r.role, r.share_bps) for r in theirs.receipts] == [
        (asset, "contributor", 3000)
    ]
    assert mine.reputation == 7000 and theirs.reputation == 3000
    assert theirs.receipts[0].holder == TEST_ADDRESS_1
    assert mine.receipts[0].minted_at.tzinfo is not None
