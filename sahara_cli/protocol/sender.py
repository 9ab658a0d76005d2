"""The transaction sender: nonce, gas, EIP-1559 signing, sending, receipts, reverts.

:class:`Sender` turns call data into a mined transaction signed by a Sahara ID: it checks
the balance, asks ``eth_estimateGas`` (which turns a revert into a :class:`SaharaError`
before anything is spent), adds headroom, prices the gas from the base fee and the tip,
signs with the pending nonce, sends, waits for the receipt and decodes its events.

Revert translation lives here too: a contract's ``Error(string)`` reason becomes the
:class:`SaharaError` it stands for (``unknown asset`` is ``protocol.asset_not_found``...),
for writes and for the ``eth_call`` reads of the clients alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sahara_cli.errors import (
    AssetNotFound,
    LicenseNotFound,
    NodeRPCError,
    NotPermitted,
    OfferClosed,
    OfferNotFound,
    ProtocolInsufficientFunds,
    ProtocolInvalidArgument,
    ProtocolReverted,
    ReceiptNotFound,
    RecordNotFound,
    SaharaError,
)
from sahara_cli.node.client import NodeClient
from sahara_cli.protocol.values import Event, TxResult
from sahara_cli.units import format_sah

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
#: Gas headroom over eth_estimateGas, as wallets add.
GAS_MARGIN = 1.2


class LogDecoder(Protocol):
    """What the sender needs of a contract to decode a receipt's logs."""

    def decode_log(self, log: dict[str, Any]) -> Event | None: ...


# -- reverts -------------------------------------------------------------------------


def revert_reason(data: Any) -> str | None:
    """The text of an ``Error(string)`` revert, or a description of a panic."""
    if not isinstance(data, str) or not data.startswith("0x"):
        return None
    try:
        raw = bytes.fromhex(data[2:])
    except ValueError:
        return None
    from eth_abi.abi import decode

    try:
        if raw[:4] == ERROR_SELECTOR:
            (text,) = decode(["string"], raw[4:])
            return str(text)
        if raw[:4] == PANIC_SELECTOR:
            (code,) = decode(["uint256"], raw[4:])
            return f"panic 0x{code:02x}"
    except Exception:  # eth_abi raises several types on malformed data
        return None
    return None


_REASON_ERRORS: list[tuple[str, type[SaharaError]]] = [
    ("unknown asset", AssetNotFound),
    ("unknown parent asset", AssetNotFound),
    ("unknown source asset", AssetNotFound),
    ("unknown record", RecordNotFound),
    ("unknown offer", OfferNotFound),
    ("unknown license", LicenseNotFound),
    ("unknown receipt", ReceiptNotFound),
    ("offer is paused", OfferClosed),
    ("offer has expired", OfferClosed),
    ("only ", NotPermitted),
    ("this partnership is offered to another", NotPermitted),
    ("non-transferable", NotPermitted),
    ("already", ProtocolReverted),
    ("not enough prepaid calls", ProtocolReverted),
    ("nothing to", ProtocolReverted),
    ("no unused calls", ProtocolReverted),
    ("the owner holds", ProtocolReverted),
]


def error_for_reason(reason: str, action: str) -> SaharaError:
    """The SaharaError a contract's revert reason stands for."""
    details = {"call": action, "reason": reason}
    for prefix, cls in _REASON_ERRORS:
        if reason.startswith(prefix) or prefix in reason:
            return cls(reason, details=details)
    if reason.startswith("panic"):
        return ProtocolReverted(f"the contract failed ({reason})", details=details)
    return ProtocolInvalidArgument(reason, details=details)


def translate_rpc_error(exc: NodeRPCError, action: str) -> SaharaError:
    """The SaharaError a node's error answer to ``action`` stands for."""
    reason = revert_reason(exc.data)
    if reason is not None:
        return error_for_reason(reason, action)
    if exc.rpc_code == 3 or "revert" in exc.message:
        return ProtocolReverted(f"{action}: the contract reverted without a reason")
    if "insufficient funds" in exc.message:
        return ProtocolInsufficientFunds(f"{action}: {exc.message}")
    return exc


# -- sending -------------------------------------------------------------------------


class Sender:
    """Estimate, check funds, sign (Sahara ID) and send; wait for the receipt."""

    def __init__(self, node: NodeClient, decoders: Sequence[LogDecoder] = ()) -> None:
        self.node = node
        self.decoders = list(decoders)
        self._chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.node.chain_id()
        return self._chain_id

    def send(
        self,
        signer: Signer,
        to: str,
        data: bytes,
        *,
        value: int = 0,
        gas: int | None = None,
        action: str = "transaction",
        timeout: float = 60.0,
    ) -> TxResult:
        from sahara_cli.identity.transactions import sign_eip1559

        request = {"from": signer.address, "to": to, "value": hex(value), "data": "0x" + data.hex()}
        balance = self.node.balance(signer.address, "pending")
        if value > balance:
            raise ProtocolInsufficientFunds(
                f"{action}: {signer.address} has {format_sah(balance)} SAH, "
                f"this needs {format_sah(value)} SAH plus gas"
            )
        if gas is None:
            try:
                estimate = int(self.node.call("eth_estimateGas", request), 16)
            except NodeRPCError as exc:
                raise translate_rpc_error(exc, action) from None
            gas = int(estimate * GAS_MARGIN) + 10_000
        tip = self.node.max_priority_fee()
        max_fee = 2 * self.node.base_fee() + tip
        if value + gas * max_fee > balance:
            raise ProtocolInsufficientFunds(
                f"{action}: {signer.address} has {format_sah(balance)} SAH, this needs "
                f"{format_sah(value + gas * max_fee)} SAH (value plus the most gas can cost)"
            )
        signed = sign_eip1559(
            signer.private_key,
            chain_id=self.chain_id,
            nonce=self.node.nonce(signer.address, "pending"),
            to=to,
            value=value,
            data=data,
            gas=gas,
            max_fee_per_gas=max_fee,
            max_priority_fee_per_gas=tip,
        )
        try:
            tx_hash = self.node.send_raw(signed.raw)
        except NodeRPCError as exc:
            raise translate_rpc_error(exc, action) from None
        receipt = self.node.wait_for_receipt(tx_hash, timeout=timeout)
        if int(receipt["status"], 16) != 1:
            raise ProtocolReverted(
                f"{action}: transaction {tx_hash} reverted in block "
                f"{int(receipt['blockNumber'], 16)}"
            )
        return TxResult(
            hash=tx_hash,
            block=int(receipt["blockNumber"], 16),
            gas_used=int(receipt["gasUsed"], 16),
            fee=int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16),
            events=self.decode_logs(receipt["logs"]),
        )

    def decode_logs(self, logs: Iterable[dict[str, Any]]) -> list[Event]:
        events = []
        for log in logs:
            for contract in self.decoders:
                event = contract.decode_log(log)
                if event is not None:
                    events.append(event)
                    break
        return events
