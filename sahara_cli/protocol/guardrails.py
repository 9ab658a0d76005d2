"""Money guardrails: what a purchase is about to do that its buyer would likely regret.

:func:`purchase_warnings` reads the chain (it sends nothing): buying a license to an
asset the buyer owns, or one of a type the buyer already holds and that still grants
access. An interface shows the warnings and asks before it pays; a script must say yes
explicitly (``--yes``). Buying more calls of an api license is a top-up, not a warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.protocol.license_results import Quote


def purchase_warnings(proto: Protocol, priced: Quote, buyer: str) -> list[str]:
    """Why buying ``priced`` as ``buyer`` probably pays for nothing (empty when it does not)."""
    from sahara_cli.protocol.client import FOREVER
    from sahara_cli.protocol.licensing import sah, utc

    asset = proto.asset(priced.asset_id)
    label = f"asset {asset.id}" + (f" ({asset.name})" if asset.name else "")
    if asset.owner.lower() == buyer.lower():
        return [
            f"{buyer} owns {label} and has access already: buying {priced.summary} pays "
            f"{sah(priced.cost_wei)} into its own asset's revenue, less what its contributors "
            "and parents take, plus gas"
        ]
    if priced.type != "api" and proto.has_access(asset.id, buyer, priced.type):
        until = proto.access_until(asset.id, buyer, priced.type)
        lasting = "with no expiry" if until == FOREVER else f"until {utc(until)}"
        return [
            f"{buyer} already holds a {priced.type} license to {label} that grants access "
            f"{lasting}: buying another pays {sah(priced.cost_wei)} again"
        ]
    return []
