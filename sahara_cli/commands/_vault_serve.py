"""sahara vault serve, vault daemon and vault gc: the parts of the vault that run on
their own or look after the store.

``vault serve`` releases data keys to licensees (checked on chain) and serves blocks;
``vault daemon`` runs a Kubo (IPFS) daemon for the home; ``vault gc`` collects the blocks
no item needs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import IdOption, PasswordFileOption, protocol
from sahara_cli.commands._state import state
from sahara_cli.commands._vault import Backend, kv, open_vault
from sahara_cli.errors import UsageError
from sahara_cli.units import human_size

if TYPE_CHECKING:
    from sahara_cli.vault.serve_process import ServePaths

daemon_app = typer.Typer(help="Run a Kubo (IPFS) daemon for this home.", no_args_is_help=True)


def register_serve(app: typer.Typer) -> None:
    """``vault serve`` (foreground, or ``--detach``), ``serve-status`` and ``serve-stop``."""
    app.command("serve")(serve)
    app.command("serve-status")(serve_status)
    app.command("serve-stop")(serve_stop)


@returns("sahara_cli.vault.results:ServeResult")
def serve(
    addr: Annotated[
        str | None,
        typer.Option(
            "--addr", help="HOST:PORT to listen on.", show_default="config vault.serve_addr"
        ),
    ] = None,
    backend: Backend = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Run in the background (pid and log in <home>/vault); see serve-status "
            "and serve-stop.",
        ),
    ] = False,
) -> None:
    """Release data keys to licensees (checked on chain) and serve your items' blocks;
    in the foreground until Ctrl-C, or with --detach in the background."""
    from sahara_cli.vault.serve_process import ServePaths

    st = state()
    cfg = st.config().config
    listen = addr or cfg.vault.serve_addr
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise UsageError(f"--addr {listen!r} is not HOST:PORT")
    paths = ServePaths.of_home(st.home.require().root)
    if detach:
        _detach(paths, listen, backend, signer_name, password_file)
        return
    _foreground(paths, listen, backend, signer_name, password_file)


def _foreground(
    paths: ServePaths,
    listen: str,
    backend: str | None,
    signer_name: str | None,
    password_file: Path | None,
) -> None:
    import asyncio
    import signal

    from aiohttp import web

    from sahara_cli.vault.access import KeyServer, ServeLimits, server_audiences
    from sahara_cli.vault.registration import reconcile
    from sahara_cli.vault.results import ServeResult

    st = state()
    cfg = st.config().config
    host, _, port_text = listen.rpartition(":")
    from sahara_cli.vault.serve_process import check_can_serve

    check_can_serve(paths, host.strip("[]"), int(port_text))  # before the chain is asked
    proto = protocol(st)
    chain_id = proto.node.chain_id()
    who, info, _ = st.unlock(signer_name, password_file)
    vault = open_vault(st, backend)
    # Finish registrations a killed command left half done; say which items were not
    # tied to an asset because another address owns it.
    for refused in reconcile(vault, proto):
        st.output.warn(f"{refused.code}: {refused.message}")

    def log(message: str) -> None:
        st.output.note(f"{time.strftime('%H:%M:%S')} {message}")

    server = KeyServer(
        vault,
        who,
        lambda: proto,
        chain_id=chain_id,
        log=log,
        audiences=server_audiences(listen, cfg.vault.public_url),
        limits=ServeLimits(
            per_ip=cfg.vault.serve_rate_per_ip, per_address=cfg.vault.serve_rate_per_address
        ),
    )

    async def main() -> None:
        runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, int(port_text)).start()
        except OSError as exc:
            from sahara_cli.errors import VaultPortInUse

            raise VaultPortInUse(
                f"cannot listen on {listen}: {exc.strerror}",
                code="vault.port_in_use",
                hint="Pass another --addr HOST:PORT.",
            ) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        served = sum(1 for item in vault.items() if item.asset_id is not None and item.encrypted)
        st.output.note(
            f"Serving {served} registered private items of {info.name} ({who.address}) "
            f"at http://{listen}  (Ctrl-C stops)"
        )
        if st.output.json_mode:
            sys.stderr.write(f'{{"listening": "http://{listen}"}}\n')
            sys.stderr.flush()
        url = f"http://{listen}"
        paths.announce({"pid": os.getpid(), "url": url, "addr": listen, "started": time.time()})
        await stop.wait()
        await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        paths.forget(os.getpid())
        server.close()
        vault.close()
    st.output.result(ServeResult(stopped=True, addr=listen), lambda c: c.print("Stopped."))


def _detach(
    paths: ServePaths,
    listen: str,
    backend: str | None,
    signer_name: str | None,
    password_file: Path | None,
) -> None:
    from sahara_cli.vault.serve_process import start_serving

    st = state()
    _, info, password = st.unlock(signer_name, password_file)
    host, _, port = listen.rpartition(":")
    args = ["--home", str(st.home.root), "--no-prompt", "vault", "serve", "--addr", listen]
    args += ["--id", info.name] + (["--backend", backend] if backend else [])
    with st.output.status("Starting the vault server"):
        result = start_serving(paths, args, password, address=(host.strip("[]"), int(port)))
    st.output.result(
        result,
        lambda c: c.print(
            f"[bold green]vault server[/] of {info.name} at [bold]{result.url}[/] "
            f"(pid {result.pid}, log {result.log})"
        ),
    )


@returns("sahara_cli.vault.results:ServeStatus")
def serve_status() -> None:
    """Whether this home's background vault server runs: its URL, pid and uptime."""
    from sahara_cli.vault.serve_process import ServePaths
    from sahara_cli.vault.serve_process import serve_status as status_of

    st = state()
    result = status_of(ServePaths.of_home(st.home.require().root))

    def render(console: Any) -> None:
        if not result.running:
            console.print("no vault server of this home is running")
            return
        console.print(
            f"vault server at [bold]{result.url}[/] (pid {result.pid}, "
            f"up {result.uptime_s:.0f} s, log {result.log})"
        )

    st.output.result(result, render)


