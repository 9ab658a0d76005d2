"""``sahara agent publish|key|serve``: sell an agent's answers over an OpenAI-compatible
API, metered and attributed on chain. Added to the ``agent`` group by :func:`register`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from sahara_cli.agent.servers.limits import DEFAULT_RATE_PER_IP
from sahara_cli.agent.servers.openai_wire import MAX_BODY, MAX_PENDING
from sahara_cli.commands._agent_common import Name
from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import IdOption, PasswordFileOption, protocol
from sahara_cli.commands._state import state
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_ADDR = "127.0.0.1:8800"


def _parse_addr(addr: str, port: int | None) -> tuple[str, int]:
    host, _, port_text = addr.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--addr {addr!r} is not HOST:PORT", hint="For example 127.0.0.1:8800.")
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"--port {port} is not a TCP port (1 to 65535)")
    return host.strip("[]"), port if port is not None else int(port_text)


def publish(
    name: Name,
    price_per_call: Annotated[
        str | None,
        typer.Option(
            "--price-per-call",
            help="Price of one call in SAH, e.g. 0.001 (default: the spec's "
            "license.price_per_call).",
            show_default=False,
        ),
    ] = None,
    upstream_share: Annotated[
        str,
        typer.Option(
            "--upstream-share",
            help="Part of each call's price that flows to the model and the vault assets "
            "an answer used, in bps or % (needs a registered model).",
        ),
    ] = "2000",
    meter: Annotated[
        str | None,
        typer.Option(
            "--meter",
            help="Address or ID name that meters calls (default: the publishing ID).",
            show_default=False,
        ),
    ] = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Register the agent as an asset and offer an API license at a price per call."""
    from sahara_cli.agent.servers.publish import publish as publish_flow
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.commands._protocol import address_of, parse_bps

    st = state()
    upstream = parse_bps(upstream_share, "--upstream-share")
    meter = address_of(st, meter, "--meter") if meter is not None else None
    home = st.home.require()
    spec = AgentStore(home.root).load(name)
    proto = protocol(st)
    signer, _info, _ = st.unlock(signer_name or spec.identity, password_file)
    result = publish_flow(
        home.root,
        name,
        proto,
        signer,
        price_per_call=price_per_call,
        upstream_bps=upstream,
        meter=meter,
    )

    def render(console: Console) -> None:
        model = result.model_asset_id
        console.print(
            f"Published agent [bold]{name}[/] as asset #{result.asset_id}"
            + (
                f", derived from model asset #{model}"
                if model
                else " (its model is not registered)"
            )
        )
        console.print(
            f"API offer #{result.offer_id}: {result.price_per_call_sah} SAH per call, "
            f"{result.upstream_bps} bps upstream; metered by {result.meter}"
        )
        console.print(
            f"Buyers: 'sahara license buy {result.offer_id} --calls N', then "
            f"'sahara agent key {result.asset_id}'.",
            highlight=False,
        )
        for label, tx in (
            ("register", result.register_tx),
            ("meter", result.meter_tx),
            ("offer", result.offer_tx),
        ):
            if tx is not None:
                console.print(f"[dim]{label}: {tx.hash}[/]")

    st.output.result(result, render)


def key(
    agent: Annotated[
        str,
        typer.Argument(
            help="The agent's name in this home, or its asset id (#N or N); or 'revoke'.",
            show_default=False,
        ),
    ],
    revoke_key: Annotated[
        str | None,
        typer.Argument(
            metavar="[KEY]",
            help="With 'revoke': the key to revoke (or, with --agent, its id).",
            show_default=False,
        ),
    ] = None,
    ttl: Annotated[
        str,
        typer.Option("--ttl", help="How long the key stays valid (3600, 12h, 30d; at most 365d)."),
    ] = "30d",
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="With 'revoke': the served agent's API (http://HOST:PORT/v1) to revoke it at.",
            show_default=False,
        ),
    ] = None,
    agent_name: Annotated[
        str | None,
        typer.Option(
            "--agent",
            help="With 'revoke': the agent of this home that refuses the key from now on.",
            show_default=False,
        ),
    ] = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Make an API key for calling a served agent as your Sahara ID; 'key revoke KEY'
    ends one, at the server (--url) or in this home's agent (--agent)."""
    from sahara_cli.agent.servers.api_keys import (
        agent_asset_id,
        check_ttl,
        make_agent_key,
        revoke_agent_key,
        served_agent,
    )
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.commands._protocol import parse_duration

    st = state()
    if agent == "revoke" and revoke_key is not None:
        home = st.home.require().root if agent_name is not None else None
        done = revoke_agent_key(home, revoke_key, url=url, agent=agent_name)
        again = " (it was revoked already)" if done.already else ""
        st.output.result(
            done, lambda c: c.print(f"Revoked API key {done.key_id}{again}.", highlight=False)
        )
        return
    if agent == "revoke" and not AgentStore(st.home.require().root).exists("revoke"):
        raise UsageError("'sahara agent key revoke' needs the KEY to revoke")
    if revoke_key is not None or url is not None or agent_name is not None:
        raise UsageError(
            "KEY, --url and --agent are for 'sahara agent key revoke KEY'",
            hint="Make a key with 'sahara agent key AGENT [--ttl 30d]'.",
        )
    seconds = check_ttl(parse_duration(ttl))
    root = st.home.require().root
    asset_id = agent_asset_id(root, agent)  # a published agent, before the node is asked
    proto = protocol(st)
    served_agent(proto, asset_id)  # an agent, before the ID is unlocked
    signer, _info, _ = st.unlock(signer_name, password_file)
    made = make_agent_key(root, agent, proto, signer, seconds)

    def render(console: Console) -> None:
        console.print(made.api_key, markup=False, highlight=False, soft_wrap=True)
        st.output.note(f"key id {made.key_id} (revoke it with 'sahara agent key revoke KEY')")
        if not made.calls_left and not made.owner:
            st.output.warn(
                f"{made.address} holds no API license with calls left for asset "
                f"{made.asset_id}: calls will be refused until it buys some."
            )

    st.output.result(made, render)


