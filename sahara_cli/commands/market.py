"""sahara market: browse and search the license offers of every asset.

The marketplace is the set of open offers of the Licensing contract. ``list`` and
``search`` read them from the local index of protocol events (``<home>/index/``, brought
up to date with the chain on every call); ``show`` reads one offer from the chain itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._protocol import parse_id, protocol, resolve_asset, table, when
from sahara_cli.commands._state import AppState, state
from sahara_cli.errors import AssetNotFound, UsageError

if TYPE_CHECKING:
    from sahara_cli.protocol.client import Asset, Offer, Protocol
    from sahara_cli.protocol.index import ProtocolIndex

app = typer.Typer(help="Browse and search license offers.", no_args_is_help=True)

MAX_LIMIT = 1_000
#: 9999-12-31 23:59:59 UTC, the last time datetime can show.
LAST_DATE = 253_402_300_799
_UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60))


@contextmanager
def _index(st: AppState, proto: Protocol) -> Iterator[ProtocolIndex]:
    """The home's index of this chain, synced (with a spinner: the first sync is long)."""
    from sahara_cli.protocol.index import ProtocolIndex

    index = ProtocolIndex.for_home(proto, st.home.require().root)
    try:
        with st.output.status("Reading protocol events") as progress:
            index.sync(progress)
        yield index
    finally:
        index.close()


def _now(proto: Protocol) -> int:
    """The latest block's timestamp: offers expire by the chain's clock, not this one's."""
    block = proto.node.call("eth_getBlockByNumber", "latest", False)
    return int(block["timestamp"], 16)


def _duration(seconds: int) -> str:
    """Seconds for people: 30d, 12h, 90m, 45s."""
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _until(timestamp: int) -> str:
    """An offer's valid_until for people: 0 is never, and so is a time past year 9999."""
    if not timestamp or timestamp > LAST_DATE:
        return "never"
    return when(timestamp)


def _price(offer: Offer) -> str:
    from sahara_cli.node.client import format_sah

    return f"{format_sah(offer.price)} SAH" + (" / call" if offer.type == "api" else "")


def _term(offer: Offer) -> str:
    """How long a license bought from this offer lasts."""
    if offer.type == "api":
        return "prepaid calls"
    return _duration(offer.duration) if offer.duration else "no expiry"


def offer_doc(offer: Offer, asset: Asset, now: int) -> dict[str, Any]:
    """An offer as JSON: its fields, its asset's name and kind, its term and status."""
    from sahara_cli.protocol.index import offer_status

    return {
        **offer.to_dict(),
        "asset_name": asset.name,
        "asset_kind": asset.kind,
        "lasts": _term(offer),
        "status": offer_status(offer, now),
    }


def _offers_table(docs: list[dict[str, Any]], empty: str) -> Any:
    def render(console: Console) -> None:
        if not docs:
            console.print(empty)
            return
        grid = Table(box=None)
        for column in ("offer", "asset", "kind", "type", "price", "lasts", "sold", "status"):
            wraps = column in ("asset", "price")
            grid.add_column(
                column, overflow="fold", no_wrap=not wraps, min_width=12 if wraps else None
            )
        for doc in docs:
            grid.add_row(
                f"#{doc['id']}",
                f"#{doc['asset']} {doc['asset_name']}",
                doc["asset_kind"],
                doc["type"],
                f"{doc['price_sah']} SAH" + (" / call" if doc["type"] == "api" else ""),
                "-" if doc["type"] == "api" else doc["lasts"],
                str(doc["sold"]),
                doc["status"],
            )
        console.print(grid)

    return render


@app.command("list")
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
    st = state()
    proto = protocol(st)
    asset_id = resolve_asset(proto, asset) if asset is not None else None
    with _index(st, proto) as index:
        if asset_id is not None and index.asset(asset_id) is None:
            raise AssetNotFound(f"no asset {asset_id} on this chain")
        found = index.listings(asset=asset_id, open_only=not show_all)
        now, block = index.now, index.block
    docs = [offer_doc(m.offer, m.asset, now) for m in found]
    data = {"asset": asset_id, "all": show_all, "block": block, "count": len(docs), "offers": docs}
    empty = "No offers." if show_all else "No open offers."
    st.output.result(data, _offers_table(docs, empty))


@app.command("search")
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
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"--limit must be 1 to {MAX_LIMIT}, got {limit}")
    if not any(ch.isalnum() for ch in query):
        raise UsageError(
            f"nothing to search for in {query!r}", hint="Search for words: llama, dataset, api."
        )
    st = state()
    proto = protocol(st)
    with _index(st, proto) as index:
        found = index.search(query, limit=limit, open_only=not show_all)
        now, block = index.now, index.block
    docs = [offer_doc(m.offer, m.asset, now) | {"score": m.score} for m in found]
    data = {"query": query, "all": show_all, "block": block, "count": len(docs), "offers": docs}
    st.output.result(data, _offers_table(docs, f"No offers match {query!r}."))


@app.command("show")
def show(
    offer: Annotated[str, typer.Argument(help="Offer id (12 or #12).", show_default=False)],
) -> None:
    """Show one offer, read from the chain: its asset, price, terms and sales."""
    offer_id = parse_id(offer, "offer id")
    st = state()
    proto = protocol(st)
    found = proto.get_offer(offer_id)
    asset = proto.asset(found.asset)
    now = _now(proto)
    data = {
        "offer": offer_doc(found, asset, now),
        "asset": asset.to_dict(),
    }
    doc = data["offer"]
    rows = {
        "offer": f"#{found.id}  {doc['status']}",
        "asset": f"#{asset.id}  {asset.name}  ({asset.kind})",
        "owner": asset.owner,
        "content id": asset.cid,
        "type": found.type,
        "price": _price(found),
        "license lasts": doc["lasts"],
        "revenue share": f"{found.share_bps / 100:g}%" if found.type == "partnership" else None,
        "terms": found.terms if found.type == "partnership" else None,
        "partner": found.partner or ("anyone" if found.type == "partnership" else None),
        "sold": found.sold,
        "listed": when(found.created),
        "offer expires": _until(found.valid_until),
    }
    st.output.result(data, table(rows, title="offer"))
