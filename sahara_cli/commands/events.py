"""sahara events: the events the protocol contracts and the SAPs emitted, from the local
index.

The index of protocol events (``<home>/index/``) is brought up to date with the chain,
then queried: newest first (the latest activity on top, like a log), ``--oldest-first``
for chain order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import address_of, protocol, resolve_asset
from sahara_cli.commands._state import state

if TYPE_CHECKING:
    from sahara_cli.protocol.events import EventsResult

DEFAULT_LIMIT = 50


@returns("sahara_cli.protocol.events:EventsResult")
def events(
    contract: Annotated[
        str | None,
        typer.Option(
            "--contract",
            "-c",
            help="Only this contract's events: AssetRegistry, Receipts, Licensing, "
            "Attribution, Provenance, or a SAP's: TrainingRecord, InferenceRecord, DisputeGame.",
            show_default=False,
        ),
    ] = None,
    event: Annotated[
        str | None,
        typer.Option(
            "--event",
            "-e",
            help="Only events of this name (Registered, Licensed, JobSubmitted, "
            "InferenceRecorded...).",
            show_default=False,
        ),
    ] = None,
    asset: Annotated[
        str | None,
        typer.Option(
            "--asset",
            help="Only events about this asset (id, #id or content id), its offers, "
            "licenses and receipts included, and the jobs and answers that used it.",
            show_default=False,
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Only events with this address (0x... or an ID name) among their arguments.",
            show_default=False,
        ),
    ] = None,
    from_block: Annotated[
        int | None,
        typer.Option("--from-block", help="From this block on (inclusive).", show_default=False),
    ] = None,
    to_block: Annotated[
        int | None,
        typer.Option("--to-block", help="Up to this block (inclusive).", show_default=False),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="Show at most this many events (1-10000).")
    ] = DEFAULT_LIMIT,
    oldest_first: Annotated[
        bool,
        typer.Option("--oldest-first", help="Oldest first (chain order); default: newest first."),
    ] = False,
) -> None:
    """List the events of the protocol contracts and the SAPs, newest first, filtered by
    contract, event, asset, address and block range."""
    from dataclasses import replace

    from sahara_cli.protocol.events import EventQuery, find_events

    query = EventQuery(
        contract=contract,
        event=event,
        from_block=from_block,
        to_block=to_block,
        limit=limit,
        oldest_first=oldest_first,
    ).checked()  # bad names fail before the node is asked
    st = state()
    if address is not None:  # a mistyped address fails before the node is asked, too
        query = replace(query, address=address_of(st, address))
    proto = protocol(st)
    if asset is not None:
        asset_id = resolve_asset(proto, asset)
        proto.asset(asset_id)  # an unknown asset is an error, not an empty list
        query = replace(query, asset_id=asset_id)
    with st.output.status("Reading protocol events") as progress:
        found = find_events(proto, st.home.require().root, query, progress)
    st.output.result(found, _render(found))


def _render(found: EventsResult) -> Any:
    def render(console: Console) -> None:
        if not found.events:
            console.print("No events.")
            return
        grid = Table(box=None)
        for column in ("block", "time (UTC)", "event", "arguments", "transaction"):
            grid.add_column(column, overflow="fold", no_wrap=column != "arguments")
        for e in found.events:
            grid.add_row(
                str(e.block),
                e.time.strftime("%Y-%m-%d %H:%M:%S"),
                f"{e.contract}.{e.event}",
                _arguments(e.args),
                e.tx_hash[:10] + "…",
            )
        console.print(grid)
        if found.more:
            order = "oldest" if found.order == "oldest_first" else "newest"
            console.print(f"[dim]The {found.count} {order}; raise --limit for more.[/]")

    return render


def _arguments(args: dict[str, Any]) -> str:
    """``asset_id=3 price=0.01 SAH`` (SAH amounts instead of wei)."""
    parts = []
    for key, value in args.items():
        if key.endswith("_wei"):
            continue
        if key.endswith("_sah"):
            parts.append(f"{key[:-4]}={value} SAH")
        elif isinstance(value, list):
            parts.append(f"{key}={','.join(_short(v) for v in value) or '-'}")
        else:
            parts.append(f"{key}={_short(value)}")
    return " ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ":".join(_short(v) for v in value.values())
    text = "-" if value is None else str(value)
    if text.startswith("0x") and len(text) > 42:  # hashes; addresses stay whole
        return text[:8] + "…" + text[-4:]
    return text
