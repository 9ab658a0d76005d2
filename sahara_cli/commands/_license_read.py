"""sahara license list and sahara license check: reading licenses, sending nothing."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._license_parse import AssetArg, CheckType
from sahara_cli.commands._license_view import sah, utc
from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import address_of, protocol, resolve_asset
from sahara_cli.commands._state import state
from sahara_cli.errors import UsageError


@returns("sahara_cli.protocol.license_results:LicenseList")
def list_(
    mine: Annotated[
        bool, typer.Option("--mine", help="Only licenses held by your ID (see --id).")
    ] = False,
    asset: Annotated[
        str | None,
        typer.Option(
            "--asset", help="Only licenses of this asset (id or content id).", show_default=False
        ),
    ] = None,
    holder: Annotated[
        str | None,
        typer.Option(
            "--holder", help="Only licenses held by this address or ID.", show_default=False
        ),
    ] = None,
    id_name: Annotated[
        str | None,
        typer.Option(
            "--id", help="The ID --mine means (default: the default ID).", show_default=False
        ),
    ] = None,
) -> None:
    """List licenses sold on this chain (from the local index of chain events)."""
    from sahara_cli.protocol.licensing import list_licenses

    if mine and holder is not None:
        raise UsageError("give --mine or --holder, not both")
    if id_name is not None and not mine:
        raise UsageError("--id names whose licenses --mine lists: give --mine too")
    st = state()
    who: str | None = None
    if mine:
        who = st.keystore().resolve(id_name).address
    elif holder is not None:
        who = address_of(st, holder, "--holder")
    proto = protocol(st)
    asset_id = resolve_asset(proto, asset) if asset is not None else None
    with st.output.status("Reading licenses"):
        found = list_licenses(proto, st.home.require().root, holder=who, asset_id=asset_id)

    def render(console: Console) -> None:
        if not found.licenses:
            console.print("No licenses.")
            return
        grid = Table(title="Licenses", title_justify="left")
        for column in ("id", "asset", "type", "holder", "price", "expiry / calls", "status"):
            grid.add_column(column, no_wrap=column != "holder", overflow="fold")
        for lic in found.licenses:
            api = lic.type == "api"
            use = f"{lic.calls_left} left, {lic.calls_used} used" if api else utc(lic.expires_at)
            grid.add_row(
                str(lic.license_id),
                str(lic.asset_id),
                lic.type,
                lic.holder,
                sah(lic.price_wei),
                use,
                "active" if lic.active else "inactive",
            )
        console.print(grid)

    st.output.result(found, render)


@returns("sahara_cli.protocol.license_results:AccessCheck")
def check(
    asset: AssetArg,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help="Address or ID to check (default: the default ID).",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        CheckType,
        typer.Option("--type", help="License type that must grant access (any: of any type)."),
    ] = CheckType.any,
) -> None:
    """Say whether a user may use an asset: it owns it or holds a valid license.

    Prints access true or false, and the expiry of time-limited access.

    The exit status is 0 whether access is true or false:
    scripts read "access" from the --json document.
    """
    from sahara_cli.protocol.licensing import check_access

    st = state()
    address = address_of(st, user, "--user")
    proto = protocol(st)
    found = check_access(proto, resolve_asset(proto, asset), address, kind.value)

    def render(console: Console) -> None:
        scope = "any license" if kind is CheckType.any else f"a {kind.value} license"
        verdict = "[green]yes[/]" if found.access else "[red]no[/]"
        console.print(f"access: {verdict}  [dim]asset {found.asset_id}, {scope}, {address}[/]")
        if found.owner:
            console.print("  the user owns the asset")
        if found.calls_left:
            console.print(f"  prepaid api calls left: {found.calls_left}")
        granted = [name for name, ok in (found.types or {}).items() if ok]
        if granted:
            console.print(f"  granted by: {', '.join(granted)}")
        if found.expires_at is not None or found.never_expires:
            console.print(f"  until: {utc(found.expires_at)}")

    st.output.result(found, render)
