"""sahara attribute and sahara claim: who contributed to an asset, and their pay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.tree import Tree

from sahara_cli.commands._protocol import (
    IdOption,
    PasswordFileOption,
    address_of,
    parse_bps,
    protocol,
    resolve_asset,
    signer,
    table,
    tx_rows,
)
from sahara_cli.commands._state import state
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from sahara_cli.protocol.client import Protocol

app = typer.Typer(
    help="Record contributors of assets and see how revenue flows.", no_args_is_help=True
)

#: How far up the derived-from graph revenue flows (the Attribution contract's MAX_DEPTH).
MAX_DEPTH = 3


@app.command("add")
def add(
    asset: Annotated[str, typer.Argument(help="Asset id or content id.", show_default=False)],
    contributor: Annotated[
        str, typer.Option("--contributor", help="Address or ID name.", show_default=False)
    ],
    weight: Annotated[
        str,
        typer.Option(
            "--weight",
            help="Revenue weight in bps or % (taken from the owner's own weight).",
            show_default=False,
        ),
    ],
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Give a contributor a revenue weight of an asset you own; mints their receipt."""
    bps = parse_bps(weight, "--weight")
    if bps == 0:
        raise UsageError("--weight must be more than zero")
    st = state()
    account = address_of(st, contributor, "--contributor")
    proto = protocol(st)
    asset_id = resolve_asset(proto, asset)
    owner = proto.asset(asset_id).owner
    held = {c.account: c.weight_bps for c in proto.contributors(asset_id)}.get(owner, 0)
    if bps > held:
        raise UsageError(
            f"the owner holds {held} bps of asset #{asset_id}; cannot give {bps}",
            hint="Weights always sum to 10000 bps; a contributor's weight comes from the owner's.",
        )
    who = signer(st, signer_name, password_file)
    tx = proto.add_contributor(who, asset_id, account, bps)
    contributors = [
        {"account": c.account, "weight_bps": c.weight_bps} for c in proto.contributors(asset_id)
    ]
    data = {"asset": asset_id, "contributors": contributors, "transaction": tx.to_dict()}

    def render(console: Console) -> None:
        console.print(f"{account} now holds a weight in asset [bold]#{asset_id}[/]")
        table(tx_rows(tx))(console)

    st.output.result(data, render)


def attribution_tree(proto: Protocol, asset_id: int, depth: int = 0) -> dict[str, Any]:
    """The asset, its contributors and (up to the contract's depth) its parents."""
    asset = proto.asset(asset_id)
    node: dict[str, Any] = {
        "asset": asset.id,
        "name": asset.name,
        "kind": asset.kind,
        "owner": asset.owner,
        "upstream_bps": proto.upstream_bps(asset.id),
        "contributors": [
            {"account": c.account, "weight_bps": c.weight_bps} for c in proto.contributors(asset.id)
        ],
        "parents": [],
    }
    if depth < MAX_DEPTH:
        node["parents"] = [attribution_tree(proto, p, depth + 1) for p in asset.parents]
    elif asset.parents:
        node["parents_beyond_depth"] = asset.parents
    return node


def _tree(node: dict[str, Any], into: Tree | None = None) -> Tree:
    label = f"[bold]#{node['asset']}[/] {node['name']} ({node['kind']})"
    branch = Tree(label) if into is None else into.add(label)
    for c in node["contributors"]:
        branch.add(f"{c['account']}  {c['weight_bps'] / 100:g}%")
    if node["parents"]:
        up = branch.add(f"[dim]parents get {node['upstream_bps'] / 100:g}% of revenue[/]")
        for parent in node["parents"]:
            _tree(parent, up)
    return branch


@app.command("show")
def show(
    asset: Annotated[str, typer.Argument(help="Asset id or content id.", show_default=False)],
) -> None:
    """Show the contributors of an asset and, as a tree, those of its parents."""
    st = state()
    proto = protocol(st)
    data = attribution_tree(proto, resolve_asset(proto, asset))
    st.output.result(data, lambda c: c.print(_tree(data)))


def claim(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be paid; send nothing.")
    ] = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Claim all revenue credited to your Sahara ID by the assets you contributed to."""
    from sahara_cli.node.client import format_sah
    from sahara_cli.protocol.index import ProtocolIndex

    st = state()
    proto = protocol(st)
    address = address_of(st, signer_name)
    claimable = proto.claimable(address)
    credits = ProtocolIndex.for_home(proto, st.home.root).credits(address)
    data: dict[str, Any] = {
        "address": address,
        "claimable": str(claimable),
        "claimable_sah": format_sah(claimable),
        "claimed_before": str(proto.claimed(address)),
        "credited_by_asset": [
            {**c, "amount": str(c["amount"]), "amount_sah": format_sah(int(c["amount"]))}
            for c in credits
        ],
        "dry_run": dry_run,
    }
    if not dry_run and claimable == 0:
        raise UsageError(
            f"nothing to claim for {address}",
            hint="Revenue is credited when licenses of your assets are bought or metered.",
        )
    if not dry_run:
        who = signer(st, signer_name, password_file)
        paid, tx = proto.claim(who)
        data |= {"paid": str(paid), "paid_sah": format_sah(paid), "transaction": tx.to_dict()}

    def render(console: Console) -> None:
        if dry_run:
            console.print(f"Claimable: [bold]{format_sah(claimable)} SAH[/]  {address}")
        else:
            console.print(f"Claimed [bold]{data['paid_sah']} SAH[/] to {address}")
        for c in data["credited_by_asset"]:
            console.print(f"  #{c['asset']} {c.get('name', '')}: {c['amount_sah']} SAH credited")

    st.output.result(data, render)
