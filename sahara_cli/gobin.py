"""Find the Go programs sahara drives: Kubo's ``ipfs`` (the vault) and ``cometbft`` (the node).

One lookup for both, in this order:

1. the value the user gave (a command-line flag such as ``--cometbft-bin``, or a config
   key such as ``vault.ipfs_bin``): a path, or a name looked up on PATH;
2. the environment variable (``SAHARA_IPFS_BIN``, ``SAHARA_COMETBFT_BIN``);
3. the project's cache, where the test set-up builds each pinned version once per machine
   (``$SAHARA_CACHE/go/bin-<name>-<version>/``, ``SAHARA_CACHE`` defaulting to
   ``${XDG_CACHE_HOME:-~/.cache}/sahara``);
4. the program's name on PATH.

A value given in 1 or 2 that is not an executable is an error (it is never skipped for a
later source); when nothing is found the error says how to install the program.

A bottom-layer module: it imports only the standard library and :mod:`sahara_cli.errors`,
so both ``node/`` and ``vault/`` use it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sahara_cli.errors import CometbftMissing, SaharaError, VaultKuboMissing

__all__ = [
    "BINARIES",
    "COMETBFT",
    "KUBO",
    "GoBinary",
    "Located",
    "cache_dir",
    "cache_root",
    "find_binary",
    "locate",
]


@dataclass(frozen=True)
class GoBinary:
    """A Go program sahara runs, and how to get it."""

    #: The executable's name on PATH.
    executable: str
    #: The project's name, for messages.
    project: str
    #: The environment variable that names the binary.
    env: str
    #: Where the user sets it (named in the error when that value is wrong).
    setting: str
    #: The directory name in the cache: ``bin-<cache_name>-<version>``.
    cache_name: str
    #: The version the project pins (and tests against).
    version: str
    #: The Go module ``go install`` builds it from.
    module: str
    #: The error raised when it is missing (each keeps its documented code).
    error: type[SaharaError]
    #: Go build tags ``go install`` needs (``-tags``), or "".
    tags: str = ""

    @property
    def install_hint(self) -> str:
        return (
            f"Build it with 'sahara setup {self.cache_name}' (or 'go install "
            f"{self.module}@{self.version}'), or set "
            f"{self.env}=/path/to/{self.executable} (or {self.setting})."
        )


KUBO = GoBinary(
    executable="ipfs",
    project="Kubo",
    env="SAHARA_IPFS_BIN",
    setting="vault.ipfs_bin",
    cache_name="kubo",
    version="v0.39.0",
    module="github.com/ipfs/kubo/cmd/ipfs",
    error=VaultKuboMissing,
    # Kubo's dependency cockroachdb/swiss gates its runtime hooks on a list of Go
    # versions; this tag lets a newer Go build it.
    tags="untested_go_version",
)
COMETBFT = GoBinary(
    executable="cometbft",
    project="CometBFT",
    env="SAHARA_COMETBFT_BIN",
    setting="--cometbft-bin",
    cache_name="cometbft",
    version="v0.38.25",
    module="github.com/cometbft/cometbft/cmd/cometbft",
    error=CometbftMissing,
)
#: Every Go program sahara drives, by the name ``sahara setup`` takes.
BINARIES = {b.cache_name: b for b in (KUBO, COMETBFT)}


def cache_root() -> Path:
    """``$SAHARA_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/sahara``."""
    explicit = os.environ.get("SAHARA_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sahara"


def cache_dir(binary: GoBinary) -> Path:
    """Where the pinned version is built: ``<cache>/go/bin-<name>-<version>/``; a
    ``.complete`` file in it marks a finished build."""
    return cache_root() / "go" / f"bin-{binary.cache_name}-{binary.version}"


def _cached(binary: GoBinary) -> str | None:
    """The pinned version in the project's cache, when a complete build is there."""
    directory = cache_dir(binary)
    candidate = directory / binary.executable
    if (directory / ".complete").is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


@dataclass(frozen=True)
class Located:
    """A binary found, and which source gave it: ``setting`` (a flag or config key),
    ``env``, ``cache`` or ``PATH``."""

    path: str
    source: str


def locate(binary: GoBinary, configured: str | None = None, *, source: str = "") -> Located:
    """Like :func:`find_binary`, and says where the binary was found."""
    for kind, where, value in (
        ("setting", source or binary.setting, configured),
        ("env", binary.env, os.environ.get(binary.env)),
    ):
        if not value:
            continue
        found = shutil.which(value)
        if found is None:
            raise binary.error(
                f"the {binary.project} binary {value!r} ({where}) is not an executable",
                hint=f"Point it at a {binary.project} {binary.version} binary. "
                + binary.install_hint,
            )
        return Located(found, kind)
    cached = _cached(binary)
    if cached is not None:
        return Located(cached, "cache")
    found = shutil.which(binary.executable)
    if found is None:
        raise binary.error(
            f"{binary.project}'s '{binary.executable}' binary was not found "
            f"({binary.setting}, {binary.env}, the cache, PATH)",
            hint=binary.install_hint,
        )
    return Located(found, "PATH")


def find_binary(binary: GoBinary, configured: str | None = None, *, source: str = "") -> str:
    """The path of ``binary``: ``configured``, its environment variable, the cache, PATH.

    ``source`` names where ``configured`` came from in the error (default: the binary's
    setting). Raises ``binary.error`` (``vault.kubo_missing``, ``localnet.cometbft_missing``).
    """
    return locate(binary, configured, source=source).path
