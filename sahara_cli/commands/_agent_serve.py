"""``sahara agent publish|key|serve``: sell an agent's answers over an OpenAI-compatible
API, metered and attributed on chain. Added to the ``agent`` group by :func:`register`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sahara_cli.commands._protocol import IdOption, PasswordFileOption, protocol
from sahara_cli.commands._state import state
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_ADDR = "127.0.0.1:8800"

Name = Annotated[str, typer.Argument(help="The agent's name.", show_default=False)]


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
            help="Address that meters calls (default: the publishing ID).",
            show_default=False,
        ),
    ] = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Register the agent as an asset and offer an API license at a price per call."""
    from sahara_cli.agent.serve import publish_agent
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.commands._protocol import parse_bps
    from sahara_cli.identity.keys import parse_address
    from sahara_cli.node.client import format_sah, parse_sah

    st = state()
    upstream = parse_bps(upstream_share, "--upstream-share")
    meter = parse_address(meter, "--meter") if meter is not None else None
    home = st.home.require()
    spec = AgentStore(home.root).load(name)
    price_text = price_per_call or spec.license.price_per_call
    if price_text is None:
        raise UsageError(
            "no price per call", hint="Pass --price-per-call, e.g. --price-per-call 0.001."
        )
    try:
        price = parse_sah(price_text)
    except UsageError as exc:
        raise UsageError(f"--price-per-call: {exc.message}", hint=exc.hint) from None
    proto = protocol(st)
    signer, _info, _ = st.unlock(signer_name or spec.identity, password_file)
    result = publish_agent(
        home.root,
        spec,
        proto,
        signer,
        price_per_call=price,
        upstream_bps=upstream,
        meter=meter,
    )
    result["price_per_call_sah"] = format_sah(price)

    def render(console: Console) -> None:
        model = result["model_asset"]
        console.print(
            f"Published agent [bold]{name}[/] as asset #{result['asset_id']}"
            + (
                f", derived from model asset #{model}"
                if model
                else " (its model is not registered)"
            )
        )
        console.print(
            f"API offer #{result['offer_id']}: {result['price_per_call_sah']} SAH per call, "
            f"{result['upstream_bps']} bps upstream; metered by {result['meter']}"
        )
        console.print(
            f"Buyers: 'sahara license buy {result['offer_id']} --calls N', then "
            f"'sahara agent key {result['asset_id']}'.",
            highlight=False,
        )
        rows = tx_rows_of(result)
        for key, value in rows.items():
            console.print(f"[dim]{key}: {value}[/]")

    st.output.result(result, render)


def tx_rows_of(result: dict[str, Any]) -> dict[str, str]:
    return {
        name.removesuffix("_tx"): result[name]["hash"]
        for name in ("register_tx", "meter_tx", "offer_tx")
        if name in result
    }


def key(
    agent: Annotated[
        str,
        typer.Argument(
            help="The agent's name in this home, or its asset id (#N or N).", show_default=False
        ),
    ],
    ttl: Annotated[
        str, typer.Option("--ttl", help="How long the key stays valid (3600, 12h, 30d, 1y).")
    ] = "30d",
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Make an API key for calling a served agent as your Sahara ID."""
    from sahara_cli.agent.serve import make_api_key
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.commands._protocol import parse_duration, parse_id
    from sahara_cli.errors import AgentError

    st = state()
    seconds = parse_duration(ttl)
    raw = agent.strip().removeprefix("#")
    if raw.isdigit():
        asset_id = parse_id(raw, "agent asset id")
    else:
        spec = AgentStore(st.home.require().root).load(agent)
        if spec.asset_id is None:
            raise AgentError(
                f"agent {agent!r} is not published",
                hint=f"Publish it with 'sahara agent publish {agent} --price-per-call X'.",
            )
        asset_id = spec.asset_id
    proto = protocol(st)
    found = proto.asset(asset_id)
    if found.kind != "agent":
        raise UsageError(f"asset {asset_id} is a {found.kind}, not an agent")
    signer, _info, _ = st.unlock(signer_name, password_file)
    chain_id = proto.node.chain_id()
    token = make_api_key(signer, asset_id, chain_id, seconds)
    licenses = proto.api_licenses(signer.address, asset_id)
    data = {
        "api_key": token,
        "address": signer.address,
        "agent_asset": asset_id,
        "agent": found.name,
        "chain_id": chain_id,
        "ttl": seconds,
        "calls_left": sum(lic.calls for lic in licenses),
        "owner": found.owner == signer.address,
    }

    def render(console: Console) -> None:
        console.print(token, markup=False, highlight=False, soft_wrap=True)
        if not licenses and not data["owner"]:
            st.output.warn(
                f"{signer.address} holds no API license with calls left for asset {asset_id}: "
                "calls will be refused until it buys some."
            )

    st.output.result(data, render)


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
    password_file: PasswordFileOption = None,
) -> None:
    """Serve the agent at /v1/chat/completions (OpenAI-compatible), metered on chain."""
    from sahara_cli.agent.brain import open_agent
    from sahara_cli.agent.serve import serve_agent
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.commands.mcp import _check_port
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
    _check_port(host, real_port)
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
        serve_agent(agent, host, real_port, protocol=proto, meter=signer, on_ready=ready, log=log)
    except KeyboardInterrupt:
        pass
    finally:
        agent.close()
    st.output.result(
        {"stopped": True, "url": url, "agent": name, "asset_id": spec.asset_id},
        lambda c: c.print("Stopped."),
    )


def register(app: typer.Typer) -> None:
    """Add publish, key and serve to the ``agent`` group."""
    app.command("publish")(publish)
    app.command("key")(key)
    app.command("serve")(serve)
