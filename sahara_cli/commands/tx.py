"""sahara tx and sahara balance: move SAH and look at transactions."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import IdOption, PasswordFileOption
from sahara_cli.commands._state import AppState, state
from sahara_cli.errors import UsageError

app = typer.Typer(help="Send and inspect transactions.", no_args_is_help=True)
_RESULTS = "sahara_cli.node.wallet"


def _client(st: AppState) -> Any:
    from sahara_cli.node.process import require_reachable

    cfg = st.config().config.node
    return require_reachable(cfg.rpc_url, cfg.timeout)


def _table(rows: dict[str, Any], title: str | None = None) -> Any:
    def render(console: Console) -> None:
        table = Table(show_header=False, box=None, title=title, title_justify="left")
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for key, value in rows.items():
            if value is not None:
                table.add_row(key, str(value))
        console.print(table)

    return render


@app.command("send")
@returns(f"{_RESULTS}:Transfer")
def send(
    to: Annotated[
        str,
        typer.Option("--to", help="Recipient: an address or a Sahara ID name.", show_default=False),
    ],
    value: Annotated[str, typer.Option("--value", help="Amount in SAH, e.g. 1.5.")] = "0",
    data: Annotated[
        str | None, typer.Option("--data", help="Call data (hex).", show_default=False)
    ] = None,
    gas: Annotated[
        int | None,
        typer.Option("--gas", help="Gas limit (default: estimated).", show_default=False),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the receipt.")] = True,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Sign a transaction with a Sahara ID (EIP-1559) and send it to the node."""
    from sahara_cli.commands._protocol import address_of
    from sahara_cli.node import wallet
    from sahara_cli.node.client import parse_sah

    st = state()
    to = address_of(st, to, "--to")  # EIP-55 checked: a typo never receives the payment
    amount = parse_sah(value)
    try:
        payload = bytes.fromhex((data or "").removeprefix("0x"))
    except ValueError:
        raise UsageError("--data is not hex") from None
    client = _client(st)
    signer, _, _ = st.unlock(signer_name, password_file)
    with st.output.status("Signing and sending") as progress:
        sent = wallet.send(
            client, signer, to, amount, data=payload, gas=gas, wait=wait, progress=progress
        )
    rows: dict[str, Any] = {
        "hash": sent.hash,
        "from": sent.sender,
        "to": sent.to,
        "value_sah": sent.value_sah,
        "nonce": sent.nonce,
        "gas": sent.gas,
    }
    if sent.tx is not None:
        rows |= {
            "status": 1 if sent.tx.status == "success" else 0,
            "block": sent.tx.block,
            "gas_used": sent.tx.gas_used,
            "fee_sah": sent.tx.fee_sah,
        }
    st.output.result(sent, _table(rows, "transaction"))
    wallet.require_success(sent)


@app.command("show")
@returns(f"{_RESULTS}:TransactionDetails")
def show(
    tx_hash: Annotated[str, typer.Argument(help="Transaction hash (0x...).", show_default=False)],
) -> None:
    """Show a transaction and its receipt."""
    from sahara_cli.node.wallet import parse_hash, show_transaction

    parse_hash(tx_hash)  # a bad hash fails before the node is asked
    st = state()
    tx = show_transaction(_client(st), tx_hash)
    rows: dict[str, Any] = {
        "hash": tx.hash,
        "from": tx.sender,
        "to": tx.to or "(contract creation)",
        "value": f"{tx.value_sah} SAH",
        "nonce": tx.nonce,
        "block": tx.block,
        "status": tx.status,
    }
    if tx.status != "pending":
        rows |= {
            "gas used": tx.gas_used,
            "fee": f"{tx.fee_sah} SAH",
            "logs": tx.logs,
            "contract": tx.contract_address,
        }
    st.output.result(tx, _table(rows, "transaction"))


@returns(f"{_RESULTS}:Balance")
def balance(
    address: Annotated[
        str | None,
        typer.Argument(help="Address or ID name (default: the default ID).", show_default=False),
    ] = None,
    block: Annotated[str, typer.Option("--block", help="Block number or tag.")] = "latest",
) -> None:
    """Show the SAH balance of an address or Sahara ID."""
    from sahara_cli.commands._protocol import address_of
    from sahara_cli.node import wallet

    st = state()
    target = address_of(st, address, "ADDRESS")
    wallet.block_tag(block)  # a bad --block fails before the node is asked
    held = wallet.balance(_client(st), target, block)
    st.output.result(held, lambda c: c.print(f"{held.balance_sah} SAH  [dim]{target}[/]"))
