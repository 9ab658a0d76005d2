"""sahara attribute and sahara claim: who contributed to an asset, and their pay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.tree import Tree

from sahara_cli.commands._output import returns
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
    from sahara_cli.protocol.attribution import AttributionNode

app = typer.Typer(
    help="Record contributors of assets and see how revenue flows.", no_args_is_help=True
)
_RESULTS = "sahara_cli.protocol.attribution"


@app.command("add")
@returns(f"{_RESULTS}:ContributorAdded")
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
    from sahara_cli.protocol.attribution import add_contributor, preflight_add

    bps = parse_bps(weight, "--weight")
    if bps == 0:
        raise UsageError("--weight must be more than zero")
    st = state()
    account = address_of(st, contributor, "--contributor")
    proto = protocol(st)
    asset_id = resolve_asset(proto, asset)
    preflight_add(proto, asset_id, bps)  # before the password is asked
    who = signer(st, signer_name, password_file)
    added = add_contributor(proto, who, asset_id, account, bps)

    def render(console: Console) -> None:
        console.print(f"{added.account} now holds a weight in asset [bold]#{asset_id}[/]")
        table(tx_rows(added.tx))(console)

    st.output.result(added, render)


def _tree(node: AttributionNode, into: Tree | None = None) -> Tree:
    label = f"[bold]#{node.asset_id}[/] {node.name} ({node.kind})"
    branch = Tree(label) if into is None else into.add(label)
    for c in node.contributors:
        branch.add(f"{c.account}  {c.weight_bps / 100:g}%")
    if node.parents:
        up = branch.add(f"[dim]parents get {node.upstream_bps / 100:g}% of revenue[/]")
        for parent in node.parents:
            _tree(parent, up)
    return branch


@app.command("show")
@returns(f"{_RESULTS}:AttributionNode")
def show(
    asset: Annotated[str, typer.Argument(help="Asset id or content id.", show_default=False)],
) -> None:
    """Show the contributors of an asset and, as a tree, those of its parents."""
    from sahara_cli.protocol.attribution import attribution_tree

    st = state()
    proto = protocol(st)
    tree = attribution_tree(proto, resolve_asset(proto, asset))
    st.output.result(tree, lambda c: c.print(_tree(tree)))


@returns(f"{_RESULTS}:ClaimResult")
def claim(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be paid; send nothing.")
    ] = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Claim all revenue credited to your Sahara ID by the assets you contributed to.

    With nothing to claim it fails with protocol.reverted (exit 7) and sends nothing; an
    ID that cannot pay the claim's gas fails with protocol.insufficient_funds before its
    password is asked. --dry-run shows each asset's claimable amount and their total.
    """
    from sahara_cli.protocol import attribution

    st = state()
    proto = protocol(st)
    address = address_of(st, signer_name)
    found = attribution.claimable(proto, address, st.home.root)
    if not dry_run:
        attribution.preflight_claim(found, proto)
        who = signer(st, signer_name, password_file)
        found = attribution.claim(proto, who, st.home.root, preview=found)

    def render(console: Console) -> None:
        if found.dry_run:
            console.print(f"Claimable by [bold]{address}[/]:")
        else:
            console.print(f"Claimed [bold]{found.paid_sah} SAH[/] to {address}:")
        for c in found.claimable_by_asset:
            console.print(f"  #{c.asset_id} {c.name}: {c.amount_sah} SAH")
        console.print(f"  total: [bold]{found.claimable_sah} SAH[/]")
        if found.claimed_before_wei:
            console.print(f"  [dim]claimed before: {found.claimed_before_sah} SAH[/]")
        for warning in found.warnings:
            st.output.warn(warning)

    st.output.result(found, render)
