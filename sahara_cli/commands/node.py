"""sahara node: run the local Sahara chain node (solo proof of stake) and manage it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands import _node_dev
from sahara_cli.commands._output import returns
from sahara_cli.commands._state import AppState, state
from sahara_cli.errors import IdentityNotFound, NodeError, UsageError

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.process import NodePaths
    from sahara_cli.node.results import NodeServing

app = typer.Typer(help="Run the local Sahara chain node and manage it.", no_args_is_help=True)

Dev = Annotated[
    bool,
    typer.Option(
        "--dev", help="Development chain: fund the 10 test accounts, enable sahara_dev_*."
    ),
]
RpcAddr = Annotated[
    str | None,
    typer.Option("--rpc-addr", help="HOST:PORT for JSON-RPC.", show_default="config node.rpc_addr"),
]
BlockTime = Annotated[
    str | None,
    typer.Option(
        "--block-time",
        help="Time between blocks: 1s, 500ms, 2m, or seconds; 0 mines on every tx.",
        show_default="config node.block_time (0)",
    ),
]
ChainId = Annotated[
    int | None, typer.Option("--chain-id", help="Chain id of a new chain.", show_default="31313")
]
RemoteSigning = Annotated[
    bool,
    typer.Option(
        "--allow-remote-signing", help="Allow signing and dev methods on a non-loopback address."
    ),
]
Cors = Annotated[list[str] | None, typer.Option("--cors", help="Allowed CORS origin (repeatable).")]
Abci = Annotated[
    str | None,
    typer.Option(
        "--abci",
        help="Run as a CometBFT (ABCI 2.0) application listening here: tcp://HOST:PORT or "
        "unix://PATH (CometBFT's proxy_app).",
        show_default="the solo node",
    ),
]
CometRpc = Annotated[
    str,
    typer.Option("--comet-rpc", help="With --abci: CometBFT's RPC, where transactions go."),
]
GenesisFile = Annotated[
    Path | None,
    typer.Option(
        "--genesis",
        help="With --abci: the Sahara genesis when CometBFT's has no app_state.",
        exists=True,
        dir_okay=False,
    ),
]
PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help="Password of the validator ID (else SAHARA_PASSWORD / prompt).",
        dir_okay=False,
    ),
]


def _paths(st: AppState) -> NodePaths:
    from sahara_cli.node.process import NodePaths

    return NodePaths.of_home(st.home.root)


def _validator(
    st: AppState, password_file: Path | None, dev: bool
) -> tuple[Signer, str, str | None]:
    """The block signer: the default Sahara ID, or on a dev chain without IDs dev account 0."""
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.genesis import dev_keys

    if st.home.exists() and st.keystore().names():
        signer, info, password = st.unlock(None, password_file, role="the validator ID ")
        return signer, f"Sahara ID '{info.name}'", password
    if dev:
        return Signer(dev_keys()[0]), "dev account 0 (no Sahara ID in this home)", None
    raise IdentityNotFound(
        "a validator needs a Sahara ID and this home has none",
        hint="Run 'sahara init', or use --dev for a development chain.",
    )


def _settings(
    st: AppState, rpc_addr: str | None, block_time: str | None, chain_id: int | None
) -> Any:
    from sahara_cli.units import parse_seconds

    seconds = None if block_time is None else parse_seconds(block_time, allow_zero=True)
    st.overrides.update(
        {"node.rpc_addr": rpc_addr, "node.block_time": seconds, "node.chain_id": chain_id}
    )
    return st.config().config.node


def _render_banner(info: NodeServing) -> Any:
    def render(console: Console) -> None:
        console.print(f"[bold green]Sahara node[/] serving JSON-RPC at [bold]{info.rpc_url}[/]")
        console.print(f"  chain id   {info.chain_id}")
        console.print(f"  validator  {info.validator}  [dim]({info.validator_source})[/]")
        pace = f"every {info.block_time_s:g} s" if info.block_time_s else "on every transaction"
        console.print(f"  blocks     {pace}")
        console.print(f"  height     {info.height}")
        if info.dev:
            console.print("  dev accounts: [bold]sahara node accounts[/] (10,000 SAH each)")

    return render


@app.command("run")
@returns("sahara_cli.node.results:NodeRun")
def run(
    dev: Dev = False,
    rpc_addr: RpcAddr = None,
    block_time: BlockTime = None,
    chain_id: ChainId = None,
    allow_remote_signing: RemoteSigning = False,
    cors: Cors = None,
    password_file: PasswordFile = None,
    abci: Abci = None,
    comet_rpc: CometRpc = "http://127.0.0.1:26657",
    genesis: GenesisFile = None,
) -> None:
    """Run a node in the foreground until Ctrl-C (or SIGTERM); with --abci, as the
    application of a CometBFT validator."""
    from sahara_cli.node.process import parse_addr, run_foreground
    from sahara_cli.node.results import NodeServing
    from sahara_cli.node.rpc.context import ServerOptions

    st = state()
    settings = _settings(st, rpc_addr, block_time, chain_id)
    host, port = parse_addr(settings.rpc_addr)
    options = ServerOptions.of_config(settings)
    if abci is not None:
        _run_abci(st, abci, (host, port, comet_rpc), dev, genesis, settings.chain_id, options)
        return
    if genesis is not None:
        raise UsageError("--genesis goes with --abci (the solo node makes its own genesis)")
    signer, source, _ = _validator(st, password_file, dev)
    st.home.create()

    def ready(runtime: dict[str, Any]) -> None:
        info = NodeServing.from_runtime(runtime, validator_source=source)
        st.output.result(info, _render_banner(info))
        if not st.json:
            st.output.note("[dim]Ctrl-C to stop.[/]")

    run_foreground(
        _paths(st),
        validator=signer,
        dev=dev,
        chain_id=settings.chain_id,
        host=host,
        port=port,
        block_time=settings.block_time,
        allow_remote_signing=allow_remote_signing,
        cors=cors,
        ready=ready,
        rpc_options=options,
    )
    st.output.note("node stopped")


def _run_abci(
    st: AppState,
    address: str,
    rpc: tuple[str, int, str],
    dev: bool,
    genesis_file: Path | None,
    chain_id: int,
    options: Any = None,
) -> None:
    """The CometBFT application: chain data in <home>/node/abci, JSON-RPC at ``rpc``."""
    from sahara_cli.node.abci.__main__ import app_genesis, run_app
    from sahara_cli.node.results import AppServing

    if not address.startswith(("tcp://", "unix://")):
        raise UsageError(f"--abci must be tcp://HOST:PORT or unix://PATH, got {address!r}")
    if dev and genesis_file is not None:
        raise UsageError("--dev and --genesis exclude each other")
    genesis = app_genesis(genesis_file=genesis_file, dev=dev, chain_id=chain_id)
    st.home.create()
    data = _paths(st).root / "abci"
    data.mkdir(parents=True, exist_ok=True)

    def announce(what: str, where: str) -> None:
        if what == "abci":
            st.output.result(
                AppServing(abci=where, comet_rpc=rpc[2], data_dir=str(data)),
                lambda c: c.print(
                    f"[bold green]Sahara ABCI application[/] listening on [bold]{where}[/] "
                    f"for CometBFT (data in {data})"
                ),
            )
        else:
            st.output.note(f"  JSON-RPC at [bold]{where}[/] (transactions go to {rpc[2]})")

    try:
        status = run_app(data, address, genesis, rpc, announce, options)
    except OSError as exc:  # the ABCI address taken or unusable, the database unopenable
        raise NodeError(
            f"cannot serve the ABCI application on {address}: {exc}",
            hint="Is another application listening there? Pick a free --abci address.",
        ) from None
    if status != 0:
        raise NodeError(
            "the ABCI application stopped with an error (its JSON-RPC server failed)",
            hint="Run with -v to see the log; is the --rpc-addr port free?",
        )
    st.output.note("node stopped")


@app.command("start")
@returns("sahara_cli.node.results:NodeServing")
def start(
    dev: Dev = False,
    rpc_addr: RpcAddr = None,
    block_time: BlockTime = None,
    chain_id: ChainId = None,
    allow_remote_signing: RemoteSigning = False,
    cors: Cors = None,
    password_file: PasswordFile = None,
) -> None:
    """Start a node in the background (pid and log in <home>/node)."""
    from sahara_cli.node.process import parse_addr, start_background
    from sahara_cli.node.results import NodeServing

    st = state()
    settings = _settings(st, rpc_addr, block_time, chain_id)
    address = parse_addr(settings.rpc_addr)
    _, source, password = _validator(st, password_file, dev)
    st.home.create()
    args = ["--home", str(st.home.root), "--no-prompt", "node", "run"]
    args += ["--rpc-addr", settings.rpc_addr, "--block-time", str(settings.block_time)]
    args += ["--chain-id", str(settings.chain_id)]
    if dev:
        args.append("--dev")
    if allow_remote_signing:
        args.append("--allow-remote-signing")
    for origin in cors or []:
        args += ["--cors", origin]
    paths = _paths(st)
    with st.output.status("Starting the node"):
        runtime = start_background(paths, args, password, address=address)
    info = NodeServing.from_runtime(runtime, validator_source=source, log=str(paths.log_file))
    st.output.result(info, _render_banner(info))


@app.command("stop")
@returns("sahara_cli.node.results:NodeStopped")
def stop() -> None:
    """Stop the background node of this home."""
    from sahara_cli.node.process import stop_background
    from sahara_cli.node.results import NodeStopped

    st = state()
    pid = stop_background(_paths(st))
    st.output.result(
        NodeStopped(stopped=pid is not None, pid=pid),
        lambda c: c.print(
            f"stopped the node (pid {pid})" if pid else "no node of this home is running"
        ),
    )


@app.command("status")
@returns("sahara_cli.node.results:NodeStatus")
def status() -> None:
    """Height, block time, mempool, tx/s and validator of the node at node.rpc_url."""
    from sahara_cli.node.process import node_status

    st = state()
    cfg = st.config().config.node
    info = node_status(cfg.rpc_url, cfg.timeout, _paths(st) if st.home.exists() else None)

    def render(console: Console) -> None:
        pace = info.block_time_s
        rows = {
            "rpc": info.rpc_url + (f"  (pid {info.local_pid})" if info.local_pid else ""),
            "client": info.client_version,
            "chain id": info.chain_id,
            "height": info.head.number,
            "head": info.head.hash,
            "blocks": f"every {pace:g} s" if pace else "on every transaction",
            "mempool": f"{info.mempool.pending} pending, {info.mempool.queued} queued",
            "tx/s": f"{info.tx_per_second:.1f} (last 10 s)",
            "produced": f"{info.blocks_produced} blocks, {info.txs_produced} txs",
            "validator": info.validator,
            "dev chain": "yes" if info.dev else "no",
            "uptime": f"{info.uptime_s} s",
        }
        table = Table(show_header=False, box=None)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for key, value in rows.items():
            table.add_row(key, str(value))
        console.print(table)

    st.output.result(info, render)


@app.command("logs")
@returns("sahara_cli.node.results:NodeLog")
def logs(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", help="How many recent lines to show.")
    ] = 50,
) -> None:
    """Show the background node's log."""
    from sahara_cli.node.process import node_log

    st = state()
    path = _paths(st).log_file
    recent = node_log(_paths(st), lines)
    if st.json:
        st.output.result(recent)
        return
    for line in recent.lines:
        typer.echo(line)
    if follow:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            try:
                while True:
                    chunk = fh.readline()
                    if chunk:
                        typer.echo(chunk.decode("utf-8", "replace").rstrip("\n"))
                    else:
                        time.sleep(0.2)
            except KeyboardInterrupt:
                return


@app.command("reset")
@returns("sahara_cli.node.results:ChainReset")
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete this home's chain data (the node must be stopped)."""
    from sahara_cli.node.process import reset_chain

    st = state()
    done = reset_chain(_paths(st), lambda question: st.confirm(question, yes=yes))
    st.output.result(
        done,
        lambda c: c.print(f"deleted {done.path}" if done.deleted else "no chain data to delete"),
    )


app.command("accounts")(_node_dev.accounts)
app.command("fund")(_node_dev.fund)
