"""sahara market: browse and search the license offers of every asset.

The marketplace is the set of open offers of the Licensing contract. ``list`` and
``search`` read them from the local index of protocol events (``<home>/index/``, brought
up to date with the chain on every call); ``show`` reads one offer from the chain itself
(see :mod:`sahara_cli.protocol.market`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._license_view import utc
from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import parse_id, protocol, resolve_asset, table
from sahara_cli.commands._state import state

if TYPE_CHECKING:
    from sahara_cli.protocol.license_results import MarketOffer

app = typer.Typer(help="Browse and search license offers.", no_args_is_help=True)

_RESULTS = "sahara_cli.protocol.license_results"
MAX_LIMIT = 1_000


def _price(offer: MarketOffer) -> str:
    return f"{offer.price_sah} SAH" + (" / call" if offer.type == "api" else "")


def _offers_table(offers: Sequence[MarketOffer], empty: str) -> Any:
    def render(console: Console) -> None:
        if not offers:
            console.print(empty)
            return
        grid = Table(box=None)
        for column in ("offer", "asset", "kind", "type", "price", "lasts", "sold", "status"):
            wraps = column in ("asset", "price")
            grid.add_column(
                column, overflow="fold", no_wrap=not wraps, min_width=12 if wraps else None
            )
        for offer in offers:
            grid.add_row(
                f"#{offer.offer_id}",
                f"#{offer.asset_id} {offer.asset_name}",
                offer.asset_kind,
                offer.type,
                _price(offer),
                "-" if offer.type == "api" else offer.lasts,
                str(offer.sold),
                offer.status,
            )
        console.print(grid)

    return render


@app.command("list")
@returns(f"{_RESULTS}:OfferList")
def list_offers(
    asset: Annotated[
        str | None,
        typer.Option(
            "--asset",
            help="Only the offers of this asset (id, #id or content id).",
            show_default=False,
        ),
    ] = None,
    show_all: Annotated[
        bool,
        typer.Option("--all", help="Also list paused, expired and taken offers."),
    ] = False,
) -> None:
    """List the license offers that can be bought now, oldest first."""
    from sahara_cli.protocol.market import list_offers as listed

    st = state()
    proto = protocol(st)
    asset_id = resolve_asset(proto, asset) if asset is not None else None
    with st.output.status("Reading protocol events") as progress:
        found = listed(
            proto,
            st.home.require().root,
            asset_id=asset_id,
            include_closed=show_all,
            progress=progress,
        )
    empty = "No offers." if show_all else "No open offers."
    st.output.result(found, _offers_table(found.offers, empty))


@app.command("search")
@returns(f"{_RESULTS}:OfferSearch")
def search(
    query: Annotated[
        str,
        typer.Argument(
            help="Words to find in asset names, kinds, content ids, URIs and license types.",
            show_default=False,
        ),
    ],
    limit: Annotated[
        int, typer.Option("--limit", "-n", help=f"Show at most this many offers (1-{MAX_LIMIT}).")
    ] = 20,
    show_all: Annotated[
        bool,
        typer.Option("--all", help="Also find paused, expired and taken offers."),
    ] = False,
) -> None:
    """Search the offers by words, best matches first (a word may be a prefix: 'lla')."""
    from sahara_cli.protocol.market import search_offers

    st = state()
    proto = protocol(st)
    with st.output.status("Reading protocol events") as progress:
        found = search_offers(
            proto,
            st.home.require().root,
            query,
            limit=limit,
            include_closed=show_all,
            progress=progress,
        )
    st.output.result(found, _offers_table(found.offers, f"No offers match {query!r}."))


@app.command("show")
@returns(f"{_RESULTS}:OfferDetails")
def show(
    offer: Annotated[str, typer.Argument(help="Offer id (12 or #12).", show_default=False)],
) -> None:
    """Show one offer, read from the chain: its asset, price, terms and sales."""
    from sahara_cli.protocol.market import offer_details

    offer_id = parse_id(offer, "offer id")
    st = state()
    found = offer_details(protocol(st), offer_id)
    partnership = found.type == "partnership"
    rows = {
        "offer": f"#{found.offer_id}  {found.status}",
        "asset": f"#{found.asset_id}  {found.asset_name}  ({found.asset_kind})",
        "owner": found.asset_owner,
        "content id": found.asset_cid,
        "type": found.type,
        "price": _price(found),
        "license lasts": found.lasts,
        "revenue share": f"{found.share_bps / 100:g}%" if partnership else None,
        "terms": found.terms if partnership else None,
        "partner": found.partner or ("anyone" if partnership else None),
        "sold": found.sold,
        "listed": utc(found.created_at),
        "offer expires": utc(found.expires_at),
    }
    st.output.result(found, table(rows, title="offer"))
