"""The sahara home: one directory that holds config, keys, chain data and logs.

Resolution order: ``--home`` flag, then ``SAHARA_HOME``, then the per-user data
directory (``~/.local/share/sahara`` on Linux). Nothing here creates files unless asked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sahara_cli.errors import HomeNotFound, HomePermission
from sahara_cli.fsutil import ensure_private_dir

HOME_ENV = "SAHARA_HOME"


def default_home() -> Path:
    """The home used when neither ``--home`` nor ``SAHARA_HOME`` is given."""
    from platformdirs import user_data_path

    return user_data_path("sahara", appauthor=False)


def resolve_home(flag: str | Path | None = None) -> Path:
    """Apply the precedence flag > env > default and return an absolute path."""
    if flag:
        raw = Path(flag)
    elif os.environ.get(HOME_ENV):
        raw = Path(os.environ[HOME_ENV])
    else:
        raw = default_home()
    return raw.expanduser().absolute()


@dataclass(frozen=True)
class Home:
    """Well-known paths inside a home directory."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    @property
    def keystore_dir(self) -> Path:
        return self.root / "keystore"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def backups_dir(self) -> Path:
        return self.root / "backups"

    def exists(self) -> bool:
        return self.root.is_dir()

    def require(self) -> Home:
        """Raise :class:`HomeNotFound` unless the home directory exists."""
        if not self.root.exists():
            raise HomeNotFound(f"sahara home {self.root} does not exist")
        if not self.root.is_dir():
            raise HomeNotFound(
                f"sahara home {self.root} is not a directory",
                hint="Pass --home with a directory path.",
            )
        return self

    def create(self) -> None:
        """Create the home and its private subdirectories (mode 0700)."""
        try:
            for path in (self.root, self.keystore_dir, self.logs_dir):
                ensure_private_dir(path)
        except PermissionError as exc:
            raise HomePermission(
                f"cannot create {exc.filename or self.root}: permission denied",
                hint="Choose a writable location with --home or SAHARA_HOME.",
            ) from exc
