"""sahara light: follow a remote Sahara chain's verified headers and verify its state."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from sahara_cli.commands._output import returns
from sahara_cli.commands._state import AppState, state
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from sahara_cli.node.light import LightClient
    from sahara_cli.node.results import LightAccount, LightHeader

app = typer.Typer(
    help="A light client: headers verified by CometBFT's light client, balances and storage "
    "verified with eth_getProof against them.",
    no_args_is_help=True,
)

Rpc = Annotated[
    str | None,
    typer.Option(
        "--rpc",
        help="The node's Ethereum JSON-RPC (untrusted).",
        show_default="config node.rpc_url",
    ),
]
CometRpc = Annotated[
    str,
    typer.Option(
        "--comet-rpc", envvar="SAHARA_LIGHT_COMET_RPC", help="The primary CometBFT RPC (untrusted)."
    ),
]
Witness = Annotated[
    list[str] | None,
    typer.Option(
        "--witness",
        help="A CometBFT RPC that cross-checks the primary (repeatable).",
        show_default="the primary alone",
    ),
]
TrustHeight = Annotated[
    int | None,
    typer.Option("--trust-height", help="Height of the trusted header.", show_default="1", min=1),
]
TrustHash = Annotated[
    str | None,
    typer.Option(
        "--trust-hash",
        help="Hash of the trusted header (hex).",
        show_default="the primary's, trusted on first use",
    ),
]
CometbftBin = Annotated[
    str | None,
    typer.Option(
        "--cometbft-bin",
        help="The cometbft binary.",
        show_default="$SAHARA_COMETBFT_BIN, the cache ('sahara setup cometbft'), PATH",
    ),
]
Block = Annotated[
    int | None,
    typer.Option("--block", help="EVM block number.", show_default="the newest verified", min=0),
]

DEFAULT_COMET_RPC = "http://127.0.0.1:26657"


@dataclass(frozen=True)
class Remote:
    """The chain to follow and the header to trust: options every light command takes."""

    rpc: str | None = None
    comet_rpc: str = DEFAULT_COMET_RPC
    witness: list[str] | None = None
    trust_height: int | None = None
    trust_hash: str | None = None
    cometbft_bin: str | None = None


_REMOTE_OPTIONS = {
    "rpc": Rpc,
    "comet_rpc": CometRpc,
    "witness": Witness,
    "trust_height": TrustHeight,
    "trust_hash": TrustHash,
    "cometbft_bin": CometbftBin,
}


def _remote_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the options of :class:`Remote`, after its own; it gets ``remote``."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "remote"]
    defaults = Remote()
    shared = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, name), annotation=option
        )
        for name, option in _REMOTE_OPTIONS.items()
    ]

    @functools.wraps(command)
    def with_remote(**kwargs: Any) -> None:
        remote = Remote(**{name: kwargs.pop(name) for name in _REMOTE_OPTIONS})
        command(remote=remote, **kwargs)

    params = [*own, *shared]
    with_remote.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    with_remote.__annotations__ = {p.name: p.annotation for p in params}
    return with_remote


@contextmanager
def _client(st: AppState, remote: Remote) -> Iterator[LightClient]:
    from sahara_cli.node.light import LightClient

    eth = remote.rpc or st.config().config.node.rpc_url
    client = LightClient(
        eth,
        remote.comet_rpc,
        witnesses=remote.witness or (),
        trust_height=remote.trust_height,
        trust_hash=remote.trust_hash,
        cometbft_bin=remote.cometbft_bin,
    )
    with st.output.status("Verifying headers with CometBFT's light client"):
        client.start()
    try:
        yield client
    finally:
        client.close()


def _verified_account(
    st: AppState, remote: Remote, address: str, keys: Sequence[int], block: int | None
) -> LightAccount:
    from sahara_cli.identity.addresses import resolve_address

    # before anything reaches the network; an ID name needs the home's keystore
    checked = resolve_address(address, "ADDRESS", keystore=st.keystore)
    with _client(st, remote) as client:
        return client.verified_account(checked, keys, block)


def _verified_line(doc: LightAccount) -> str:
    head = doc.header
    return (
        f"[dim]verified: proof against state root {doc.state_root[:18]}... of block "
        f"{doc.block}, in CometBFT header {head.height} ({head.hash[2:18].upper()}...) "
        f"verified from trusted height {doc.trusted.height}[/]"
    )


def _slot(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise UsageError(f"not a storage slot: {text!r} (a number, decimal or 0x hex)") from None
    if not 0 <= value < 2**256:
        raise UsageError(f"storage slot out of range: {text!r}")
    return value


@app.command("balance")
@returns("sahara_cli.node.results:LightAccount")
@_remote_options
def balance(
    address: Annotated[str, typer.Argument(help="The account: an address or a Sahara ID name.")],
    block: Block = None,
    *,
    remote: Remote,
) -> None:
    """The verified balance and nonce of ADDRESS: proven against a verified state root."""
    st = state()
    doc = _verified_account(st, remote, address, (), block)

    def render(console: Console) -> None:
        console.print(
            f"{doc.balance_sah} SAH  [dim]{doc.address} at block {doc.block}, nonce {doc.nonce}[/]"
        )
        console.print(_verified_line(doc))

    st.output.result(doc, render)


@app.command("storage")
@returns("sahara_cli.node.results:LightAccount")
@_remote_options
def storage(
    address: Annotated[str, typer.Argument(help="The contract: an address or a Sahara ID name.")],
    slots: Annotated[list[str], typer.Argument(help="Storage slots (decimal or 0x hex).")],
    block: Block = None,
    *,
    remote: Remote,
) -> None:
    """Verified storage slots of ADDRESS: each proven against a verified state root."""
    st = state()
    keys = [_slot(s) for s in slots]
    doc = _verified_account(st, remote, address, keys, block)

    def render(console: Console) -> None:
        for key, value in doc.storage.items():
            console.print(f"{key} = {value}")
        console.print(f"[dim]{doc.address} at block {doc.block}[/]")
        console.print(_verified_line(doc))

    st.output.result(doc, render)


def _header_line(head: LightHeader) -> str:
    from sahara_cli.results import iso_utc

    app_hash = (head.app_hash or "0x")[2:18]
    return (
        f"height {head.height}  {head.hash[2:18].upper()}...  state root of block "
        f"{head.state_root_of_block} 0x{app_hash}...  {iso_utc(head.produced_at)}"
    )


@app.command("head")
@returns("sahara_cli.node.results:LightHead")
@_remote_options
def head(*, remote: Remote) -> None:
    """The newest header, verified from the trusted one."""
    st = state()
    with _client(st, remote) as client:
        doc = client.head()
    st.output.result(doc, lambda c: c.print(_header_line(doc)))


@app.command("follow")
@returns("sahara_cli.node.results:LightHeader")
@_remote_options
def follow(
    count: Annotated[
        int | None,
        typer.Option("--count", help="Stop after this many headers.", min=1),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between polls.", min=0.05)
    ] = 1.0,
    *,
    remote: Remote,
) -> None:
    """Print each new header as it is verified, until Ctrl-C (JSON lines with --json)."""
    import sys

    st = state()
    seen = 0
    with _client(st, remote) as client:
        for verified in client.follow(interval):
            doc = verified.result()
            if st.json:
                sys.stdout.write(doc.model_dump_json() + "\n")
                sys.stdout.flush()
            else:
                st.output.out.print(_header_line(doc))
            seen += 1
            if count is not None and seen >= count:
                break
