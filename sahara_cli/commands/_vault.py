"""What the vault, asset and model commands share: opening the home's vault, the ID that
reads it, and the options every vault command takes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._state import AppState
from sahara_cli.errors import UsageError
from sahara_cli.units import human_size

if TYPE_CHECKING:
    from collections.abc import Callable

    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Contribution, Protocol
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.publish import Registration
    from sahara_cli.vault.results import AddedItem

Backend = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Block storage: local (files in the home) or kubo (IPFS daemon).",
        show_default="config vault.backend",
    ),
]
Ref = Annotated[
    str,
    typer.Argument(help="Asset id (42), CID (bafy...) or item name.", show_default=False),
]


def open_vault(st: AppState, backend: str | None = None) -> Vault:
    """The home's vault on ``--backend`` (default: config vault.backend)."""
    from sahara_cli.vault.backends import BACKENDS
    from sahara_cli.vault.backends import open_vault as _open

    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"--backend {backend!r} is not one of: {', '.join(BACKENDS)}")
    home = st.home.require()
    return _open(home.root, st.config().config.vault, backend)


def reader(
    st: AppState, signer_name: str | None, password_file: Path | None
) -> tuple[Callable[[], Signer], Callable[[], Protocol]]:
    """The ID that reads (unlocked once, on first use) and the node (reached on first use)."""
    from sahara_cli.commands._protocol import protocol

    signers: list[Signer] = []
    nodes: list[Protocol] = []

    def unlock() -> Signer:
        if not signers:
            who, _, _ = st.unlock(signer_name, password_file)
            signers.append(who)
        return signers[0]

    def proto() -> Protocol:
        if not nodes:
            nodes.append(protocol(st))
        return nodes[0]

    return unlock, proto


def registration_of(
    st: AppState, kind: str, contributors: list[Contribution], parents: list[int], upstream: int
) -> Registration:
    """A registration whose private items point licensees at this home's 'vault serve'."""
    from sahara_cli.protocol.client import ASSET_KINDS
    from sahara_cli.vault.publish import Registration, server_url

    if kind not in ASSET_KINDS:
        raise UsageError(f"--kind {kind!r} is not one of: {', '.join(ASSET_KINDS)}")
    return Registration(
        kind=kind,
        contributors=contributors,
        parents=parents,
        upstream_bps=upstream,
        server_url=server_url(st.config().config.vault),
    )


def kv(rows: dict[str, Any]) -> Any:
    """A key/value grid renderer for people."""

    def render(console: Console) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        for key, value in rows.items():
            grid.add_row(key, str(value))
        console.print(grid)

    return render


def render_added(items: list[AddedItem]) -> Any:
    def render(console: Console) -> None:
        for entry in items:
            verb = "Added" if entry.new else "Already in the vault:"
            lock = "encrypted" if entry.encrypted else "public"
            size = human_size(entry.size)
            console.print(f"{verb} [bold]{entry.name}[/] ({size}, {lock}) {entry.cid}")
            if entry.asset_id is not None:
                console.print(f"  registered as asset [bold]#{entry.asset_id}[/]")
            if entry.chunks:
                console.print(f"  indexed {entry.chunks} chunks for search")

    return render
