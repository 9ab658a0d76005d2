"""A wallet's everyday operations over JSON-RPC: a balance, a transfer, a transaction.

``send`` signs an EIP-1559 transaction with a Sahara ID (fees from the node's base fee
and tip, gas estimated unless given), sends it, and waits for its receipt;
``show_transaction`` reads one transaction and its receipt. Results are typed models with
exact wei, checksummed addresses and a :class:`~sahara_cli.results.Transaction` for a
mined transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from sahara_cli.errors import (
    InsufficientFunds,
    NodeRPCError,
    NotDevChain,
    NotFoundError,
    TxReverted,
    UsageError,
)
from sahara_cli.results import Address, Hash32, Result, Sah, Transaction, Wei

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.client import NodeClient

Progress = Callable[[str], None]
BLOCK_TAGS = ("latest", "pending", "earliest", "safe", "finalized")


class Balance(Result):
    """``balance``: the SAH an address holds at a block."""

    address: Address
    balance_wei: Wei
    balance_sah: Sah = ""
    block: str = Field(description="the block asked for: a tag (latest) or a number")


#: A transaction's ``from`` keeps its Ethereum name in JSON (``sender`` in Python).
_BY_ALIAS = ConfigDict(serialize_by_alias=True, validate_by_name=True)


class Transfer(Result):
    """``tx send``: what was signed and sent, and (when waited for) its outcome."""

    model_config = _BY_ALIAS

    hash: Hash32
    sender: Address = Field(alias="from")
    to: Address
    value_wei: Wei
    value_sah: Sah = ""
    nonce: int
    gas: int = Field(description="gas limit")
    chain_id: int
    tx: Transaction | None = Field(description="the mined transaction; null with --no-wait")


class Funding(Result):
    """``node fund``: SAH sent to an address from a dev account of a dev chain."""

    to: Address
    amount_wei: Wei
    amount_sah: Sah = ""
    funder: Address = Field(description="the dev account that paid")
    balance_wei: Wei = Field(description="what the funded address holds afterwards")
    balance_sah: Sah = ""
    tx: Transaction


class TransactionDetails(Result):
    """``tx show``: a transaction and, once mined, its receipt."""

    model_config = _BY_ALIAS

    hash: Hash32
    sender: Address = Field(alias="from")
    to: Address | None = Field(description="null for a contract creation")
    value_wei: Wei
    value_sah: Sah = ""
    nonce: int
    gas: int = Field(description="gas limit")
    input: str = Field(description="call data as 0x-hex")
    block: int | None = Field(description="null while pending")
    status: Literal["pending", "success", "reverted"]
    gas_used: int | None = None
    fee_wei: Wei | None = None
    fee_sah: Sah | None = None
    logs: int | None = Field(default=None, description="number of logs emitted")
    contract_address: Address | None = Field(
        default=None, description="the contract a creation made"
    )


def block_tag(text: str) -> str:
    """``latest`` (or another tag) as is; a block number (``12``, ``0xc``) as hex."""
    if text in BLOCK_TAGS:
        return text
    try:
        number = int(text, 0)
    except ValueError:
        raise UsageError(
            f"--block {text!r} is not a block number or tag",
            hint=f"Give a number or one of: {', '.join(BLOCK_TAGS)}.",
        ) from None
    if number < 0:
        raise UsageError(f"--block must not be negative, got {text}")
    return hex(number)


def balance(client: NodeClient, address: str, block: str = "latest") -> Balance:
    """The wei ``address`` holds at ``block`` (a tag or a number)."""
    wei = client.balance(address, block_tag(block))
    return Balance(address=address, balance_wei=wei, block=block)


def mined(receipt: dict[str, Any]) -> Transaction:
    """The :class:`Transaction` of a JSON-RPC receipt."""
    gas_used = int(receipt["gasUsed"], 16)
    return Transaction(
        hash=receipt["transactionHash"],
        block=int(receipt["blockNumber"], 16),
        status="success" if int(receipt["status"], 16) == 1 else "reverted",
        gas_used=gas_used,
        fee_wei=gas_used * int(receipt["effectiveGasPrice"], 16),
    )


def send(
    client: NodeClient,
    signer: Signer,
    to: str,
    value: int = 0,
    *,
    data: bytes = b"",
    gas: int | None = None,
    wait: bool = True,
    progress: Progress | None = None,
) -> Transfer:
    """Sign and send ``value`` wei (and ``data``) to ``to``; with ``wait``, until mined.

    A reverted transaction is returned with ``tx.status == "reverted"`` (its fee is spent);
    :func:`require_success` turns it into :class:`TxReverted`.
    """
    from eth_account import Account

    from sahara_cli.identity.keys import parse_address

    to = parse_address(to, "--to")  # EIP-55 checked: a typo never receives the payment
    chain_id = client.chain_id()
    nonce = client.nonce(signer.address)
    tip = client.max_priority_fee()
    max_fee = 2 * client.base_fee() + tip
    held = client.balance(signer.address)
    if value > held:
        raise _short(signer.address, held, value, 0)
    call = {"from": signer.address, "to": to, "value": hex(value), "data": "0x" + data.hex()}
    try:
        gas_limit = gas or client.estimate_gas(call)
    except NodeRPCError as exc:
        raise _funds_error(exc, signer.address, held, value, 0) from exc
    if value + gas_limit * max_fee > held:
        raise _short(signer.address, held, value, gas_limit * max_fee)
    signed = Account.sign_transaction(
        {
            "type": 2,
            "chainId": chain_id,
            "nonce": nonce,
            "to": to,
            "value": value,
            "data": data,
            "gas": gas_limit,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
        },
        signer.private_key,
    )
    try:
        tx_hash = client.send_raw(bytes(signed.raw_transaction))
    except NodeRPCError as exc:  # the pool counts this sender's pending transactions too
        raise _funds_error(exc, signer.address, held, value, gas_limit * max_fee) from exc
    receipt = None
    if wait:
        if progress is not None:
            progress(f"Waiting for {tx_hash}")
        receipt = client.wait_for_receipt(tx_hash)
    return Transfer.model_validate(
        {
            "hash": tx_hash,
            "from": signer.address,
            "to": to,
            "value_wei": value,
            "nonce": nonce,
            "gas": gas_limit,
            "chain_id": chain_id,
            "tx": mined(receipt) if receipt is not None else None,
        }
    )


def fund(client: NodeClient, to: str, amount: int, *, progress: Progress | None = None) -> Funding:
    """Send ``amount`` wei to ``to`` from a dev account, on a dev chain only.

    The dev accounts' keys are public (the test mnemonic), so a chain that is not a dev
    chain (``sahara_nodeInfo`` says ``dev: false``, or the node is not a sahara node) is
    refused with :class:`NotDevChain` before anything is signed. The first dev account
    that can pay the amount and the fee pays; the transfer is waited for.
    """
    from sahara_cli.identity.keys import Signer, parse_address
    from sahara_cli.node.genesis import dev_keys
    from sahara_cli.units import format_sah

    to = parse_address(to, "ADDRESS")
    if amount <= 0:
        raise UsageError("AMOUNT must be more than 0 SAH")
    try:
        info = client.call("sahara_nodeInfo")
    except NodeRPCError:  # not a sahara node: certainly not one of our dev chains
        info = None
    where = client.url or "the node"
    if not isinstance(info, dict) or info.get("dev") is not True:
        raise NotDevChain(
            f"{where} does not run a dev chain: 'node fund' pays from the public dev "
            "accounts, which only a dev chain funds"
        )
    fee = 21_000 * (2 * client.base_fee() + client.max_priority_fee())
    for key in dev_keys():
        payer = Signer(key)
        if client.balance(payer.address) >= amount + fee:
            break
    else:
        raise InsufficientFunds(
            f"no dev account holds {format_sah(amount)} SAH and the fee",
            hint="Fund a smaller amount, or several times.",
        )
    sent = send(client, payer, to, amount, progress=progress)
    require_success(sent)
    assert sent.tx is not None  # waited for
    return Funding(
        to=to,
        amount_wei=amount,
        funder=payer.address,
        balance_wei=client.balance(to),
        tx=sent.tx,
    )


def _short(sender: str, held: int, value: int, max_fee: int) -> InsufficientFunds:
    """``node.insufficient_funds``, with what the sender holds and what it would need."""
    from sahara_cli.units import format_sah

    fees = f" and up to {format_sah(max_fee)} SAH of fees" if max_fee else ""
    return InsufficientFunds(
        f"{sender} holds {format_sah(held)} SAH: too little to send {format_sah(value)} SAH{fees}",
        hint=(
            "Fund it first ('sahara tx send --to ADDRESS|ID --value SAH' from another ID, or "
            "'sahara node fund ADDRESS|ID SAH' on a dev chain), or send less."
        ),
        details={"address": sender, "balance_wei": str(held), "needed_wei": str(value + max_fee)},
    )


def _funds_error(
    exc: NodeRPCError, sender: str, held: int, value: int, max_fee: int
) -> NodeRPCError | InsufficientFunds:
    """The node's "insufficient funds" refusal as ``node.insufficient_funds``; others as is."""
    if "insufficient funds" in exc.message:
        return _short(sender, held, value, max_fee)
    return exc


