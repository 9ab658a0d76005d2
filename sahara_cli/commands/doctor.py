"""sahara doctor: check the installation, home, config, keys and node."""

from __future__ import annotations

import typer
from rich.console import Console

from sahara_cli.commands._output import returns
from sahara_cli.commands._state import state

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@returns("sahara_cli.doctor:DoctorReport")
def doctor() -> None:
    """Check Python, packages, the home and its permissions, the config, the node, and
    the external programs (Kubo, CometBFT, llama.cpp, Node.js): version, where each was
    found (a setting, the environment, the project's cache or PATH), how to get it.

    Exits 1 when a check fails; warnings do not change the exit status.
    """
    from sahara_cli.doctor import DoctorReport, run_checks

    st = state()
    checks = run_checks(st.home)
    failed = [c for c in checks if c.status == "fail"]

    def render(console: Console) -> None:
        # One line per check, never cut: a path or URL stays whole (the terminal may
        # wrap it, but copying it gives the full text).
        width = max(len(c.name) for c in checks)
        for check in checks:
            style = _STYLE[check.status]
            console.print(
                f"[{style}]{check.status:<4}[/] [bold]{check.name:<{width}}[/] {check.detail}",
                markup=True,
                highlight=False,
            )
            if check.hint and check.status != "ok":
                console.print(f"{'':<5}{'':<{width}} [dim]fix: {check.hint}[/]")
        console.print(
            f"[bold red]{len(failed)} check(s) failed[/]" if failed else "[green]all good[/]"
        )

    st.output.result(DoctorReport(ok=not failed, checks=checks), render)
    if failed:
        raise typer.Exit(1)
