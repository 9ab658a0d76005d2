"""sahara doctor: check the installation, home, config, keys and node."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._output import returns
from sahara_cli.commands._state import state

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@returns("sahara_cli.doctor:DoctorReport")
def doctor() -> None:
    """Check Python, packages, the home and its permissions, the config and the node.

    Exits 1 when a check fails; warnings do not change the exit status.
    """
    from sahara_cli.doctor import DoctorReport, run_checks

    st = state()
    checks = run_checks(st.home)
    failed = [c for c in checks if c.status == "fail"]

    def render(console: Console) -> None:
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(no_wrap=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for check in checks:
            style = _STYLE[check.status]
            detail = check.detail + (
                f"\n[dim]fix: {check.hint}[/]" if check.hint and check.status != "ok" else ""
            )
            table.add_row(f"[{style}]{check.status}[/]", check.name, detail)
        console.print(table)
        console.print(
            f"[bold red]{len(failed)} check(s) failed[/]" if failed else "[green]all good[/]"
        )

    st.output.result(DoctorReport(ok=not failed, checks=checks), render)
    if failed:
        raise typer.Exit(1)
