"""sahara asset: register AI assets on chain and look them up."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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
from sahara_cli.errors import ProtocolReverted, UsageError

if TYPE_CHECKING:
    from sahara_cli.protocol.client import Asset, Protocol

app = typer.Typer(help="Register AI assets on chain and look them up.", no_args_is_help=True)

KIND_HELP = "dataset, model, agent or compute."
# CIDv0 (base58btc, Qm...) or a multibase CIDv1 (base32 b..., base36 k..., base58 z...).
_CID = re.compile(
    r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,}|k[0-9a-z]{20,}|z[1-9A-HJ-NP-Za-km-z]{20,})$"
)


def asset_dict(proto: Protocol, asset: Asset) -> dict[str, Any]:
    contributors = proto.contributors(asset.id)
    received = proto.received(asset.id)
    from sahara_cli.node.client import format_sah

    return {
        **asset.to_dict(),
        "created_at": when(asset.created),
        "upstream_bps": proto.upstream_bps(asset.id),
        "contributors": [{"account": c.account, "weight_bps": c.weight_bps} for c in contributors],
        "revenue": str(received),
        "revenue_sah": format_sah(received),
    }


def _render_asset(data: dict[str, Any]) -> Any:
    def render(console: Console) -> None:
        table(
            {
                "asset": f"#{data['id']}  {data['name']}",
                "kind": data["kind"],
                "owner": data["owner"],
                "content id": data["cid"],
                "commitment": data["commitment"],
                "metadata": data["uri"] or None,
                "parents": ", ".join(f"#{p}" for p in data["parents"]) or None,
                "upstream share": f"{data['upstream_bps'] / 100:g}%" if data["parents"] else None,
                "meter": data["meter"],
                "registered": data["created_at"],
                "revenue": f"{data['revenue_sah']} SAH",
            },
            "asset",
        )(console)
        grid = Table(title="contributors", title_justify="left", box=None)
        grid.add_column("account")
        grid.add_column("weight", justify="right")
        for entry in data["contributors"]:
            grid.add_row(entry["account"], f"{entry['weight_bps'] / 100:g}%")
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

    if kind not in ASSET_KINDS:
        raise UsageError(f"--kind {kind!r} is not one of: {', '.join(ASSET_KINDS)}")
    path = Path(source)
    cid, plain, name = _content(path, source, name, commitment)
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
    with contextlib.ExitStack() as stack:
        item = vault = None
        if path.is_file():
            # Files go into the vault first: the asset's CID is the vault item's
            # (encrypted unless --public), its commitment the plaintext's SHA-256.
            from sahara_cli.commands import vault as vault_cmd

            vault = stack.enter_context(vault_cmd.open_vault(st))
            item = vault.ensure_commitment(
                vault_cmd.add_one(st, vault, path, who, public=public, name=name)
            )
            if item.asset_id is not None:
                raise UsageError(
                    f"{path} is already registered as asset #{item.asset_id}",
                    hint=f"See it with 'sahara asset show {item.asset_id}'.",
                )
            cid, plain = item.cid, bytes.fromhex(item.commitment.removeprefix("0x"))
            # Only an asset of ours may carry this item; a CID another address
            # registered first is refused, naming it (vault.cid_taken).
            from sahara_cli.vault.registration import own_asset_for

            mine = own_asset_for(proto, cid, who.address)
            if mine is not None:
                vault.db.update(item.id, asset_id=mine, state="ready")
                raise UsageError(
                    f"{path} is already registered as asset #{mine}",
                    hint=f"See it with 'sahara asset show {mine}'.",
                )
            uri = uri or vault_cmd.served_uri(st, item)
            vault.db.update(item.id, state="registering")
        try:
            with st.output.status("Registering the asset"):
                asset_id, tx = proto.register(
                    who,
                    kind=kind,
                    cid=cid,
                    commitment=plain,
                    name=name,
                    uri=uri,
                    parents=parent_ids,
                    contributors=entries,
                    upstream_bps=upstream,
                )
        except ProtocolReverted:
            if item is not None and vault is not None:
                vault.db.update(item.id, state="ready")  # nothing was registered for us
                from sahara_cli.vault.registration import own_asset_for

                own_asset_for(proto, cid, who.address)  # taken meanwhile: say by whom
            raise
        data = {**asset_dict(proto, proto.asset(asset_id)), "transaction": tx.to_dict()}
        if item is not None and vault is not None:
            vault_cmd.registered(st, vault, item, asset_id, tx.hash)
            data["vault"] = vault.db.by_id(item.id).to_dict()
            lock = "public" if public else "encrypted to your ID"
            st.output.note(f"Added to your vault ({lock}); the asset's CID is {cid}.")
    if entries and remainder:
        st.output.note(f"You keep {remainder / 100:g}% of the revenue as owner.")
    st.output.result(data, _render_registered(data, tx_rows(tx)))


def _render_registered(data: dict[str, Any], tx: dict[str, Any]) -> Any:
    def render(console: Console) -> None:
        console.print(f"Registered asset [bold]#{data['id']}[/] ({data['kind']}) '{data['name']}'")
        table(tx)(console)

    return render


@app.command("show")
def show(
    asset: Annotated[
        str, typer.Argument(help="Asset id (12 or #12) or its content id.", show_default=False)
    ],
) -> None:
    """Show an asset: owner, content, parents, contributors and revenue."""
    st = state()
    proto = protocol(st)
    data = asset_dict(proto, proto.asset(resolve_asset(proto, asset)))
    st.output.result(data, _render_asset(data))


@app.command("list")
def list_assets(
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="Only assets of this address or ID name.", show_default=False),
    ] = None,
    mine: Annotated[bool, typer.Option("--mine", help="Only assets of your default ID.")] = False,
    kind: Annotated[str | None, typer.Option("--kind", help=KIND_HELP, show_default=False)] = None,
) -> None:
    """List registered assets, newest last."""
    from sahara_cli.protocol.client import ASSET_KINDS
    from sahara_cli.protocol.index import ProtocolIndex

    if kind is not None and kind not in ASSET_KINDS:
        raise UsageError(f"--kind {kind!r} is not one of: {', '.join(ASSET_KINDS)}")
    if owner and mine:
        raise UsageError("give --owner or --mine, not both")
    st = state()
    who = address_of(st, owner, "--owner") if owner else (address_of(st, None) if mine else None)
    proto = protocol(st)
    assets = ProtocolIndex.for_home(proto, st.home.root).assets(owner=who, kind=kind)
    data = {"owner": who, "kind": kind, "assets": [a.to_dict() for a in assets]}

    def render(console: Console) -> None:
        if not assets:
            console.print("No assets registered yet.")
            return
        grid = Table(box=None)
        for column in ("id", "kind", "name", "owner", "content id"):
            grid.add_column(column, overflow="fold")
        for a in assets:
            grid.add_row(f"#{a.id}", a.kind, a.name, a.owner, a.cid)
        console.print(grid)

    st.output.result(data, render)


@app.command("update")
def update(
    asset: Annotated[str, typer.Argument(help="Asset id or content id.", show_default=False)],
    uri: Annotated[
        str | None, typer.Option("--uri", help="New metadata URI.", show_default=False)
    ] = None,
    meter: Annotated[
        str | None,
        typer.Option(
            "--meter",
            help="Address allowed to record API calls (your serving node).",
            show_default=False,
        ),
    ] = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Change an asset's metadata URI or its API meter (owner only)."""
    if uri is None and meter is None:
        raise UsageError("nothing to change: give --uri and/or --meter")
    st = state()
    meter_address = address_of(st, meter, "--meter") if meter is not None else None
    proto = protocol(st)
    asset_id = resolve_asset(proto, asset)
    who = signer(st, signer_name, password_file)
    txs = []
    if uri is not None:
        txs.append(proto.set_metadata(who, asset_id, uri))
    if meter_address is not None:
        txs.append(proto.set_meter(who, asset_id, meter_address))
    data = {**proto.asset(asset_id).to_dict(), "transactions": [t.to_dict() for t in txs]}
    st.output.result(
        data, lambda c: c.print(f"Updated asset [bold]#{asset_id}[/] ({len(txs)} transaction(s))")
    )
