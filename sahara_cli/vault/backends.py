"""Open the vault of a home on the configured backend (local files or Kubo)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.errors import VaultBackendUnreachable
from sahara_cli.vault.reporting import SILENT, Reporter

if TYPE_CHECKING:
    from sahara_cli.config import VaultSection
    from sahara_cli.vault.blockstore import Blockstore
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.kubo import KuboDaemon
    from sahara_cli.vault.results import DaemonStatus, DaemonStopped

BACKENDS = ("local", "kubo")


def vault_root(home_root: Path) -> Path:
    return home_root / "vault"


def kubo_daemon(home_root: Path, cfg: VaultSection, *, need_binary: bool = True) -> KuboDaemon:
    """The Kubo daemon that ``sahara vault daemon`` runs for this home.

    Reading its status or API address, or stopping it, needs no binary.
    """
    from sahara_cli.errors import VaultKuboMissing
    from sahara_cli.vault.kubo import KuboDaemon, find_ipfs

    try:
        binary = find_ipfs(cfg.ipfs_bin)
    except VaultKuboMissing:
        if need_binary:
            raise
        binary = "ipfs"
    return KuboDaemon(vault_root(home_root) / "ipfs", binary)


def kubo_api_url(home_root: Path, cfg: VaultSection) -> str:
    if cfg.ipfs_api:
        return cfg.ipfs_api
    repo = vault_root(home_root) / "ipfs"
    if not (repo / "config").exists():
        raise VaultBackendUnreachable(
            "no Kubo daemon is set up for this home and vault.ipfs_api is unset",
            hint="Run 'sahara vault daemon start', or set vault.ipfs_api to a Kubo RPC URL.",
        )
    return kubo_daemon(home_root, cfg, need_binary=False).api_url


def open_store(home_root: Path, cfg: VaultSection, backend: str | None = None) -> Blockstore:
    name = backend or cfg.backend
    if name == "kubo":
        from sahara_cli.vault.kubo import KuboBlockstore

        # The same writers' lock as the local store: a gc from one sahara process never
        # runs between another's puts and its pin.
        return KuboBlockstore(
            kubo_api_url(home_root, cfg), lock_path=vault_root(home_root) / "writers.lock"
        )
    from sahara_cli.vault.local import LocalBlockstore

    return LocalBlockstore(vault_root(home_root))


def open_vault(home_root: Path, cfg: VaultSection, backend: str | None = None) -> Vault:
    from sahara_cli.vault.core import Vault

    return Vault(vault_root(home_root), open_store(home_root, cfg, backend))


def daemon_status(home_root: Path, cfg: VaultSection) -> DaemonStatus:
    """``vault daemon status``: whether this home's Kubo daemon runs, and where."""
    from sahara_cli.vault.results import DaemonStatus

    return DaemonStatus.model_validate(kubo_daemon(home_root, cfg, need_binary=False).status())


def start_daemon(
    home_root: Path, cfg: VaultSection, *, local: bool = True, report: Reporter = SILENT
) -> DaemonStatus:
    """``vault daemon start``: start Kubo for this home, creating its repository on first
    use (``local``: loopback only, no bootstrap peers)."""
    from sahara_cli.vault.results import DaemonStatus

    daemon = kubo_daemon(home_root, cfg)
    if not (daemon.repo / "config").exists():
        daemon.init(local_only=local)
    with report.status("Starting the IPFS daemon"):
        daemon.start()
    return DaemonStatus.model_validate(daemon.status())


def stop_daemon(home_root: Path, cfg: VaultSection) -> DaemonStopped:
    """``vault daemon stop``: stop this home's Kubo daemon (False: it was not running)."""
    from sahara_cli.vault.results import DaemonStopped

    return DaemonStopped(stopped=bool(kubo_daemon(home_root, cfg, need_binary=False).stop()))
