"""The machinery every SAP shares: an ABI of methods and events, gas, storage, calls.

A SAP is a precompile: py-evm hands it the computation of a call to its address and it
writes the output. A :class:`SAP` dispatches on the 4-byte selector like a contract, so
transactions, ``eth_call`` and other contracts call it through an ordinary ABI
(:meth:`SAP.abi`). A method that fails raises :class:`SAPRevert`; the caller sees a
revert with ``Error(string)``, as from a Vyper ``assert``, and every change the call made
is rolled back.

Gas follows the EVM's own prices for the work a SAP does, so a SAP costs what the same
contract would: :data:`G_CALL` per call, :data:`G_WORD` per 32 bytes of call data,
``SSTORE``'s and ``SLOAD``'s prices per storage word, ``LOG``'s per event, and the gas
its calls into contracts use. The schedule is in ``docs/compute.md``.

State lives in the SAP's own account storage, under keys derived from names
(:func:`slot`), so two SAPs never collide and a field is found without a layout table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError, EncodingError

from sahara_cli.identity.keys import keccak256

__all__ = [
    "G_CALL",
    "G_LOG",
    "G_LOG_BYTE",
    "G_LOG_TOPIC",
    "G_SLOAD",
    "G_SSTORE_RESET",
    "G_SSTORE_SET",
    "G_WORD",
    "SAP",
    "Call",
    "Event",
    "Method",
    "SAPRevert",
    "slot",
]

#: Every call: the dispatch and argument decoding (a contract's function prologue).
G_CALL = 2_600
#: Per 32-byte word of call data decoded.
G_WORD = 3
#: Reading one storage word (a cold SLOAD).
G_SLOAD = 2_100
#: Writing a storage word that was zero (SSTORE set, cold).
G_SSTORE_SET = 22_100
#: Writing a storage word that was not zero, or clearing one (SSTORE reset, cold).
G_SSTORE_RESET = 5_000
#: An event: LOG's base price, per topic and per byte of data.
G_LOG = 375
G_LOG_TOPIC = 375
G_LOG_BYTE = 8

ERROR_SELECTOR = keccak256(b"Error(string)")[:4]


class SAPRevert(Exception):
    """A SAP call fails with this reason; its state changes are rolled back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def slot(*parts: str | int | bytes) -> int:
    """The storage key of a named field: keccak256 of its parts, ABI-encoded."""
    types = [
        "string" if isinstance(p, str) else "bytes" if isinstance(p, bytes) else "uint256"
        for p in parts
    ]
    return int.from_bytes(keccak256(encode(types, list(parts))), "big")


def _signature(name: str, types: Sequence[str]) -> str:
    return f"{name}({','.join(types)})"


def _abi_param(name: str, typ: str, *, indexed: bool | None = None) -> dict[str, Any]:
    """An ABI entry for one parameter; a ``(a:T,b:U)`` tuple type gets components."""
    entry: dict[str, Any] = {"name": name}
    if typ.startswith("(") and typ.endswith(")"):
        components = []
        for part in _split(typ[1:-1]):
            part_name, part_type = part.split(":", 1)
            components.append(_abi_param(part_name, part_type))
        entry.update(type="tuple", components=components)
    else:
        entry["type"] = typ
    if indexed is not None:
        entry["indexed"] = indexed
    return entry


