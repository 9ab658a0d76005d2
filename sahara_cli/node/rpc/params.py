"""Strict parsing of JSON-RPC parameters, with geth's wording.

Each parser takes the raw JSON value and returns a Python value or raises
:class:`~sahara_cli.node.rpc.errors.InvalidParams`. Handlers declare them through the
``Annotated`` aliases at the bottom (``address: Address``); the dispatcher applies them
and prefixes a failure with ``invalid argument N:`` as geth does.

Quantities are 0x-prefixed hex without leading zeros and at most 256 bits (64 for block
numbers, gas and nonces); data is 0x-prefixed hex of even length; addresses are 20
bytes and hashes 32.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from sahara_cli.node.rpc.errors import InvalidParams

T = TypeVar("T")

_HEX = re.compile(r"[0-9a-fA-F]*")
TAGS = ("latest", "earliest", "pending", "safe", "finalized")
MAX_TOPICS = 4


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _digits(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidParams(f"expected a 0x-prefixed hex string, got {_json_type(value)}")
    if not value.startswith(("0x", "0X")):
        raise InvalidParams("hex string without 0x prefix")
    digits = value[2:]
    if not _HEX.fullmatch(digits):
        raise InvalidParams("invalid hex string")
    return digits


def _quantity(value: Any, bits: int) -> int:
    digits = _digits(value)
    if not digits:
        raise InvalidParams('hex string "0x"')
    if len(digits) > 1 and digits[0] == "0":
        raise InvalidParams("hex number with leading zero digits")
    if len(digits) > bits // 4:
        raise InvalidParams(f"hex number > {bits} bits")
    return int(digits, 16)


def quantity(value: Any) -> int:
    """An unsigned 256-bit hex quantity (balances, values, fees)."""
    return _quantity(value, 256)


def uint64(value: Any) -> int:
    """A 64-bit hex quantity (block numbers, gas, nonces, counts)."""
    return _quantity(value, 64)


def data(value: Any) -> bytes:
    digits = _digits(value)
    if len(digits) % 2:
        raise InvalidParams("hex string of odd length")
    return bytes.fromhex(digits)


def _fixed(value: Any, size: int, kind: str) -> bytes:
    digits = _digits(value)
    if len(digits) != size * 2:
        raise InvalidParams(f"hex string has length {len(digits)}, want {size * 2} for {kind}")
    return bytes.fromhex(digits)


def address(value: Any) -> bytes:
    return _fixed(value, 20, "common.Address")


def hash32(value: Any) -> bytes:
    return _fixed(value, 32, "common.Hash")


def storage_key(value: Any) -> int:
    """A storage slot: hex of at most 32 bytes; leading zeros are fine (geth's rule)."""
    digits = _digits(value)
    if not digits or len(digits) > 64:
        raise InvalidParams("storage key must be hex of 1 to 64 digits")
    return int(digits, 16)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidParams(f"expected a boolean, got {_json_type(value)}")
    return value


def count(value: Any) -> int:
    """A count given as a hex quantity or a JSON integer (geth's HexOrDecimal64)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 2**64:
            raise InvalidParams("number out of range")
        return value
    return uint64(value)


def filter_id(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 66:
        raise InvalidParams("filter id must be a 0x-prefixed hex string")
    return value


def json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParams(f"expected an object, got {_json_type(value)}")
    return value


def optional(parse: Callable[[Any], T]) -> Callable[[Any], T | None]:
    def parse_optional(value: Any) -> T | None:
        return None if value is None else parse(value)

    return parse_optional


def _field(obj: dict[str, Any], name: str, parse: Callable[[Any], T]) -> T | None:
    value = obj.get(name)
    if value is None:
        return None
    try:
        return parse(value)
    except InvalidParams as exc:
        raise InvalidParams(f'field "{name}": {exc.message}') from None


# -- blocks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockRef:
    """A block named by tag, number or hash (EIP-1898)."""

    tag: str | None = None
    number: int | None = None
    hash: bytes | None = None
    require_canonical: bool = False


LATEST = BlockRef(tag="latest")


def block_number_or_tag(value: Any) -> BlockRef:
    if isinstance(value, str) and value in TAGS:
        return BlockRef(tag=value)
    if isinstance(value, str) and not value.startswith(("0x", "0X")):
        raise InvalidParams(
            f'invalid block tag "{value[:40]}": want latest, earliest, pending, safe, '
            "finalized or a hex block number"
        )
    return BlockRef(number=uint64(value))


def block_id(value: Any) -> BlockRef:
    """A block number, tag, hash, or EIP-1898 object ``{blockNumber}`` / ``{blockHash}``."""
    if isinstance(value, dict):
        unknown = set(value) - {"blockNumber", "blockHash", "requireCanonical"}
        if unknown:
            raise InvalidParams(f"unknown field {sorted(unknown)[0]!r} in block selector")
        number, block_hash = value.get("blockNumber"), value.get("blockHash")
        if (number is None) == (block_hash is None):
            raise InvalidParams("exactly one of blockNumber and blockHash must be given")
        if number is not None:
            return block_number_or_tag(number)
        canonical = _field(value, "requireCanonical", boolean) or False
        return BlockRef(hash=hash32(block_hash), require_canonical=canonical)
    if isinstance(value, str) and len(value) == 66:
        return BlockRef(hash=hash32(value))
    return block_number_or_tag(value)


# -- transaction call objects ------------------------------------------------------------


@dataclass
class CallArgs:
    """geth's TransactionArgs: what eth_call, eth_estimateGas and eth_sendTransaction take."""

    sender: bytes | None = None
    to: bytes | None = None
    gas: int | None = None
    gas_price: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    value: int = 0
    data: bytes = b""
    nonce: int | None = None
    chain_id: int | None = None
    access_list: list[tuple[bytes, list[int]]] = field(default_factory=list)
    tx_type: int | None = None

    @property
    def fee_given(self) -> bool:
        fees = (self.gas_price, self.max_fee_per_gas, self.max_priority_fee_per_gas)
        return any(fee for fee in fees)


def _access_list(value: Any) -> list[tuple[bytes, list[int]]]:
    if not isinstance(value, list):
        raise InvalidParams("access list must be an array")
    out = []
    for entry in value:
        item = json_object(entry)
        keys = item.get("storageKeys") or []
        if not isinstance(keys, list):
            raise InvalidParams("storageKeys must be an array")
        out.append((address(item.get("address")), [int.from_bytes(hash32(k)) for k in keys]))
    return out


def call_args(value: Any) -> CallArgs:
    obj = json_object(value)
    args = CallArgs(
        sender=_field(obj, "from", address),
        to=_field(obj, "to", address),
        gas=_field(obj, "gas", uint64),
        gas_price=_field(obj, "gasPrice", quantity),
        max_fee_per_gas=_field(obj, "maxFeePerGas", quantity),
        max_priority_fee_per_gas=_field(obj, "maxPriorityFeePerGas", quantity),
        value=_field(obj, "value", quantity) or 0,
        nonce=_field(obj, "nonce", uint64),
        chain_id=_field(obj, "chainId", quantity),
        access_list=_field(obj, "accessList", _access_list) or [],
        tx_type=_field(obj, "type", uint64),
    )
    data_field, input_field = _field(obj, "data", data), _field(obj, "input", data)
    if data_field is not None and input_field is not None and data_field != input_field:
        raise InvalidParams(
            'both "data" and "input" are set and not equal. Please use "input" to pass '
            "transaction call data"
        )
    args.data = input_field if input_field is not None else (data_field or b"")
    if args.gas_price is not None and (
        args.max_fee_per_gas is not None or args.max_priority_fee_per_gas is not None
    ):
        raise InvalidParams("both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified")
    if (
        args.max_fee_per_gas is not None
        and args.max_priority_fee_per_gas is not None
        and args.max_priority_fee_per_gas > args.max_fee_per_gas
    ):
        raise InvalidParams(
            "maxFeePerGas must be greater than or equal to maxPriorityFeePerGas: "
            f"maxFeePerGas {args.max_fee_per_gas}, "
            f"maxPriorityFeePerGas {args.max_priority_fee_per_gas}"
        )
    return args


@dataclass
class AccountOverride:
    balance: int | None = None
    nonce: int | None = None
    code: bytes | None = None
    state: dict[int, int] | None = None
    state_diff: dict[int, int] | None = None


def _storage_map(value: Any) -> dict[int, int]:
    obj = json_object(value)
    return {int.from_bytes(hash32(k)): int.from_bytes(hash32(v)) for k, v in obj.items()}


def state_overrides(value: Any) -> dict[bytes, AccountOverride]:
    """eth_call's third argument: ``{address: {balance, nonce, code, state, stateDiff}}``."""
    out: dict[bytes, AccountOverride] = {}
    for key, raw in json_object(value).items():
        account = address(key)
        obj = json_object(raw)
        unknown = set(obj) - {"balance", "nonce", "code", "state", "stateDiff"}
        if unknown:
            raise InvalidParams(f"account {key}: unsupported override {sorted(unknown)[0]!r}")
        override = AccountOverride(
            balance=_field(obj, "balance", quantity),
            nonce=_field(obj, "nonce", uint64),
            code=_field(obj, "code", data),
            state=_field(obj, "state", _storage_map),
            state_diff=_field(obj, "stateDiff", _storage_map),
        )
        if override.state is not None and override.state_diff is not None:
            raise InvalidParams(f"account {key} has both 'state' and 'stateDiff'")
        out[account] = override
    return out


# -- log filters -------------------------------------------------------------------------


@dataclass
class FilterCriteria:
    from_block: BlockRef = LATEST
    to_block: BlockRef = LATEST
    block_hash: bytes | None = None
    addresses: list[bytes] = field(default_factory=list)
    #: One entry per topic position: None matches anything, else any of the listed.
    topics: list[list[bytes] | None] = field(default_factory=list)


def _addresses(value: Any) -> list[bytes]:
    if isinstance(value, list):
        return [address(item) for item in value]
    return [address(value)]


def _topics(value: Any) -> list[list[bytes] | None]:
    if not isinstance(value, list):
        raise InvalidParams("topics must be an array")
    if len(value) > MAX_TOPICS:
        raise InvalidParams(f"too many topics: at most {MAX_TOPICS}")
    out: list[list[bytes] | None] = []
    for position in value:
        if position is None:
            out.append(None)
        elif isinstance(position, list):
            options = [hash32(topic) for topic in position if topic is not None]
            # A list holding null matches anything at this position, as in geth.
            out.append(None if len(options) < len(position) or not options else options)
        else:
            out.append([hash32(position)])
    return out


def filter_criteria(value: Any) -> FilterCriteria:
    obj = json_object(value)
    criteria = FilterCriteria(
        from_block=_field(obj, "fromBlock", block_number_or_tag) or LATEST,
        to_block=_field(obj, "toBlock", block_number_or_tag) or LATEST,
        block_hash=_field(obj, "blockHash", hash32),
        addresses=_field(obj, "address", _addresses) or [],
        topics=_field(obj, "topics", _topics) or [],
    )
    if criteria.block_hash is not None and (
        obj.get("fromBlock") is not None or obj.get("toBlock") is not None
    ):
        raise InvalidParams(
            "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
        )
    return criteria


def typed_data(value: Any) -> dict[str, Any]:
    """An EIP-712 document, as an object or a JSON string of one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidParams("typed data is not valid JSON") from None
    return json_object(value)


# -- the aliases handlers annotate their parameters with ---------------------------------

Quantity = Annotated[int, quantity]
Uint64 = Annotated[int, uint64]
Count = Annotated[int, count]
Data = Annotated[bytes, data]
Address = Annotated[bytes, address]
Hash = Annotated[bytes, hash32]
StorageKey = Annotated[int, storage_key]
Bool = Annotated[bool, boolean]
BlockId = Annotated[BlockRef, block_id]
BlockNumberOrTag = Annotated[BlockRef, block_number_or_tag]
Call = Annotated[CallArgs, call_args]
Overrides = Annotated[dict[bytes, AccountOverride] | None, optional(state_overrides)]
LogFilter = Annotated[FilterCriteria, filter_criteria]
TypedData = Annotated[dict[str, Any], typed_data]
Object = Annotated[dict[str, Any], json_object]
FilterId = Annotated[str, filter_id]
