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
    cfg = st.config().config.vault
    return cfg.public_url or f"http://{cfg.serve_addr}"
