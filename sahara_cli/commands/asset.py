"""sahara asset: register AI assets on chain and look them up."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import (
    IdOption,
    PasswordFileOption,
    address_of,
    contributor_weights,
    parse_bps,
    parse_contributors,
    protocol,
    resolve_asset,
    signer,
    table,
    tx_rows,
    when,
)
from sahara_cli.commands._state import state
from sahara_cli.commands._vault import open_vault, registration_of
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from sahara_cli.protocol.assets import AssetView

app = typer.Typer(help="Register AI assets on chain and look them up.", no_args_is_help=True)

KIND_HELP = "dataset, model, agent or compute."
# CIDv0 (base58btc, Qm...) or a multibase CIDv1 (base32 b..., base36 k..., base58 z...).
_CID = re.compile(
    r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,}|k[0-9a-z]{20,}|z[1-9A-HJ-NP-Za-km-z]{20,})$"
)


def _render_asset(data: AssetView) -> Any:
    def render(console: Console) -> None:
        table(
            {
                "asset": f"#{data.asset_id}  {data.name}",
                "kind": data.kind,
                "owner": data.owner,
                "content id": data.cid,
                "commitment": data.commitment,
                "metadata": data.uri or None,
                "parents": ", ".join(f"#{p}" for p in data.parents) or None,
                "upstream share": f"{data.upstream_bps / 100:g}%" if data.parents else None,
                "meter": data.meter or "0x" + "0" * 40,
                "registered": when(int(data.created_at.timestamp())),
                "revenue": f"{data.revenue_sah} SAH",
            },
            "asset",
        )(console)
        grid = Table(title="contributors", title_justify="left", box=None)
        grid.add_column("account")
        grid.add_column("weight", justify="right")
        for entry in data.contributors:
            grid.add_row(entry.account, f"{entry.weight_bps / 100:g}%")
        console.print(grid)

    return render


def _content(
    path: Path, source: str, name: str | None, commitment: str | None
) -> tuple[str, bytes, str]:
    """Content id, plaintext commitment and name of what ``asset register`` was given.

    A file's content id and commitment come from the vault once it is added (empty here).
    """
    if path.is_file():
        cid, plain = "", b""
        if commitment is not None:
            raise UsageError("--commitment is computed from the file; give it only with a CID")
        name = name or path.name
    elif path.exists():
        raise UsageError(f"{source} is a directory; register a file or a CID")
    elif _CID.match(source):
        cid = source
        try:
            plain = bytes.fromhex((commitment or "00" * 32).removeprefix("0x"))
        except ValueError:
            plain = b""
        if len(plain) != 32:
            raise UsageError("--commitment must be 32 bytes of hex (a SHA-256)")
        if name is None:
            raise UsageError("--name is required when registering a CID")
    else:
        raise UsageError(
            f"{source!r} is neither a file nor a CID",
            hint="Give the path of a file, or an IPFS CID such as bafkrei...",
        )
    if not name.strip():
        raise UsageError("--name must not be empty")
    return cid, plain, name


@app.command("register")
@returns("sahara_cli.vault.results:AssetRegistered")
def register(
    source: Annotated[
        str,
        typer.Argument(
            help="A file (added to your vault; its CID is registered) or an IPFS CID.",
            show_default=False,
        ),
    ],
    kind: Annotated[str, typer.Option("--kind", help=KIND_HELP, show_default=False)],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Asset name (default: the file name).", show_default=False),
    ] = None,
    parents: Annotated[
        list[str] | None,
        typer.Option(
            "--parent", help="An asset this one derives from (repeatable).", show_default=False
        ),
    ] = None,
    contributors: Annotated[
        list[str] | None,
        typer.Option(
            "--contributor",
            help="ADDRESS:BPS revenue weight (repeatable); the owner keeps the rest.",
            show_default=False,
        ),
    ] = None,
    upstream_share: Annotated[
        str,
        typer.Option("--upstream-share", help="Share of revenue paid on to the parents, bps or %."),
    ] = "0",
    uri: Annotated[str, typer.Option("--uri", help="Metadata URI.")] = "",
    commitment: Annotated[
        str | None,
        typer.Option(
            "--commitment",
            help="Plaintext SHA-256 (hex) when SOURCE is a CID (default: none).",
            show_default=False,
        ),
    ] = None,
    public: Annotated[
        bool,
        typer.Option("--public", help="Keep a FILE unencrypted in the vault (plain IPFS CID)."),
    ] = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Register an asset owned by your Sahara ID; mints your ownership receipt.

    A FILE is added to your vault first (encrypted unless --public) and registered by its
    vault CID; 'sahara vault serve' then releases its key to licensees.
    """
    from sahara_cli.protocol.client import ASSET_KINDS
    from sahara_cli.vault.publish import register_asset

    if kind not in ASSET_KINDS:
        raise UsageError(f"--kind {kind!r} is not one of: {', '.join(ASSET_KINDS)}")
    path = Path(source)
    _, plain, name = _content(path, source, name, commitment)
    upstream = parse_bps(upstream_share, "--upstream-share")
    st = state()
    contributor_weights(st, contributors or [])  # bad addresses fail before anything else
    proto = protocol(st)
    parent_ids = [resolve_asset(proto, p) for p in parents or []]
    for parent in parent_ids:
        proto.asset(parent)  # an unknown parent: a clear error before signing
    if upstream and not parent_ids:
        raise UsageError("--upstream-share needs at least one --parent")
    who = signer(st, signer_name, password_file)
    entries, remainder = parse_contributors(st, contributors or [], who.address)
    registration = registration_of(st, kind, entries, parent_ids, upstream)
    cfg = st.config().config.vault
    vault = open_vault(st) if path.is_file() else None
    try:
        result = register_asset(
            proto,
            who,
            source=source if vault is None else str(path),
            name=name,
            registration=registration,
            commitment=plain,
            uri=uri,
            vault=vault,
            public=public,
            embedder=cfg.embedder if cfg.index else None,
            report=st.output,
        )
    finally:
        if vault is not None:
            vault.close()
    if result.vault_item is not None:
        lock = "public" if public else "encrypted to your ID"
        st.output.note(f"Added to your vault ({lock}); the asset's CID is {result.cid}.")
    if entries and remainder:
        st.output.note(f"You keep {remainder / 100:g}% of the revenue as owner.")

    def render(console: Console) -> None:
        console.print(
            f"Registered asset [bold]#{result.asset_id}[/] ({result.kind}) '{result.name}'"
        )
        table(tx_rows(result.tx))(console)

    st.output.result(result, render)


