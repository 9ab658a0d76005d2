"""sahara light: follow a remote Sahara chain's verified headers and verify its state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from sahara_cli.commands._state import AppState, state
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from sahara_cli.node.light import LightClient, VerifiedAccount, VerifiedHeader

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
        show_default="$SAHARA_COMETBFT_BIN, else cometbft on PATH",
    ),
]
Block = Annotated[
    int | None,
    typer.Option("--block", help="EVM block number.", show_default="the newest verified", min=0),
]

DEFAULT_COMET_RPC = "http://127.0.0.1:26657"


@contextmanager
def _client(
    st: AppState,
    rpc: str | None,
    comet_rpc: str,
    witness: list[str] | None,
    trust_height: int | None,
    trust_hash: str | None,
    cometbft_bin: str | None,
) -> Iterator[LightClient]:
    from sahara_cli.node.light import LightClient

    eth = rpc or st.config().config.node.rpc_url
    client = LightClient(
        eth,
        comet_rpc,
        witnesses=witness or (),
        trust_height=trust_height,
        trust_hash=trust_hash,
        cometbft_bin=cometbft_bin,
    )
    with st.output.status("Verifying headers with CometBFT's light client"):
        client.start()
    try:
        yield client
    finally:
        client.close()


def _trust(client: LightClient) -> dict[str, Any]:
    assert client.trust is not None
    return client.trust.to_dict()


def _account_doc(client: LightClient, acct: VerifiedAccount) -> dict[str, Any]:
    from sahara_cli.node.client import format_sah

    return {
        "address": acct.address,
        "block": acct.block,
        "balance": str(acct.balance),
        "balance_sah": format_sah(acct.balance),
        "nonce": acct.nonce,
        "storage_hash": "0x" + acct.storage_hash.hex(),
        "code_hash": "0x" + acct.code_hash.hex(),
        "storage": {hex(k): hex(v) for k, v in acct.storage.items()},
        "state_root": "0x" + acct.state_root.hex(),
        "header": acct.header.to_dict(),
        "trusted": _trust(client),
        "verified": True,
    }


def _verified_line(doc: dict[str, Any]) -> str:
    head = doc["header"]
    return (
        f"[dim]verified: proof against state root {doc['state_root'][:18]}... of block "
        f"{doc['block']}, in CometBFT header {head['height']} ({head['hash'][:16]}...) "
        f"verified from trusted height {doc['trusted']['height']}[/]"
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
def balance(
    address: Annotated[str, typer.Argument(help="The account (0x and 40 hex digits).")],
    block: Block = None,
    rpc: Rpc = None,
    comet_rpc: CometRpc = DEFAULT_COMET_RPC,
    witness: Witness = None,
    trust_height: TrustHeight = None,
    trust_hash: TrustHash = None,
    cometbft_bin: CometbftBin = None,
) -> None:
    """The verified balance and nonce of ADDRESS: proven against a verified state root."""
    st = state()
    with _client(st, rpc, comet_rpc, witness, trust_height, trust_hash, cometbft_bin) as client:
        acct = client.account(address, (), block)
        doc = _account_doc(client, acct)

    def render(console: Console) -> None:
        console.print(
            f"{doc['balance_sah']} SAH  [dim]{doc['address']} at block {doc['block']}, "
            f"nonce {doc['nonce']}[/]"
        )
        console.print(_verified_line(doc))

    st.output.result(doc, render)


@app.command("storage")
def storage(
    address: Annotated[str, typer.Argument(help="The contract (0x and 40 hex digits).")],
    slots: Annotated[list[str], typer.Argument(help="Storage slots (decimal or 0x hex).")],
    block: Block = None,
    rpc: Rpc = None,
    comet_rpc: CometRpc = DEFAULT_COMET_RPC,
    witness: Witness = None,
    trust_height: TrustHeight = None,
    trust_hash: TrustHash = None,
    cometbft_bin: CometbftBin = None,
) -> None:
    """Verified storage slots of ADDRESS: each proven against a verified state root."""
    st = state()
    keys = [_slot(s) for s in slots]
    with _client(st, rpc, comet_rpc, witness, trust_height, trust_hash, cometbft_bin) as client:
        acct = client.account(address, keys, block)
        doc = _account_doc(client, acct)

    def render(console: Console) -> None:
        for key, value in doc["storage"].items():
            console.print(f"{key} = {value}")
        console.print(f"[dim]{doc['address']} at block {doc['block']}[/]")
        console.print(_verified_line(doc))

    st.output.result(doc, render)


def _header_line(head: VerifiedHeader) -> str:
    return (
        f"height {head.height}  {head.hash[:16]}...  state root of block {head.evm_block} "
        f"0x{head.app_hash.hex()[:16]}...  {head.time}"
    )


@app.command("head")
def head(
    rpc: Rpc = None,
    comet_rpc: CometRpc = DEFAULT_COMET_RPC,
    witness: Witness = None,
    trust_height: TrustHeight = None,
    trust_hash: TrustHash = None,
    cometbft_bin: CometbftBin = None,
) -> None:
    """The newest header, verified from the trusted one."""
    st = state()
    with _client(st, rpc, comet_rpc, witness, trust_height, trust_hash, cometbft_bin) as client:
        verified = client.header()
        doc = {**verified.to_dict(), "trusted": _trust(client), "verified": True}
    st.output.result(doc, lambda c: c.print(_header_line(verified)))


@app.command("follow")
def follow(
    count: Annotated[
        int | None,
        typer.Option("--count", help="Stop after this many headers.", min=1),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between polls.", min=0.05)
    ] = 1.0,
    rpc: Rpc = None,
    comet_rpc: CometRpc = DEFAULT_COMET_RPC,
    witness: Witness = None,
    trust_height: TrustHeight = None,
    trust_hash: TrustHash = None,
    cometbft_bin: CometbftBin = None,
) -> None:
    """Print each new header as it is verified, until Ctrl-C (JSON lines with --json)."""
    import json
    import sys

    st = state()
    seen = 0
    with _client(st, rpc, comet_rpc, witness, trust_height, trust_hash, cometbft_bin) as client:
        for verified in client.follow(interval):
            if st.json:
                sys.stdout.write(json.dumps({**verified.to_dict(), "verified": True}) + "\n")
                sys.stdout.flush()
            else:
                st.output.out.print(_header_line(verified))
            seen += 1
            if count is not None and seen >= count:
                break