def require_success(sent: Transfer) -> None:
    """Raise :class:`TxReverted` when the transfer was mined and reverted."""
    if sent.tx is not None and sent.tx.status == "reverted":
        raise TxReverted(f"transaction {sent.hash} reverted in block {sent.tx.block}")


def parse_hash(text: str) -> str:
    """A 32-byte 0x-hex transaction hash, or :class:`UsageError`."""
    raw = text.strip()
    try:
        ok = raw.startswith("0x") and len(bytes.fromhex(raw[2:])) == 32
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(f"{text!r} is not a 32-byte 0x-prefixed hash")
    return raw.lower()


def show_transaction(client: NodeClient, tx_hash: str) -> TransactionDetails:
    """A transaction and its receipt (``pending`` while it has none)."""
    tx_hash = parse_hash(tx_hash)
    tx = client.transaction(tx_hash)
    if tx is None:
        raise NotFoundError(f"no transaction {tx_hash} on this node", code="node.tx_not_found")
    receipt = client.receipt(tx_hash)
    doc: dict[str, Any] = {
        "hash": tx["hash"],
        "from": tx["from"],
        "to": tx.get("to") or None,
        "value_wei": int(tx["value"], 16),
        "nonce": int(tx["nonce"], 16),
        "gas": int(tx["gas"], 16),
        "input": tx.get("input") or tx.get("data") or "0x",
        "block": int(tx["blockNumber"], 16) if tx.get("blockNumber") else None,
        "status": "pending",
    }
    if receipt:
        outcome = mined(receipt)
        doc |= {
            "status": outcome.status,
            "gas_used": outcome.gas_used,
            "fee_wei": outcome.fee_wei,
            "logs": len(receipt.get("logs") or []),
            "contract_address": receipt.get("contractAddress") or None,
        }
    return TransactionDetails.model_validate(doc)