@app.command("show")
@returns("sahara_cli.protocol.assets:AssetView")
def show(
    asset: Annotated[
        str, typer.Argument(help="Asset id (12 or #12) or its content id.", show_default=False)
    ],
) -> None:
    """Show an asset: owner, content, parents, contributors and revenue."""
    from sahara_cli.protocol.assets import show_asset

    st = state()
    proto = protocol(st)
    result = show_asset(proto, resolve_asset(proto, asset))
    st.output.result(result, _render_asset(result))


@app.command("list")
@returns("sahara_cli.protocol.assets:AssetList")
def list_assets(
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="Only assets of this address or ID name.", show_default=False),
    ] = None,
    mine: Annotated[bool, typer.Option("--mine", help="Only assets of your default ID.")] = False,
    kind: Annotated[str | None, typer.Option("--kind", help=KIND_HELP, show_default=False)] = None,
) -> None:
    """List registered assets, newest last."""
    from sahara_cli.protocol.assets import list_assets as list_of
    from sahara_cli.protocol.client import ASSET_KINDS

    if kind is not None and kind not in ASSET_KINDS:
        raise UsageError(f"--kind {kind!r} is not one of: {', '.join(ASSET_KINDS)}")
    if owner and mine:
        raise UsageError("give --owner or --mine, not both")
    st = state()
    who = address_of(st, owner, "--owner") if owner else (address_of(st, None) if mine else None)
    result = list_of(protocol(st), st.home.root, owner=who, kind=kind)

    def render(console: Console) -> None:
        if not result.assets:
            console.print("No assets registered yet.")
            return
        grid = Table(box=None)
        for column in ("id", "kind", "name", "owner", "content id"):
            grid.add_column(column, overflow="fold")
        for a in result.assets:
            grid.add_row(f"#{a.asset_id}", a.kind, a.name, a.owner, a.cid)
        console.print(grid)

    st.output.result(result, render)


@app.command("update")
@returns("sahara_cli.protocol.assets:AssetUpdated")
def update(
    asset: Annotated[str, typer.Argument(help="Asset id or content id.", show_default=False)],
    uri: Annotated[
        str | None, typer.Option("--uri", help="New metadata URI.", show_default=False)
    ] = None,
    meter: Annotated[
        str | None,
        typer.Option(
            "--meter",
            help="Address or ID name allowed to record API calls (your serving node).",
            show_default=False,
        ),
    ] = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Change an asset's metadata URI or its API meter (owner only)."""
    from sahara_cli.protocol.assets import update_asset

    if uri is None and meter is None:
        raise UsageError("nothing to change: give --uri and/or --meter")
    st = state()
    meter_address = address_of(st, meter, "--meter") if meter is not None else None
    proto = protocol(st)
    asset_id = resolve_asset(proto, asset)
    who = signer(st, signer_name, password_file)
    result = update_asset(proto, who, asset_id, uri=uri, meter=meter_address)
    st.output.result(
        result,
        lambda c: c.print(f"Updated asset [bold]#{asset_id}[/] ({len(result.txs)} transaction(s))"),
    )
