"""How the license and market commands show offers and licenses to people."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sahara_cli.protocol.license_results import LicenseInfo, OfferInfo


def sah(wei: int) -> str:
    from sahara_cli.units import format_sah

    return f"{format_sah(wei)} SAH"


def utc(moment: datetime | None) -> str:
    """A moment as ``2026-12-07 16:13:48 UTC``; None is "never"."""
    return "never" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: int) -> str:
    """A duration for people: 30d, 12h, 90m or seconds."""
    for unit, size in (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def share(bps: int) -> str:
    return f"{bps / 100:g}% ({bps} bps)"


def offer_rows(offer: OfferInfo) -> dict[str, Any]:
    rows: dict[str, Any] = {
        "offer": offer.offer_id,
        "asset": offer.asset_id,
        "type": offer.type,
        "price": sah(offer.price_wei) + (" per call" if offer.type == "api" else ""),
    }
    if offer.duration_s:
        rows["duration"] = span(offer.duration_s)
    if offer.type == "partnership":
        rows["terms"] = offer.terms
        rows["revenue share"] = share(offer.share_bps)
        rows["partner"] = offer.partner or "anyone"
    rows["valid until"] = utc(offer.expires_at)
    rows["status"] = "paused" if offer.paused else "open"
    return rows


def license_rows(lic: LicenseInfo) -> dict[str, Any]:
    rows: dict[str, Any] = {
        "license": lic.license_id,
        "offer": lic.offer_id,
        "asset": lic.asset_id,
        "holder": lic.holder,
        "type": lic.type,
        "price": sah(lic.price_wei) + (" per call" if lic.type == "api" else ""),
        "start": utc(lic.started_at),
    }
    if lic.type == "api":
        rows["calls left"] = lic.calls_left
        rows["calls used"] = lic.calls_used
    else:
        rows["expiry"] = utc(lic.expires_at)
    if lic.type == "partnership":
        rows["terms"] = lic.terms
        rows["revenue share"] = share(lic.share_bps)
    rows["status"] = "active" if lic.active else "inactive"
    return rows
