"""The life of the Sahara IDs of a home, as library functions (what ``sahara id`` does).

Each function takes the home's :class:`~sahara_cli.identity.store.KeyStore` and returns a
typed result of :mod:`sahara_cli.identity.results`. Nothing here prompts or prints:
passwords come in as arguments (or, where which password is needed depends on the input,
through a :data:`PasswordFor` callback), and slow key derivation reports through a
:data:`~sahara_cli.identity.store.Progress` callback.

For example::

    store = KeyStore(home / "keystore", config_path=home / "config.toml")
    alice = create_identity(store, "alice", password)
    [i.name for i in list_identities(store).ids]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sahara_cli.errors import FileUnreadable, SaharaError, UsageError
from sahara_cli.identity.results import (
    ChainStanding,
    CreatedIdentity,
    DeletedIdentity,
    ErrorInfo,
    Identity,
    IdentityDetails,
    IdentityExport,
    IdentityList,
    KeystoreProblem,
    RenamedIdentity,
)
from sahara_cli.identity.store import IdentityInfo, KeyStore, Progress, read_secret_file

#: ``password_for(purpose, new)``: the password for ``purpose`` ("encrypt the ID 'bob'");
#: ``new`` when it will encrypt something new (a UI then asks for it twice).
PasswordFor = Callable[[str, bool], str]
#: Reads what the chain knows of an address; None when no node answers.
StandingReader = Callable[[str], ChainStanding | None]


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:  # empty, or written by hand
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def describe(info: IdentityInfo) -> Identity:
    """The typed form of what the keystore file says about an ID."""
    return Identity(
        name=info.name,
        address=info.address,
        public_key=info.public_key or None,
        created_at=_moment(info.created),
        origin=info.origin,
        hd_path=info.hd_path,
        path=info.path,
        is_default=info.is_default,
    )


def _default_if_first(store: KeyStore, info: IdentityInfo) -> IdentityInfo:
    """The first ID of a home without a default becomes the default."""
    return store.use(info.name) if store.default is None else info


def create_identity(
    store: KeyStore,
    name: str,
    password: str,
    *,
    with_mnemonic: bool = False,
    words: int = 12,
    progress: Progress | None = None,
) -> CreatedIdentity:
    """A new ID with a random key, or derived from a new BIP-39 mnemonic (returned once)."""
    info, phrase = store.create(
        name, password, with_mnemonic=with_mnemonic, words=words, progress=progress
    )
    info = _default_if_first(store, info)
    return CreatedIdentity(**describe(info).model_dump(), mnemonic=phrase)


def read_json_file(file: Path, what: str) -> Any:
    """The JSON document in ``file``; :class:`FileUnreadable` names ``what`` it should be."""
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileUnreadable(f"{what} {file} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileUnreadable(f"cannot read {what} {file} as JSON: {exc}") from exc


def check_import_source(
    private_key_file: Path | None,
    mnemonic_file: Path | None,
    keystore_file: Path | None,
    hd_path: str | None = None,
) -> None:
    """Raise ``usage`` unless exactly one source is given (and a path only with a mnemonic)."""
    sources = [s for s in (private_key_file, mnemonic_file, keystore_file) if s is not None]
    if len(sources) != 1:
        raise UsageError("give exactly one of --private-key-file, --mnemonic-file, --keystore")
    if hd_path is not None and mnemonic_file is None:
        raise UsageError("--path only applies to --mnemonic-file")


def import_identity(
    store: KeyStore,
    name: str,
    password_for: PasswordFor,
    *,
    private_key_file: Path | None = None,
    mnemonic_file: Path | None = None,
    keystore_file: Path | None = None,
    hd_path: str | None = None,
    progress: Progress | None = None,
) -> Identity:
    """Import a key from exactly one of a private-key, mnemonic or keystore v3 file.

    The file is read and checked before a password is asked: for a keystore, the one that
    opens it (the ID keeps it); otherwise a new one to encrypt the ID with.
    """
    from sahara_cli.identity.keys import parse_private_key

    check_import_source(private_key_file, mnemonic_file, keystore_file, hd_path)
    if keystore_file is not None:
        document = read_json_file(keystore_file, "keystore file")
        password = password_for(f"open {keystore_file.name}", False)
        info = store.import_keystore(name, document, password, progress=progress)
    elif private_key_file is not None:
        key = parse_private_key(read_secret_file(private_key_file, "private key"))
        password = password_for(f"encrypt the ID '{name}'", True)
        info = store.import_private_key(name, key, password, progress=progress)
    else:
        assert mnemonic_file is not None
        phrase = read_secret_file(mnemonic_file, "mnemonic")
        password = password_for(f"encrypt the ID '{name}'", True)
        info = store.import_mnemonic(name, phrase, password, path=hd_path, progress=progress)
    return describe(_default_if_first(store, info))


def export_identity(
    store: KeyStore,
    name: str | None,
    password: str,
    *,
    private_key: bool = False,
    output: Path | None = None,
    progress: Progress | None = None,
) -> IdentityExport:
    """The ID's keystore v3 document (or, with ``private_key``, its raw key).

    The password is checked either way. With ``output`` the secret goes to that file
    (mode 0600, written atomically) and not into the result.
    """
    from sahara_cli.fsutil import atomic_write

    info = store.resolve(name)
    secret: str | None = None
    document: dict[str, Any] | None = None
    if private_key:
        secret = "0x" + store.unlock(info.name, password, progress=progress).private_key.hex()
        text = secret + "\n"
    else:
        document = store.export(info.name, password, progress=progress)
        text = json.dumps(document, indent=2) + "\n"
    if output is not None:
        atomic_write(output, text.encode())
        return IdentityExport(name=info.name, address=info.address, output=output)
    return IdentityExport(
        name=info.name, address=info.address, keystore=document, private_key=secret
    )


def list_identities(store: KeyStore) -> IdentityList:
    """Every ID of the home in name order; a keystore that cannot be read, as its error."""
    rows: list[Identity | KeystoreProblem] = []
    for item in store.list():
        if isinstance(item, IdentityInfo):
            rows.append(describe(item))
        else:
            error = ErrorInfo(code=item.code, message=item.message, hint=item.hint)
            rows.append(KeystoreProblem(name=item.details["name"], error=error))
    return IdentityList(ids=rows)


def show_identity(
    store: KeyStore, name: str | None, *, standing: StandingReader | None = None
) -> IdentityDetails:
    """The ID (the default one when ``name`` is None), with what ``standing`` reads of it."""
    identity = describe(store.resolve(name))
    chain = standing(identity.address) if standing is not None else None
    return IdentityDetails(**identity.model_dump(), chain=chain)


def use_identity(store: KeyStore, name: str) -> Identity:
    """Make ``name`` the default ID (``identity.default`` in the config file)."""
    return describe(store.use(name))


def rename_identity(store: KeyStore, old: str, new: str) -> RenamedIdentity:
    """Rename an ID's keystore; the default follows it."""
    return RenamedIdentity(**describe(store.rename(old, new)).model_dump(), old=old)


def peek_identity(store: KeyStore, name: str) -> Identity | None:
    """The ID of that name, or None when there is none or its keystore cannot be read."""
    try:
        return describe(store.get(name))
    except SaharaError:  # missing, unreadable, or a bad name the next step reports
        return None


def delete_identity(store: KeyStore, name: str) -> DeletedIdentity:
    """Remove an ID; with a trash directory its keystore is moved there, not destroyed."""
    deleted, kept = store.delete(name)
    return DeletedIdentity(name=name, address=deleted.address or None, moved_to=kept)
