"""The keystore directory of a home: one encrypted keystore v3 file per Sahara ID.

Layout: ``<home>/keystore/<name>.json``, mode 0600, in a 0700 directory. Each file is
a standard keystore v3 document with one extra member, ``"sahara"``, holding what can be
shown without the password: the public key (for vault key wrapping), when and how the
ID was made. ``export`` returns the document without that member.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sahara_cli import config as config_mod
from sahara_cli.errors import (
    IdentityExists,
    IdentityNotFound,
    KeystoreInvalid,
    NoDefaultIdentity,
    SaharaError,
    SecretInvalid,
    WrongPassword,
)
from sahara_cli.fsutil import PRIVATE_FILE, ensure_private_dir, fsync_dir, move_new, write_new
from sahara_cli.identity import keystore
from sahara_cli.identity.keys import (
    Signer,
    address_of_public_key,
    check_private_key,
    public_key_of,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: Called with a short description before slow key derivation, so a UI can show it.
Progress = Callable[[str], None]


def check_name(name: str) -> str:
    if not _NAME.match(name) or name.endswith(".json"):
        raise SecretInvalid(
            f"invalid ID name {name!r}",
            hint="Use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
            code="identity.bad_name",
        )
    return name


@dataclass(frozen=True)
class IdentityInfo:
    """What is known about an ID without its password."""

    name: str
    address: str
    public_key: str
    created: str
    origin: str  # generated | mnemonic | private-key | keystore
    hd_path: str | None
    path: Path
    is_default: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out


class KeyStore:
    """Create, import, unlock, export, rename and delete Sahara IDs in one directory."""

    def __init__(
        self,
        directory: Path,
        *,
        config_path: Path | None = None,
        default: str | None = None,
        scrypt_n: int = keystore.DEFAULT_SCRYPT_N,
        trash_dir: Path | None = None,
    ) -> None:
        self.directory = directory
        self.trash_dir = trash_dir
        self.config_path = config_path
        self.default = default
        self.scrypt_n = scrypt_n

    # -- reading ---------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.json"

    def _load(self, path: Path) -> dict[str, Any]:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IdentityNotFound(f"no Sahara ID named '{path.stem}'") from None
        except PermissionError as exc:
            raise KeystoreInvalid(
                f"cannot read keystore {path}: permission denied",
                hint="Check the file's owner and mode (it should be 0600 and yours).",
            ) from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise KeystoreInvalid(f"keystore {path} is not valid JSON: {exc}") from exc
        try:
            return keystore.validate(document)
        except KeystoreInvalid as exc:
            raise KeystoreInvalid(f"keystore {path}: {exc.message}") from exc

    def _info(self, path: Path, document: dict[str, Any]) -> IdentityInfo:
        meta = document.get("sahara") or {}
        public_key = str(meta.get("publicKey", ""))
        address = "0x" + str(document.get("address", "")).lower().removeprefix("0x")
        if public_key:
            try:
                derived = address_of_public_key(bytes.fromhex(public_key.removeprefix("0x")))
            except (ValueError, SaharaError) as exc:
                raise KeystoreInvalid(f"keystore {path}: bad public key") from exc
            if derived.lower() != address.lower():
                raise KeystoreInvalid(f"keystore {path}: public key does not match address")
            address = derived
        return IdentityInfo(
            name=path.stem,
            address=address,
            public_key=public_key,
            created=str(meta.get("created", "")),
            origin=str(meta.get("origin", "keystore")),
            hd_path=meta.get("hdPath"),
            path=path,
            is_default=path.stem == self.default,
        )

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json") if _NAME.match(p.stem))

    def list(self) -> list[IdentityInfo | KeystoreInvalid]:
        """Every ID, in name order; a broken file appears as its error, not a crash."""
        out: list[IdentityInfo | KeystoreInvalid] = []
        for name in self.names():
            try:
                out.append(self.get(name))
            except IdentityNotFound:  # deleted or renamed since the listing, or a dead link
                continue
            except KeystoreInvalid as exc:
                exc.details["name"] = name
                out.append(exc)
        return out

    def get(self, name: str) -> IdentityInfo:
        path = self._path(name)
        return self._info(path, self._load(path))

    def resolve(self, name: str | None) -> IdentityInfo:
        """The named ID, or the default one when ``name`` is None."""
        if name:
            return self.get(name)
        if self.default:
            return self.get(self.default)
        names = self.names()
        if len(names) == 1:
            return self.get(names[0])
        if not names:
            raise IdentityNotFound(
                "there is no Sahara ID yet", hint="Run 'sahara id create NAME' or 'sahara init'."
            )
        raise NoDefaultIdentity(f"{len(names)} IDs and no default: which one?")

    def find_address(self, address: str) -> IdentityInfo | None:
        for item in self.list():
            if isinstance(item, IdentityInfo) and item.address.lower() == address.lower():
                return item
        return None

    # -- secrets ---------------------------------------------------------------------

    def _decrypt(self, info: IdentityInfo, document: dict[str, Any], password: str) -> bytes:
        """The ID's private key; a wrong password names the ID it was tried on."""
        try:
            return keystore.decrypt(document, password)
        except WrongPassword as exc:
            raise WrongPassword(
                f"wrong password for Sahara ID '{info.name}' ({info.address})",
                details={"name": info.name, "address": info.address},
            ) from exc

    def unlock(self, name: str | None, password: str, progress: Progress | None = None) -> Signer:
        info = self.resolve(name)
        if progress:
            progress(f"Unlocking {info.name}")
        return Signer(self._decrypt(info, self._load(info.path), password))

    def export(
        self, name: str | None, password: str, progress: Progress | None = None
    ) -> dict[str, Any]:
        """The keystore v3 document, after proving the password opens it."""
        info = self.resolve(name)
        document = self._load(info.path)
        if progress:
            progress(f"Checking the password of {info.name}")
        self._decrypt(info, document, password)
        return {k: v for k, v in document.items() if k != "sahara"}

    # -- writing ---------------------------------------------------------------------

    def _store(
        self,
        name: str,
        private_key: bytes,
        password: str,
        *,
        origin: str,
        hd_path: str | None = None,
        progress: Progress | None = None,
    ) -> IdentityInfo:
        check_private_key(private_key)
        path = self._path(name)
        if path.exists():
            raise IdentityExists(f"a Sahara ID named '{name}' exists already")
        public_key = public_key_of(private_key)
        existing = self.find_address(address_of_public_key(public_key))
        if existing is not None:
            raise IdentityExists(
                f"this key is already stored as '{existing.name}' ({existing.address})",
                hint=f"Use 'sahara id rename {existing.name} {name}' to change its name.",
            )
        if progress:
            progress(f"Encrypting {name} (scrypt, n={self.scrypt_n})")
        document = keystore.encrypt(private_key, password, scrypt_n=self.scrypt_n)
        document["sahara"] = {
            "publicKey": "0x" + public_key.hex(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "origin": origin,
            "hdPath": hd_path,
        }
        ensure_private_dir(self.directory)
        try:  # never replaces a file of that name, even one written since the check above
            write_new(path, (json.dumps(document, indent=2) + "\n").encode(), mode=PRIVATE_FILE)
        except FileExistsError:
            raise IdentityExists(f"a Sahara ID named '{name}' exists already") from None
        return self._info(path, document)

    def create(
        self,
        name: str,
        password: str,
        *,
        with_mnemonic: bool = False,
        words: int = 12,
        progress: Progress | None = None,
    ) -> tuple[IdentityInfo, str | None]:
        """A new random ID; with ``with_mnemonic`` also the BIP-39 phrase it derives from."""
        check_name(name)
        if self._path(name).exists():
            raise IdentityExists(f"a Sahara ID named '{name}' exists already")
        if with_mnemonic:
            from sahara_cli.identity import mnemonic

            phrase = mnemonic.generate(words)
            key = mnemonic.derive(phrase, mnemonic.DEFAULT_PATH)
            info = self._store(
                name,
                key,
                password,
                origin="mnemonic",
                hd_path=mnemonic.DEFAULT_PATH,
                progress=progress,
            )
            return info, phrase
        import os

        while True:
            key = os.urandom(32)
            with contextlib.suppress(SecretInvalid):
                check_private_key(key)
                break
        return self._store(name, key, password, origin="generated", progress=progress), None

    def import_private_key(
        self, name: str, private_key: bytes, password: str, progress: Progress | None = None
    ) -> IdentityInfo:
        return self._store(name, private_key, password, origin="private-key", progress=progress)

    def import_mnemonic(
        self,
        name: str,
        phrase: str,
        password: str,
        *,
        path: str | None = None,
        progress: Progress | None = None,
    ) -> IdentityInfo:
        from sahara_cli.identity import mnemonic

        hd_path = path or mnemonic.DEFAULT_PATH
        key = mnemonic.derive(phrase, hd_path)
        return self._store(
            name, key, password, origin="mnemonic", hd_path=hd_path, progress=progress
        )

    def import_keystore(
        self,
        name: str,
        document: Any,
        keystore_password: str,
        password: str | None = None,
        progress: Progress | None = None,
    ) -> IdentityInfo:
        """Decrypt a foreign keystore and store it re-encrypted (scrypt) under ``password``."""
        if progress:
            progress("Decrypting the keystore to import")
        key = keystore.decrypt(document, keystore_password)
        return self._store(
            name,
            key,
            password if password is not None else keystore_password,
            origin="keystore",
            progress=progress,
        )

    def use(self, name: str) -> IdentityInfo:
        """Make ``name`` the default ID (stored in the config file)."""
        info = self.get(name)
        if self.config_path is None:
            raise IdentityNotFound("no config file to record the default ID in")
        config_mod.set_value(self.config_path, "identity.default", name)
        self.default = name
        return IdentityInfo(**{**asdict(info), "is_default": True})

    def _file_default(self) -> str | None:
        if self.config_path is None:
            return None
        value = config_mod.read_file(self.config_path).get("identity", {}).get("default")
        return value if isinstance(value, str) else None

    def rename(self, old: str, new: str) -> IdentityInfo:
        source = self._path(old)
        target = self._path(new)
        self.get(old)  # raises when missing or broken
        try:  # a link, not a rename: it cannot replace an ID that appears meanwhile
            move_new(source, target)
        except FileExistsError:
            raise IdentityExists(f"a Sahara ID named '{new}' exists already") from None
        except FileNotFoundError:
            raise IdentityNotFound(f"no Sahara ID named '{old}'") from None
        if self.config_path is not None and self._file_default() == old:
            config_mod.set_value(self.config_path, "identity.default", new)
        if self.default == old:
            self.default = new
        return self.get(new)

    def _keep(self, path: Path, name: str) -> Path:
        """Move ``path`` into the trash directory under a name no other backup has."""
        assert self.trash_dir is not None
        ensure_private_dir(self.trash_dir)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for attempt in range(1, 10_000):
            suffix = "" if attempt == 1 else f"-{attempt}"
            kept = self.trash_dir / f"{name}-{stamp}{suffix}.json"
            try:
                move_new(path, kept)
            except FileExistsError:  # a backup of this name from the same second
                continue
            return kept
        raise IdentityExists(f"too many backups of '{name}' in {self.trash_dir} this second")

    def delete(self, name: str) -> tuple[IdentityInfo, Path | None]:
        """Remove an ID; with a trash directory the file is moved there, not destroyed.

        Returns the ID and where its keystore went (None when it was unlinked).
        """
        path = self._path(name)
        if not path.exists():
            raise IdentityNotFound(f"no Sahara ID named '{name}'")
        try:
            info = self.get(name)
        except KeystoreInvalid:  # a broken file may still be deleted
            info = IdentityInfo(name, "", "", "", "unknown", None, path)
        kept: Path | None = None
        try:
            if self.trash_dir is not None:
                kept = self._keep(path, name)
            else:
                path.unlink()
                fsync_dir(self.directory)
        except FileNotFoundError:  # deleted or renamed by another process meanwhile
            raise IdentityNotFound(f"no Sahara ID named '{name}'") from None
        if self.config_path is not None and self._file_default() == name:
            config_mod.unset_value(self.config_path, "identity.default")
        if self.default == name:
            self.default = None
        return info, kept


def read_secret_file(path: Path, what: str, *, first_line: bool = False) -> str:
    """A secret from a file, without surrounding whitespace.

    With ``first_line`` only the first line counts (passwords, as geth reads them, so a
    trailing newline or a comment line below never becomes part of the password).
    """
    from sahara_cli.errors import FileUnreadable

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileUnreadable(f"{what} file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FileUnreadable(f"cannot read {what} file {path}: {exc}") from exc
    if first_line:
        text = text.splitlines()[0] if text.splitlines() else ""
    secret = text.strip()
    if not secret:
        raise FileUnreadable(f"{what} file {path} is empty")
    return secret
