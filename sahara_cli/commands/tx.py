"""sahara tx and sahara balance: move SAH and look at transactions."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._protocol import IdOption, PasswordFileOption
from sahara_cli.commands._state import AppState, state
from sahara_cli.errors import NodeError, UsageError

app = typer.Typer(help="Send and inspect transactions.", no_args_is_help=True)


class TxReverted(NodeError):
    code = "node.tx_reverted"


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
            if value is not None and not isinstance(value, (list, dict)):
                table.add_row(key, str(value))
        console.print(table)

    return render


@app.command("send")
def send(
    to: Annotated[str, typer.Option("--to", help="Recipient address.", show_default=False)],
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
    from sahara_cli.identity.keys import parse_address
    from sahara_cli.node.client import format_sah, parse_sah

    to = parse_address(to, "--to")  # EIP-55 checked: a typo never receives the payment
    amount = parse_sah(value)
    try:
        payload = bytes.fromhex((data or "").removeprefix("0x"))
    except ValueError:
        raise UsageError("--data is not hex") from None
    st = state()
    client = _client(st)
    signer, _, _ = st.unlock(signer_name, password_file)
    with st.output.status("Signing and sending") as progress:
        chain_id = client.chain_id()
        nonce = client.nonce(signer.address)
        tip = client.max_priority_fee()
        max_fee = 2 * client.base_fee() + tip
        call = {
            "from": signer.address,
            "to": to,
            "value": hex(amount),
            "data": "0x" + payload.hex(),
        }
        gas_limit = gas or client.estimate_gas(call)
        from eth_account import Account

        signed = Account.sign_transaction(
            {
                "type": 2,
                "chainId": chain_id,
                "nonce": nonce,
                "to": to,
                "value": amount,
                "data": payload,
                "gas": gas_limit,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
            },
            signer.private_key,
        )
        tx_hash = client.send_raw(bytes(signed.raw_transaction))
        progress(f"Waiting for {tx_hash}")
        receipt = client.wait_for_receipt(tx_hash) if wait else None
    result: dict[str, Any] = {
        "hash": tx_hash,
        "from": signer.address,
        "to": to,
        "value": str(amount),
        "value_sah": format_sah(amount),
        "nonce": nonce,
        "gas": gas_limit,
        "receipt": receipt,
    }
    if receipt is not None:
        fee = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        result |= {
            "status": int(receipt["status"], 16),
            "block": int(receipt["blockNumber"], 16),
            "gas_used": int(receipt["gasUsed"], 16),
            "fee_sah": format_sah(fee),
        }
    st.output.result(
        result, _table({k: v for k, v in result.items() if k != "value"}, "transaction")
    )
    if receipt is not None and result["status"] == 0:
        raise TxReverted(f"transaction {tx_hash} reverted in block {result['block']}")


@app.command("show")
def show(
    tx_hash: Annotated[str, typer.Argument(help="Transaction hash (0x...).", show_default=False)],
) -> None:
    """Show a transaction and its receipt."""
    from sahara_cli.errors import NotFoundError

    if not (tx_hash.startswith("0x") and len(tx_hash) == 66):
        raise UsageError(f"{tx_hash!r} is not a 32-byte 0x-prefixed hash")
    st = state()
    client = _client(st)
    tx = client.transaction(tx_hash)
    if tx is None:
        raise NotFoundError(f"no transaction {tx_hash} on this node", code="node.tx_not_found")
    receipt = client.receipt(tx_hash)
    from sahara_cli.identity.keys import to_checksum_address
    from sahara_cli.node.client import format_sah

    rows: dict[str, Any] = {
        "hash": tx["hash"],
        "from": to_checksum_address(tx["from"]),
        "to": to_checksum_address(tx["to"]) if tx.get("to") else "(contract creation)",
        "value": f"{format_sah(int(tx['value'], 16))} SAH",
        "nonce": int(tx["nonce"], 16),
        "block": int(tx["blockNumber"], 16) if tx.get("blockNumber") else None,
    }
    if receipt:
        fee = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        rows |= {
            "status": "success" if receipt["status"] == "0x1" else "reverted",
            "gas used": int(receipt["gasUsed"], 16),
            "fee": f"{format_sah(fee)} SAH",
            "logs": len(receipt["logs"]),
            "contract": receipt.get("contractAddress"),
        }
    else:
        rows["status"] = "pending"
    st.output.result({"transaction": tx, "receipt": receipt}, _table(rows, "transaction"))


def balance(
    address: Annotated[
        str | None,
        typer.Argument(help="Address or ID name (default: the default ID).", show_default=False),
    ] = None,
    block: Annotated[str, typer.Option("--block", help="Block number or tag.")] = "latest",
) -> None:
    """Show the SAH balance of an address or Sahara ID."""
    from sahara_cli.commands._protocol import address_of
    from sahara_cli.node.client import format_sah

    st = state()
    target = address_of(st, address, "ADDRESS")
    tag = (
        block
        if block in ("latest", "pending", "earliest", "safe", "finalized")
        else hex(int(block, 0))
    )
    wei = _client(st).balance(target, tag)
    st.output.result(
        {"address": target, "wei": str(wei), "sah": format_sah(wei), "block": block},
        lambda c: c.print(f"{format_sah(wei)} SAH  [dim]{target}[/]"),
    )
