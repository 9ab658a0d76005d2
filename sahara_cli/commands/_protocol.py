"""What the protocol commands (asset, license, attribute, claim, market) share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._state import AppState
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Contribution, Protocol
    from sahara_cli.results import Transaction

IdOption = Annotated[
    str | None,
    typer.Option(
        "--id", help="Sahara ID that signs (default: the default ID).", show_default=False
    ),
]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option("--password-file", help="Read the ID's password from this file.", dir_okay=False),
]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|y)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def protocol(st: AppState) -> Protocol:
    """The protocol contracts on the configured node (a clear error when none answers)."""
    from sahara_cli.node.process import require_reachable
    from sahara_cli.protocol.client import Protocol

    cfg = st.config().config.node
    proto = Protocol(require_reachable(cfg.rpc_url, cfg.timeout))
    proto.ensure_deployed()
    return proto


def signer(st: AppState, name: str | None, password_file: Path | None) -> Signer:
    unlocked, _, _ = st.unlock(name, password_file)
    return unlocked


def address_of(st: AppState, text: str | None, what: str = "address") -> str:
    """An address given as 0x..., an ID name, or (None) the default ID's.

    See :func:`sahara_cli.identity.addresses.resolve_address`.
    """
    from sahara_cli.identity.addresses import resolve_address

    return resolve_address(text, what, keystore=st.keystore)


def parse_duration(text: str) -> int:
    """``30d``, ``12h``, ``90m``, ``3600`` (seconds), ``2w``, ``1y`` as seconds."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise UsageError(
            f"not a duration: {text!r}", hint="Write durations like 3600, 90m, 12h, 30d, 2w or 1y."
        )
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_bps(text: str, what: str = "share") -> int:
    """Basis points as ``2000`` or a percentage ``20%`` (two decimals at most)."""
    from decimal import Decimal, InvalidOperation

    raw = text.strip()
    try:
        value = Decimal(raw[:-1]) * 100 if raw.endswith("%") else Decimal(raw)
    except InvalidOperation:
        raise UsageError(
            f"{what} {text!r} is not basis points", hint="Write 2000 or 20% (10000 = 100%)."
        ) from None
    if value != value.to_integral_value() or not 0 <= value <= 10_000:
        raise UsageError(f"{what} {text!r} must be 0 to 10000 basis points (0% to 100%)")
    return int(value)


def parse_id(text: str, what: str) -> int:
    """A positive on-chain id, written ``12`` or ``#12``."""
    raw = text.strip().removeprefix("#")
    if not raw.isdigit() or int(raw) == 0:
        raise UsageError(f"{what} must be a positive number, got {text!r}")
    return int(raw)


def resolve_asset(proto: Protocol, text: str) -> int:
    """An asset given by id (``12``, ``#12``) or by the content id it was registered with."""
    from sahara_cli.errors import AssetNotFound

    raw = text.strip().removeprefix("#")
    if raw.isdigit():
        return parse_id(raw, "asset id")
    found = proto.asset_by_cid(text.strip())
    if found is None:
        raise AssetNotFound(f"no asset with content id {text} on this chain")
    return found


def tx_rows(tx: Transaction) -> dict[str, Any]:
    """The rows people see for a sent transaction."""
    return {
        "transaction": tx.hash,
        "block": tx.block,
        "gas used": tx.gas_used,
        "fee": f"{tx.fee_sah} SAH",
    }


def table(rows: dict[str, Any], title: str | None = None) -> Any:
    """A two-column key/value table renderer for people."""

    def render(console: Console) -> None:
        grid = Table(show_header=False, box=None, title=title, title_justify="left")
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for key, value in rows.items():
            if value is not None:
                grid.add_row(key, str(value))
        console.print(grid)

    return render


def when(timestamp: int | None) -> str:
    """A block timestamp as UTC text; None is "never"."""
    from datetime import UTC, datetime

    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def contributor_weights(st: Any, specs: list[str]) -> dict[str, int]:
    """``ADDR:BPS`` (or ``ID:BPS``, ``ADDR:20%``) entries as address to bps.

    Commands call it before they reach the node or ask for a password, so a mistyped
    address (``identity.bad_address``) or weight fails first.
    """
    entries: dict[str, int] = {}
    for spec in specs:
        who, sep, weight = spec.rpartition(":")
        if not sep or not who:
            raise UsageError(
                f"--contributor {spec!r} is not ADDRESS:BPS",
                hint="Write --contributor 0xabc...:2500 (2500 bps = 25%).",
            )
        address = address_of(st, who, "--contributor")
        bps = parse_bps(weight, "contributor weight")
        if bps == 0:
            raise UsageError(f"--contributor {spec!r} has a weight of zero")
        if address in entries:
            raise UsageError(f"contributor {address} is listed twice")
        entries[address] = bps
    return entries


def parse_contributors(st: Any, specs: list[str], owner: str) -> tuple[list[Contribution], int]:
    """``ADDR:BPS`` (or ``ID:BPS``, ``ADDR:20%``) entries; the owner keeps the rest.

    Returns the on-chain list (summing to 10,000 bps) and the owner's remainder.
    """
    from sahara_cli.protocol.client import Contribution

    entries = contributor_weights(st, specs)
    total = sum(entries.values())
    if owner in entries:
        if total != 10_000:
            raise UsageError(
                f"contributor weights sum to {total} bps, not 10000",
                hint="With the owner listed, the weights must add up to 10000 bps (100%).",
            )
        remainder = 0
    else:
        if total > 10_000:
            raise UsageError(
                f"contributor weights sum to {total} bps, more than 10000",
                hint="The owner keeps what the contributors do not take; 10000 bps is 100%.",
            )
        remainder = 10_000 - total
        if entries and remainder:
            entries = {owner: remainder, **entries}
    return [Contribution(a, w) for a, w in entries.items()], remainder
