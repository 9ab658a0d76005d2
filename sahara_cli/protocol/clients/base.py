"""A deployed contract, and the base of the per-contract clients.

:class:`Contract` is one contract's ABI at its address on one node: ``call`` reads with
``eth_call`` (a revert becomes the :class:`SaharaError` it stands for) and ``decode_log``
decodes the logs this very address emitted. :class:`ContractClient` adds writes through a
shared :class:`~sahara_cli.protocol.sender.Sender` and a check that the contract is
deployed before the first read or write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from sahara_cli.errors import NodeRPCError, ProtocolNotDeployed
from sahara_cli.node.client import NodeClient
from sahara_cli.protocol import artifacts
from sahara_cli.protocol.abi import ContractABI
from sahara_cli.protocol.sender import Sender, translate_rpc_error
from sahara_cli.protocol.values import Event, TxResult

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer


class Contract(ContractABI):
    """One deployed contract: encode calls, read with eth_call, decode its events."""

    def __init__(self, node: NodeClient, name: str, address: str | None = None) -> None:
        super().__init__(name)
        self.node = node
        self.address = address or artifacts.addresses()[name]

    def call(self, function: str, *args: Any, sender: str | None = None) -> Any:
        """``function(*args)`` answered by the node's latest state."""
        return self.call_encoded(function, self.encode(function, *args), sender=sender)

    def call_encoded(self, function: str, data: bytes, *, sender: str | None = None) -> Any:
        """:meth:`call` with the call data encoded already."""
        request: dict[str, Any] = {"to": self.address, "data": "0x" + data.hex()}
        if sender:
            request["from"] = sender
        try:
            result = self.node.call("eth_call", request, "latest")
        except NodeRPCError as exc:
            raise translate_rpc_error(exc, f"{self.name}.{function}") from None
        return self.decode_output(function, bytes.fromhex(result[2:]))

    def decode_log(self, log: dict[str, Any]) -> Event | None:
        """The event of a log this contract's address emitted; None for any other log."""
        if str(log.get("address", "")).lower() != self.address.lower():
            return None
        return self.decode_event(log)

    def is_deployed(self) -> bool:
        """Whether the node has code at this contract's address."""
        return self.node.call("eth_getCode", self.address, "latest") not in ("0x", "", None)

    def logs(self, event: str, *topics: str | None) -> list[Event]:
        """Every ``event`` this contract emitted, oldest first, filtered by indexed topics
        (``None`` matches anything)."""
        raw = self.node.call(
            "eth_getLogs",
            {
                "address": self.address,
                "fromBlock": "0x0",
                "toBlock": "latest",
                "topics": [self.topic(event), *topics],
            },
        )
        return [e for e in (self.decode_log(entry) for entry in raw) if e is not None]


def address_topic(address: str) -> str:
    """An address as a 32-byte indexed topic, for an ``eth_getLogs`` filter."""
    return "0x" + bytes.fromhex(address[2:].lower()).rjust(32, b"\0").hex()


class ContractClient(Contract):
    """A :class:`Contract` with typed reads and writes; subclasses name the contract.

    ``sender`` signs and sends the writes (the facade shares one between its clients, so
    every receipt's events are decoded whichever contract emitted them); ``ready`` raises
    :class:`ProtocolNotDeployed` when the chain lacks the contracts (by default, this one).
    """

    CONTRACT: ClassVar[str]

    def __init__(
        self,
        node: NodeClient,
        *,
        sender: Sender | None = None,
        ready: Callable[[], None] | None = None,
        address: str | None = None,
    ) -> None:
        super().__init__(node, self.CONTRACT, address)
        self.sender = sender if sender is not None else Sender(node, [self])
        self._ready = ready
        self._checked = False

    def ensure_deployed(self) -> None:
        """Raise :class:`ProtocolNotDeployed` when the chain has no such contract."""
        if self._ready is not None:
            self._ready()
            return
        if self._checked:
            return
        if not self.is_deployed():
            raise ProtocolNotDeployed(f"no {self.name} contract at {self.address} on this chain")
        self._checked = True

    def read(self, function: str, *args: Any) -> Any:
        """``function(*args)`` by eth_call; bad arguments fail before the node is asked."""
        data = self.encode(function, *args)
        self.ensure_deployed()
        return self.call_encoded(function, data)

    def write(
        self, signer: Signer, function: str, *args: Any, value: int = 0, gas: int | None = None
    ) -> TxResult:
        """Send ``function(*args)`` signed by ``signer``, with ``value`` wei attached
        (``gas``: this limit instead of the node's estimate)."""
        data = self.encode(function, *args)  # bad arguments fail before the node is asked
        self.ensure_deployed()
        return self.sender.send(
            signer, self.address, data, value=value, gas=gas, action=f"{self.name}.{function}"
        )
