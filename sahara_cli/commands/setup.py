"""sahara setup: build the external programs sahara drives (Kubo, CometBFT) into the cache."""

from __future__ import annotations

import typer
from rich.console import Console

from sahara_cli.commands._output import returns
from sahara_cli.commands._state import state

app = typer.Typer(
    help="Build the pinned Kubo and CometBFT with 'go install' into the project's cache, "
    "where every command finds them.",
    no_args_is_help=True,
)


def _setup(name: str) -> None:
    from sahara_cli.gosetup import binary_named, go_install

    st = state()
    binary = binary_named(name)
    with st.output.status(f"Building {binary.project} {binary.version}") as update:

        def progress(line: str) -> None:
            if line.startswith("building "):
                st.output.note(line)
            else:
                update(f"Building {binary.project} {binary.version}: {line}")

        result = go_install(binary, progress=progress)

    def render(console: Console) -> None:
        if result.status == "present":
            console.print(f"{binary.project} {result.version} is built already: {result.path}")
        else:
            console.print(f"[green]built[/] {binary.project} {result.version}: {result.path}")

    st.output.result(result, render)


@app.command("kubo")
@returns("sahara_cli.gosetup:GoSetup")
def kubo() -> None:
    """Build Kubo (IPFS, the vault's Kubo backend) with 'go install' into the cache.

    Needs Go on PATH; takes minutes once per machine, then says it is built already.
    """
    _setup("kubo")


@app.command("cometbft")
@returns("sahara_cli.gosetup:GoSetup")
def cometbft() -> None:
    """Build CometBFT (the localnet's consensus engine) with 'go install' into the cache.

    Needs Go on PATH; takes minutes once per machine, then says it is built already.
    """
    _setup("cometbft")
