"""sahara init: set up a home with a config file and a first Sahara ID."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sahara_cli.commands._output import returns
from sahara_cli.commands._state import state


@returns("sahara_cli.identity.results:InitReport")
def init(
    name: Annotated[str, typer.Option("--name", help="Name of the first Sahara ID.")] = "main",
    no_id: Annotated[
        bool, typer.Option("--no-id", help="Create the home and config only.")
    ] = False,
    mnemonic: Annotated[
        bool,
        typer.Option("--mnemonic", help="Derive the first ID from a new mnemonic, shown once."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Redo an initialised home; the old config and keys are backed up."
        ),
    ] = False,
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file", help="Read the new ID's password from this file.", dir_okay=False
        ),
    ] = None,
) -> None:
    """Create the home, its config and a first Sahara ID. Safe to run twice."""
    from sahara_cli.bootstrap import init_home, is_initialised

    st = state()
    home = st.home
    password = None
    if not no_id and (force or not is_initialised(home)):
        password = st.password(password_file, purpose=f"encrypt the new ID '{name}'", new=True)
    with st.output.status("Creating home") as progress:
        result = init_home(
            home,
            password=password,
            id_name=name,
            create_id=not no_id,
            with_mnemonic=mnemonic,
            force=force,
            progress=progress,
        )

    def render(console: Console) -> None:
        if not result.created:
            console.print(f"[yellow]{result.notes[0]}[/]")
            return
        console.print(f"[green]Initialised[/] {result.home}")
        console.print(f"  config   {result.config_file}")
        if result.identity:
            console.print(f"  ID       {result.identity.name}  {result.identity.address}")
        for note in result.notes:
            console.print(f"  [dim]{note}[/]")
        if result.mnemonic:
            console.print(
                "[bold yellow]Mnemonic (shown once; write it down and keep it offline):[/]"
            )
            console.print(f"  {result.mnemonic}", markup=False)

    st.output.result(result, render)
