"""What the compute and learning commands share: the workflow context and the vault server URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.commands._state import AppState

if TYPE_CHECKING:
    from sahara_cli.compute.workflow import Context


def context(st: AppState, signer_name: str | None, password_file: Path | None) -> Context:
    from sahara_cli.commands._vault import open_vault, reader
    from sahara_cli.compute.workflow import Context

    unlock, proto = reader(st, signer_name, password_file)
    return Context(st.home.require().root, open_vault(st), proto, unlock)


def server_url(st: AppState) -> str:
    """Where licensees of a job's output ask this home's 'vault serve' for its key."""
    from sahara_cli.vault.publish import server_url as url

    return url(st.config().config.vault)