@returns("sahara_cli.vault.results:ServeStopped")
def serve_stop() -> None:
    """Stop this home's background vault server (SIGTERM; SIGKILL after 30 s)."""
    from sahara_cli.vault.serve_process import ServePaths, stop_serving

    st = state()
    result = stop_serving(ServePaths.of_home(st.home.require().root))
    st.output.result(
        result,
        lambda c: c.print(
            f"stopped the vault server (pid {result.pid})"
            + (", killed after the timeout" if result.killed else "")
            if result.stopped
            else "no vault server of this home is running"
        ),
    )


@daemon_app.command("start")
@returns("sahara_cli.vault.results:DaemonStatus")
def daemon_start(
    local: Annotated[
        bool,
        typer.Option(
            "--local/--network",
            help="Loopback only, no bootstrap peers (--local), or join the IPFS network.",
        ),
    ] = True,
    ipfs_bin: Annotated[
        str | None,
        typer.Option(
            "--ipfs-bin", help="Kubo's ipfs binary to run.", show_default="config vault.ipfs_bin"
        ),
    ] = None,
) -> None:
    """Start Kubo for this home (created on first use under <home>/vault/ipfs)."""
    from sahara_cli.vault.backends import start_daemon

    st = state()
    home = st.home.require()
    cfg = st.config().config.vault
    if ipfs_bin is not None:
        cfg = cfg.model_copy(update={"ipfs_bin": ipfs_bin})
    result = start_daemon(home.root, cfg, local=local, report=st.output)
    st.output.result(result, kv(result.model_dump()))


@daemon_app.command("stop")
@returns("sahara_cli.vault.results:DaemonStopped")
def daemon_stop() -> None:
    """Stop this home's Kubo daemon."""
    from sahara_cli.vault.backends import stop_daemon

    st = state()
    result = stop_daemon(st.home.require().root, st.config().config.vault)
    st.output.result(
        result, lambda c: c.print("Stopped." if result.stopped else "It was not running.")
    )


@daemon_app.command("status")
@returns("sahara_cli.vault.results:DaemonStatus")
def daemon_status() -> None:
    """Whether this home's Kubo daemon runs, and where its API is."""
    from sahara_cli.vault.backends import daemon_status as status_of

    st = state()
    result = status_of(st.home.require().root, st.config().config.vault)
    st.output.result(result, kv(result.model_dump()))


@returns("sahara_cli.vault.results:GarbageCollected")
def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what gc would remove; remove nothing.")
    ] = False,
    backend: Backend = None,
) -> None:
    """Remove blocks no item needs: removed items, and what an interrupted add wrote.

    Refuses (vault.busy) while another 'vault add' writes to the store.
    """
    from sahara_cli.vault.items import collect_garbage

    st = state()
    with open_vault(st, backend) as vault:
        result = collect_garbage(vault, dry_run=dry_run)
    freed = f"{result.removed_blocks} blocks, {human_size(result.removed_bytes)}"
    rows = {
        "would free" if dry_run else "freed": freed,
        "left": f"{result.blocks} blocks, {human_size(result.bytes)}",
    }
    st.output.result(result, kv(rows))