def serve(
    name: Name,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            "-p",
            help="TCP port to listen on (overrides --addr's port).",
            show_default=False,
        ),
    ] = None,
    addr: Annotated[str, typer.Option("--addr", help="HOST:PORT to listen on.")] = DEFAULT_ADDR,
    max_body: Annotated[
        int,
        typer.Option(
            "--max-body",
            help="Largest request body taken, in bytes (larger: HTTP 413).",
            min=1024,
        ),
    ] = MAX_BODY,
    max_pending: Annotated[
        int,
        typer.Option(
            "--max-pending",
            help="Calls in flight at once, streamed or not (more: HTTP 503 at once).",
            min=1,
        ),
    ] = MAX_PENDING,
    rate_per_ip: Annotated[
        float,
        typer.Option(
            "--rate-per-ip",
            help="Requests a second one address may make, in bursts of twice that "
            "(more: HTTP 429); 0 for no limit.",
            min=0,
        ),
    ] = DEFAULT_RATE_PER_IP,
    password_file: PasswordFileOption = None,
) -> None:
    """Serve the agent at /v1/chat/completions (OpenAI-compatible), metered on chain."""
    from sahara_cli.agent.brain import open_agent
    from sahara_cli.agent.results import AgentServeStopped
    from sahara_cli.agent.servers.openai_api import serve_agent
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.commands._serve import check_port
    from sahara_cli.errors import AgentError

    st = state()
    host, real_port = _parse_addr(addr, port)
    home = st.home.require()
    spec = AgentStore(home.root).load(name)
    if spec.asset_id is None:
        raise AgentError(
            f"agent {name!r} is not published",
            hint=f"Publish it with 'sahara agent publish {name} --price-per-call X'.",
        )
    check_port(host, real_port)
    proto = protocol(st)
    signer, _info, _ = st.unlock(spec.identity, password_file, role="the agent's ID ")
    cfg = st.config().config
    with st.output.status(f"Loading {spec.model.name}"):
        agent = open_agent(
            home.root,
            spec,
            signer=signer,
            rpc_url=cfg.node.rpc_url,
            vault_config=cfg.vault,
        )
    url = f"http://{host}:{real_port}/v1"

    def ready(listening: str) -> None:
        st.output.note(
            f"Serving agent {name} (asset #{spec.asset_id}) at {listening}  (Ctrl-C stops)"
        )
        if st.output.json_mode:
            sys.stderr.write(f'{{"listening": "{listening}"}}\n')
            sys.stderr.flush()

    def log(message: str) -> None:
        st.output.note(f"[dim]{message}[/]")

    try:
        serve_agent(
            agent,
            host,
            real_port,
            protocol=proto,
            meter=signer,
            on_ready=ready,
            log=log,
            max_body=max_body,
            max_pending=max_pending,
            rate_per_ip=rate_per_ip or None,
        )
    except KeyboardInterrupt:
        pass
    finally:
        agent.close()
    st.output.result(
        AgentServeStopped(stopped=True, url=url, agent=name, asset_id=spec.asset_id),
        lambda c: c.print("Stopped."),
    )


def register(app: typer.Typer) -> None:
    """Add publish, key and serve to the ``agent`` group."""
    app.command("publish")(returns("sahara_cli.agent.results:AgentPublished")(publish))
    app.command("key")(returns("sahara_cli.agent.results:AgentKeyResult")(key))
    app.command("serve")(returns("sahara_cli.agent.results:AgentServeStopped")(serve))
