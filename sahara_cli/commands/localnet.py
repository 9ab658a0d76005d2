"""sahara localnet: N CometBFT validators, each with its Sahara app, on 127.0.0.1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._output import returns
from sahara_cli.commands._state import AppState, state
from sahara_cli.units import parse_seconds

if TYPE_CHECKING:
    from sahara_cli.node.localnet import Localnet
    from sahara_cli.node.results import LocalnetStatus

app = typer.Typer(
    help="Run a local network of CometBFT validators (each with its Sahara app) on 127.0.0.1.",
    no_args_is_help=True,
)

NodeIndex = Annotated[int, typer.Argument(help="Index of the node (0 to N-1).", min=0)]


def _net(st: AppState) -> Localnet:
    from sahara_cli.node.localnet import Localnet

    return Localnet(st.home.root / "localnet")


def _render_status(info: LocalnetStatus) -> Any:
    def render(console: Console) -> None:
        console.print(
            f"[bold]localnet[/] {info.root}: {info.running}/{info.validators} "
            f"nodes running, blocks every {info.block_time_s:g} s"
        )
        table = Table()
        for col in ("#", "up", "height", "app hash", "peers", "eth rpc", "cometbft rpc"):
            table.add_column(col, no_wrap=True, min_width=len(col))
        for n in info.nodes:
            table.add_row(
                str(n.index),
                "yes" if n.running else "[red]no[/]",
                "" if n.height is None else str(n.height),
                (n.app_hash or "0x")[2:10].upper(),
                "" if n.peers is None else str(n.peers),
                n.eth_rpc_url,
                n.cometbft_rpc_url,
            )
        console.print(table)

    return render


@app.command("up")
@returns("sahara_cli.node.results:LocalnetStatus")
def up(
    validators: Annotated[
        int | None,
        typer.Option(
            "--validators",
            help="Number of validators (1 to 32) of a new localnet.",
            min=1,
            max=32,
            show_default="4; a stopped localnet keeps its own",
        ),
    ] = None,
    block_time: Annotated[
        str | None,
        typer.Option(
            "--block-time",
            help="Time between blocks (timeout_commit): 1s, 500ms.",
            show_default="1s; a stopped localnet keeps its own",
        ),
    ] = None,
    cometbft_bin: Annotated[
        str | None,
        typer.Option(
            "--cometbft-bin",
            help="The cometbft binary.",
            show_default="$SAHARA_COMETBFT_BIN, the cache ('sahara setup cometbft'), PATH",
        ),
    ] = None,
    reset: Annotated[
        bool,
        typer.Option("--reset", help="Delete a stopped localnet first and start a new chain."),
    ] = False,
) -> None:
    """Start the localnet: a stopped one resumes its chain (same genesis, height goes on);
    otherwise create N validators on 127.0.0.1 and wait until each is at height 2."""
    st = state()
    seconds = None if block_time is None else parse_seconds(block_time)
    st.home.create()
    with st.output.status("Starting the localnet"):
        info = _net(st).up(validators, seconds, cometbft_bin=cometbft_bin, reset=reset)
    if info.resumed:
        st.output.note("resumed the stopped localnet (its chain goes on; --reset starts anew)")
    st.output.result(info, _render_status(info))


@app.command("status")
@returns("sahara_cli.node.results:LocalnetStatus")
def status() -> None:
    """Each node: running, height, app hash, peers, Ethereum and CometBFT RPC URLs."""
    st = state()
    info = _net(st).status()
    st.output.result(info, _render_status(info))


@app.command("stop-node")
@returns("sahara_cli.node.results:LocalnetNodeStopped")
def stop_node(index: NodeIndex) -> None:
    """Stop node I (its CometBFT, then its app); the others keep running."""
    st = state()
    info = _net(st).stop_node(index)
    st.output.result(
        info,
        lambda c: c.print(
            f"stopped node {index}" if info.stopped else f"node {index} was not running"
        ),
    )


@app.command("start-node")
@returns("sahara_cli.node.results:LocalnetNodeStarted")
def start_node(index: NodeIndex) -> None:
    """Start node I again, on the same ports and data."""
    st = state()
    with st.output.status(f"Starting node {index}"):
        info = _net(st).start_node(index)
    st.output.result(
        info,
        lambda c: c.print(f"started node {index} at height {info.height}: {info.eth_rpc_url}"),
    )


@app.command("logs")
@returns("sahara_cli.node.results:LocalnetLogs")
def logs(
    index: NodeIndex,
    lines: Annotated[
        int, typer.Option("--lines", "-n", help="How many recent lines of each log.", min=0)
    ] = 50,
) -> None:
    """The last lines of node I's app and CometBFT logs."""
    st = state()
    info = _net(st).logs(index, lines)

    def render(console: Console) -> None:
        for log in (info.app, info.cometbft):
            console.print(f"[bold]==> {log.path} <==[/]")
            for line in log.lines:
                console.print(line, markup=False)

    st.output.result(info, render)


@app.command("down")
@returns("sahara_cli.node.results:LocalnetDown")
def down(
    clean: Annotated[
        bool, typer.Option("--clean", help="Also delete <home>/localnet (keys, chain data, logs).")
    ] = False,
) -> None:
    """Stop every process of the localnet; with --clean remove its directory too."""
    st = state()
    info = _net(st).down(clean=clean)

    def render(console: Console) -> None:
        if info.stopped:
            console.print(f"stopped {len(info.stopped)} processes")
        else:
            console.print("no localnet process was running")
        if info.removed:
            console.print(f"removed {info.root}")

    st.output.result(info, render)
