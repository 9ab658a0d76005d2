"""sahara provenance: answers' records and training jobs, their assets and payouts, checked.

Answers are recorded by the inference SAP (``answer:N``; before it, by the Provenance
contract: ``legacy:N``), jobs by the training SAP (``job:N``). ``list`` reads them from
the local index of protocol events, ``show`` and ``verify`` from the chain itself (see
:mod:`sahara_cli.agent.provenance`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._license_view import utc
from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import protocol, resolve_asset, table
from sahara_cli.commands._state import state

if TYPE_CHECKING:
    from sahara_cli.agent.provenance_results import (
        AnswerRecord,
        JobRecord,
        ProvenanceList,
        ProvenanceVerify,
    )

app = typer.Typer(
    help="Answers' records and training jobs on chain: their assets and payouts, checked "
    "against the local records.",
    no_args_is_help=True,
)

_RESULTS = "sahara_cli.agent.provenance_results"
RefArgument = Annotated[
    str,
    typer.Argument(
        help="answer:N (or N), legacy:N (the Provenance contract) or job:N.", show_default=False
    ),
]


@app.command("list")
@returns(f"{_RESULTS}:ProvenanceList")
def list_records(
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent", help="Only the answers of this agent of the home.", show_default=False
        ),
    ] = None,
    asset: Annotated[
        str | None,
        typer.Option(
            "--asset",
            help="Only records about this asset (id, #id or content id): answers by it or "
            "using it, jobs on it or producing it.",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[bool, typer.Option("--jobs", help="Only training and merge jobs.")] = False,
    answers: Annotated[bool, typer.Option("--answers", help="Only answers' records.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="Show at most this many of each (1-10000).")
    ] = 50,
) -> None:
    """List answers' records and training jobs, newest first."""
    from sahara_cli.agent.provenance import list_provenance
    from sahara_cli.errors import UsageError

    if jobs and answers:
        raise UsageError("give --jobs or --answers, not both")
    st = state()
    proto = protocol(st)
    asset_id = None
    if asset is not None:
        asset_id = resolve_asset(proto, asset)
        proto.asset(asset_id)  # an unknown asset is an error, not an empty list
    with st.output.status("Reading protocol events") as progress:
        found = list_provenance(
            proto,
            st.home.require().root,
            agent=agent,
            asset_id=asset_id,
            shown="jobs" if jobs else "answers" if answers else "all",
            limit=limit,
            progress=progress,
        )
    st.output.result(found, _list(found))


def _list(found: ProvenanceList) -> Any:
    def render(console: Console) -> None:
        if found.shown != "jobs":
            if not found.answers:
                console.print("No answers recorded.")
            else:
                grid = Table(box=None, title="Answers", title_justify="left")
                for column in (
                    "record",
                    "asset",
                    "sources",
                    "license",
                    "fee",
                    "time (UTC)",
                    "here",
                ):
                    grid.add_column(column, overflow="fold")
                for a in found.answers:
                    grid.add_row(
                        a.ref,
                        f"#{a.asset_id}",
                        " ".join(f"#{s}" for s in a.source_asset_ids) or "-",
                        f"#{a.license_id}" if a.license_id else "-",
                        f"{a.fee_sah} SAH" if a.calls_metered else "-",
                        a.recorded_at.strftime("%Y-%m-%d %H:%M:%S"),
                        a.local_agent or "-",
                    )
                console.print(grid)
        if found.shown != "answers":
            if not found.jobs:
                console.print("No jobs recorded.")
            else:
                grid = Table(box=None, title="Jobs", title_justify="left")
                for column in ("job", "kind", "status", "base", "inputs", "output", "time (UTC)"):
                    grid.add_column(column, overflow="fold")
                for j in found.jobs:
                    grid.add_row(
                        j.ref,
                        j.kind,
                        j.status,
                        f"#{j.base_asset_id}" if j.base_asset_id else "-",
                        " ".join(f"#{i}" for i in j.input_asset_ids) or "-",
                        f"#{j.output_asset_id}" if j.output_asset_id else "-",
                        j.submitted_at.strftime("%Y-%m-%d %H:%M:%S"),
                    )
                console.print(grid)
        if found.more:
            console.print(f"More matched; showing {found.limit} of each (raise --limit).")

    return render


