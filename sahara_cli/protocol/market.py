"""The marketplace: the license offers of every asset, listed, searched and shown.

``list_offers`` and ``search_offers`` read the home's index of protocol events (brought up
to date with the chain first: the first sync of a long chain takes a while, reported
through ``progress``); ``offer_details`` reads one offer from the chain itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.errors import AssetNotFound, UsageError
from sahara_cli.protocol.license_results import (
    MarketOffer,
    OfferDetails,
    OfferInfo,
    OfferList,
    OfferSearch,
    SearchHit,
)

if TYPE_CHECKING:
    from sahara_cli.protocol.client import Asset, Offer, Protocol
    from sahara_cli.protocol.index import ProtocolIndex

Progress = Callable[[str], None]
MAX_LIMIT = 1_000
_UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60))


def span(seconds: int) -> str:
    """Seconds for people: 30d, 12h, 90m, 45s."""
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def lasts(offer: Offer) -> str:
    """How long a license bought from this offer lasts."""
    if offer.type == "api":
        return "prepaid calls"
    return span(offer.duration) if offer.duration else "no expiry"


def market_fields(offer: Offer, asset: Asset, now: int) -> dict[str, object]:
    """An offer's fields with its asset's name and kind, its term and its status at ``now``."""
    from sahara_cli.protocol.index import offer_status

    return OfferInfo.fields_of(offer) | {
        "asset_name": asset.name,
        "asset_kind": asset.kind,
        "lasts": lasts(offer),
        "status": offer_status(offer, now),
    }


def _synced(proto: Protocol, home_root: Path, progress: Progress | None) -> ProtocolIndex:
    from sahara_cli.protocol.index import ProtocolIndex

    index = ProtocolIndex.for_home(proto, home_root)
    try:
        index.sync(progress)
    except BaseException:
        index.close()
        raise
    return index


def list_offers(
    proto: Protocol,
    home_root: Path,
    *,
    asset_id: int | None = None,
    include_closed: bool = False,
    progress: Progress | None = None,
) -> OfferList:
    """The offers that sell now (all of them with ``include_closed``), oldest first."""
    with _synced(proto, home_root, progress) as index:
        if asset_id is not None and index.asset(asset_id) is None:
            raise AssetNotFound(f"no asset {asset_id} on this chain")
        found = index.listings(asset=asset_id, open_only=not include_closed)
        now, block = index.now, index.block
    offers = [MarketOffer.model_validate(market_fields(m.offer, m.asset, now)) for m in found]
    return OfferList(
        asset_id=asset_id,
        all=include_closed,
        block=block or 0,
        count=len(offers),
        offers=offers,
    )


def search_offers(
    proto: Protocol,
    home_root: Path,
    query: str,
    *,
    limit: int = 20,
    include_closed: bool = False,
    progress: Progress | None = None,
) -> OfferSearch:
    """Offers whose asset or type matches the words of ``query``, best first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"--limit must be 1 to {MAX_LIMIT}, got {limit}")
    if not any(ch.isalnum() for ch in query):
        raise UsageError(
            f"nothing to search for in {query!r}", hint="Search for words: llama, dataset, api."
        )
    with _synced(proto, home_root, progress) as index:
        found = index.search(query, limit=limit, open_only=not include_closed)
        now, block = index.now, index.block
    hits = [
        SearchHit.model_validate(market_fields(m.offer, m.asset, now) | {"score": m.score})
        for m in found
    ]
    return OfferSearch(
        query=query, all=include_closed, block=block or 0, count=len(hits), offers=hits
    )


def offer_details(proto: Protocol, offer_id: int) -> OfferDetails:
    """One offer read from the chain, with its asset's owner, content id and URI."""
    from sahara_cli.protocol.licensing import chain_now

    found = proto.get_offer(offer_id)
    asset = proto.asset(found.asset)
    return OfferDetails.model_validate(
        market_fields(found, asset, chain_now(proto))
        | {"asset_owner": asset.owner, "asset_cid": asset.cid, "asset_uri": asset.uri}
    )