def _split(inner: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    if inner:
        parts.append(inner[start:])
    return parts


def _canonical(typ: str) -> str:
    """``(a:uint256,b:string)`` -> ``(uint256,string)``, what eth-abi and selectors use."""
    if typ.startswith("(") and typ.endswith(")"):
        return "(" + ",".join(_canonical(p.split(":", 1)[1]) for p in _split(typ[1:-1])) + ")"
    return typ


@dataclass(frozen=True)
class Method:
    """One ABI function of a SAP. Types are ABI type strings; a tuple is written
    ``(name:type,...)`` so that its components keep their names in the ABI."""

    name: str
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]
    handler: Callable[..., tuple[Any, ...]]
    mutability: str = "nonpayable"  # "view", "nonpayable" or "payable"

    @property
    def input_types(self) -> list[str]:
        return [_canonical(t) for _, t in self.inputs]

    @property
    def output_types(self) -> list[str]:
        return [_canonical(t) for _, t in self.outputs]

    @property
    def selector(self) -> bytes:
        return keccak256(_signature(self.name, self.input_types).encode())[:4]

    def abi(self) -> dict[str, Any]:
        return {
            "type": "function",
            "name": self.name,
            "stateMutability": self.mutability,
            "inputs": [_abi_param(n, t) for n, t in self.inputs],
            "outputs": [_abi_param(n, t) for n, t in self.outputs],
        }


@dataclass(frozen=True)
class Event:
    """One event of a SAP: ``(name, type, indexed)`` per field."""

    name: str
    fields: tuple[tuple[str, str, bool], ...]

    @property
    def topic(self) -> int:
        sig = _signature(self.name, [_canonical(t) for _, t, _ in self.fields])
        return int.from_bytes(keccak256(sig.encode()), "big")

    def abi(self) -> dict[str, Any]:
        return {
            "type": "event",
            "name": self.name,
            "anonymous": False,
            "inputs": [_abi_param(n, t, indexed=i) for n, t, i in self.fields],
        }