@app.command("show")
@returns(f"{_RESULTS}:ProvenanceShow")
def show(ref: RefArgument) -> None:
    """Show an answer's record (its asset, hashes, sources, license, fee, payouts and the
    local record) or a job (its inputs, weights, hyper-parameters, output and metrics)."""
    from sahara_cli.agent.provenance import show_provenance

    st = state()
    found = show_provenance(protocol(st), st.home.require().root, ref)
    if found.answer is not None:
        st.output.result(found, _answer(found.answer))
    elif found.job is not None:
        st.output.result(found, _job(found.job))


def _answer(a: AnswerRecord) -> Any:
    legacy = a.recorded_in == "Provenance"
    rows = {
        "record": f"{a.ref} ({a.recorded_in})",
        "asset": f"#{a.asset_id} {a.asset_name}",
        "recorder": a.recorder,
        "digest": a.digest,
        "prompt hash": a.input_hash,
        "answer hash": a.output_hash,
        "sources": " ".join(f"#{s}" for s in a.source_asset_ids) or "-",
        "license": f"#{a.license_id}" if a.license_id else "-",
        "calls metered": "-" if legacy else str(a.calls_metered),
        "fee": "- (metered apart, before the SAP)" if legacy else f"{a.fee_sah} SAH",
        "recorded": f"{utc(a.recorded_at)}, block {a.block}",
        "transaction": a.tx_hash,
        "kept by": f"agent {a.local_agent}" if a.local_agent else "no agent of this home",
    }
    head = table(rows)

    def render(console: Console) -> None:
        head(console)
        if a.payouts:
            grid = Table(box=None, title="Payouts", title_justify="left")
            for column in ("asset", "account", "amount"):
                grid.add_column(column, overflow="fold")
            for p in a.payouts:
                grid.add_row(f"#{p.asset_id}", p.account, f"{p.amount_sah} SAH")
            console.print(grid)

    return render


def _job(j: JobRecord) -> Any:
    import json

    return table(
        {
            "job": f"{j.ref} ({j.kind}, {j.status})",
            "name": j.name,
            "submitter": j.submitter,
            "base": f"#{j.base_asset_id}" if j.base_asset_id else "-",
            "inputs": " ".join(f"#{i}" for i in j.input_asset_ids) or "-",
            "weights": " ".join(f"{w / 100:g}%" for w in j.weights_bps) or "-",
            "hyper-parameters": j.hparams,
            "output": j.output_cid,
            "metrics": json.dumps(j.metrics) if j.metrics is not None else "-",
            "bond": f"{j.bond_sah} SAH"
            + (" (returned)" if j.status in ("finalized", "cancelled") else ""),
            "submitted": f"{utc(j.submitted_at)}, block {j.block}",
            "window ends": utc(j.finalize_at),
            "output asset": f"#{j.output_asset_id}" if j.output_asset_id else "not yet",
            "parents": " ".join(f"#{p}" for p in j.parent_asset_ids) or "-",
            "upstream share": f"{j.upstream_bps / 100:g}%",
            "transaction": j.tx_hash,
        }
    )


@app.command("verify")
@returns(f"{_RESULTS}:ProvenanceVerify")
def verify(
    ref: RefArgument,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="Check this record (JSON: a record, or a served answer's 'sahara' object) "
            "instead of the one an agent of this home kept.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Recompute a record's digest from its local copy and compare it with the chain; for
    a job, compare its metrics, output and local job file. Exits non-zero on a mismatch."""
    from sahara_cli.agent.provenance_verify import verify_provenance

    st = state()
    found = verify_provenance(protocol(st), st.home.require().root, ref, record_file=record)
    st.output.result(found, _verified(found))


def _verified(v: ProvenanceVerify) -> Any:
    def render(console: Console) -> None:
        console.print(f"{v.ref} matches {v.against}.")
        for c in v.checks:
            console.print(f"  [green]ok[/green] {c.name}")

    return render
