"""``sahara init``: create a home, its config and a first Sahara ID, idempotently."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sahara_cli.config import load_config, set_value, write_defaults
from sahara_cli.errors import PasswordRequired
from sahara_cli.fsutil import ensure_private_dir
from sahara_cli.home import Home
from sahara_cli.identity.results import InitReport
from sahara_cli.identity.store import KeyStore, Progress


def is_initialised(home: Home) -> bool:
    return home.config_file.exists() or any(home.keystore_dir.glob("*.json"))


def _backup(home: Home) -> Path:
    """Move config and keystores to ``backups/init-<time>/``; nothing is deleted."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = home.backups_dir / f"init-{stamp}"
    ensure_private_dir(target)
    for item in (home.config_file, home.keystore_dir):
        if item.exists():
            shutil.move(str(item), str(target / item.name))
    return target


def init_home(
    home: Home,
    *,
    password: str | None,
    id_name: str = "main",
    create_id: bool = True,
    with_mnemonic: bool = False,
    force: bool = False,
    scrypt_n: int | None = None,
    progress: Progress | None = None,
) -> InitReport:
    """Create ``home`` with a config file and (unless ``create_id`` is False) a first ID.

    An initialised home is left alone (``created=False``) unless ``force``, which first
    moves the old config and keystores to a backup directory.
    """
    if is_initialised(home) and not force:
        return InitReport(
            home=home.root,
            created=False,
            config_file=home.config_file,
            address=None,
            identity=None,
            mnemonic=None,
            backup=None,
            notes=[f"{home.root} is already initialised; nothing changed (use --force to redo)"],
        )
    # Settings from the environment (e.g. SAHARA_IDENTITY_SCRYPT_N) are checked before
    # anything is written; with --force a broken old file is backed up, not read.
    loaded = load_config(None)
    if create_id and password is None:
        raise PasswordRequired("a password is needed to create the first Sahara ID")
    home.create()
    backup = _backup(home) if force and is_initialised(home) else None
    ensure_private_dir(home.keystore_dir)
    write_defaults(home.config_file)
    notes = [f"previous config and keys moved to {backup}"] if backup else []
    identity = phrase = None
    if create_id:
        from sahara_cli.identity.manage import describe

        assert password is not None
        store = KeyStore(
            home.keystore_dir,
            config_path=home.config_file,
            scrypt_n=scrypt_n or loaded.config.identity.scrypt_n,
        )
        info, phrase = store.create(
            id_name, password, with_mnemonic=with_mnemonic, progress=progress
        )
        set_value(home.config_file, "identity.default", info.name)
        identity = describe(replace(store.get(info.name), is_default=True))
    return InitReport(
        home=home.root,
        created=True,
        config_file=home.config_file,
        address=identity.address if identity else None,
        identity=identity,
        mnemonic=phrase,
        backup=backup,
        notes=notes,
    )