@dataclass
class Call:
    """One call of a SAP: who called, with what value, and metered access to state."""

    computation: Any
    address: bytes
    reads: set[int] = field(default_factory=set)

    @property
    def state(self) -> Any:
        return self.computation.state

    @property
    def sender(self) -> bytes:
        return bytes(self.computation.msg.sender)

    @property
    def value(self) -> int:
        return int(self.computation.msg.value)

    @property
    def timestamp(self) -> int:
        return int(self.state.timestamp)

    def charge(self, gas: int, reason: str) -> None:
        self.computation.consume_gas(gas, reason=reason)

    def read(self, key: int) -> int:
        self.charge(G_SLOAD if key not in self.reads else 100, "SAP storage read")
        self.reads.add(key)
        return int(self.state.get_storage(self.address, key))

    def write(self, key: int, value: int) -> None:
        was = int(self.state.get_storage(self.address, key))
        if was == value:
            self.charge(100, "SAP storage write")
        else:
            self.charge(G_SSTORE_SET if was == 0 else G_SSTORE_RESET, "SAP storage write")
        self.reads.add(key)
        if self.state.get_nonce(self.address) == 0:
            # An account with storage but no nonce, code or balance counts as empty and
            # would be swept at the end of the transaction (EIP-161).
            self.state.set_nonce(self.address, 1)
        self.state.set_storage(self.address, key, value)

    def read_bytes(self, key: int) -> bytes:
        length = self.read(key)
        base = int.from_bytes(keccak256(key.to_bytes(32, "big")), "big")
        words = [self.read(base + i).to_bytes(32, "big") for i in range((length + 31) // 32)]
        return b"".join(words)[:length]

    def write_bytes(self, key: int, data: bytes) -> None:
        self.write(key, len(data))
        base = int.from_bytes(keccak256(key.to_bytes(32, "big")), "big")
        for i in range(0, len(data), 32):
            self.write(base + i // 32, int.from_bytes(data[i : i + 32].ljust(32, b"\0"), "big"))

    def emit(self, event: Event, **values: Any) -> None:
        topics = [event.topic]
        data_types, data_values = [], []
        for name, typ, indexed in event.fields:
            if indexed:
                topics.append(int.from_bytes(encode([typ], [values[name]]), "big"))
            else:
                data_types.append(_canonical(typ))
                data_values.append(values[name])
        data = encode(data_types, data_values)
        self.charge(G_LOG + G_LOG_TOPIC * len(topics) + G_LOG_BYTE * len(data), "SAP event")
        self.computation.add_log_entry(self.address, tuple(topics), data)

    def call(self, to: bytes, data: bytes, *, value: int = 0, static: bool = False) -> bytes:
        """Call a contract as the SAP; its revert reason becomes this call's."""
        computation = self.computation
        available = computation.get_gas_remaining()
        gas = available - available // 64  # EIP-150: all but one 64th
        computation.consume_gas(gas, reason="SAP call into a contract")
        message = computation.prepare_child_message(
            gas=gas,
            to=to,
            value=value,
            data=data,
            code=self.state.get_code(to),
            code_address=to,
            should_transfer_value=value > 0,
            is_static=static or computation.msg.is_static,
        )
        child = computation.apply_child_computation(message)
        computation.return_gas(child.get_gas_remaining())
        if child.is_error:
            raise SAPRevert(revert_reason(child.output) or "call into a protocol contract failed")
        return bytes(child.output)

    def view(
        self,
        to: bytes,
        name: str,
        types: Sequence[str],
        args: Sequence[Any],
        returns: Sequence[str],
    ) -> tuple[Any, ...]:
        """A static call of ``name(types)`` on a contract, decoded."""
        selector = keccak256(_signature(name, types).encode())[:4]
        out = self.call(to, selector + encode(list(types), list(args)), static=True)
        return tuple(decode(list(returns), out))

    def send(
        self,
        to: bytes,
        name: str,
        types: Sequence[str],
        args: Sequence[Any],
        returns: Sequence[str],
        *,
        value: int = 0,
    ) -> tuple[Any, ...]:
        """A state-changing call of ``name(types)`` on a contract, decoded."""
        selector = keccak256(_signature(name, types).encode())[:4]
        out = self.call(to, selector + encode(list(types), list(args)), value=value)
        return tuple(decode(list(returns), out)) if returns else ()

    def pay(self, to: bytes, amount: int) -> None:
        """Move ``amount`` wei from the SAP's balance (bonds it holds) to ``to``."""
        if amount:
            self.state.delta_balance(self.address, -amount)
            self.state.delta_balance(to, amount)


def revert_reason(output: bytes) -> str | None:
    """The message of an ``Error(string)`` revert, if that is what ``output`` holds."""
    if output[:4] != ERROR_SELECTOR:
        return None
    try:
        (reason,) = decode(["string"], output[4:])
    except (DecodingError, ValueError):
        return None
    return str(reason)


class SAP:
    """A precompile with an ABI: subclasses list their :attr:`methods` and :attr:`events`."""

    name: str = ""
    address: bytes = b""
    methods: tuple[Method, ...] = ()
    events: tuple[Event, ...] = ()

    def __init__(self) -> None:
        self._by_selector = {m.selector: m for m in self.methods}

    @classmethod
    def abi(cls) -> list[dict[str, Any]]:
        return [m.abi() for m in cls.methods] + [e.abi() for e in cls.events]

    def __call__(self, computation: Any) -> Any:
        from eth.exceptions import Revert

        call = Call(computation, self.address)
        try:
            self._dispatch(call)
        except SAPRevert as exc:
            computation.output = ERROR_SELECTOR + encode(["string"], [exc.reason])
            raise Revert(computation.output) from None
        return computation

    def _dispatch(self, call: Call) -> None:
        data = bytes(call.computation.msg.data)
        call.charge(G_CALL + G_WORD * ((len(data) + 31) // 32), "SAP call")
        method = self._by_selector.get(data[:4])
        if method is None:
            raise SAPRevert(f"{self.name}: no such method")
        if call.value and method.mutability != "payable":
            raise SAPRevert(f"{self.name}.{method.name} takes no value")
        if call.computation.msg.is_static and method.mutability != "view":
            raise SAPRevert(f"{self.name}.{method.name} changes state: not in a static call")
        try:
            args = decode(method.input_types, data[4:])
        except (DecodingError, ValueError, EncodingError) as exc:
            raise SAPRevert(f"{self.name}.{method.name}: malformed arguments ({exc})") from None
        result = method.handler(self, call, *args)
        call.computation.output = encode(method.output_types, list(result))
