"""Typed results: what every operation returns, and the conventions every result keeps.

A command prints its result for people, and with ``--json`` prints
``result.model_dump(mode="json")``; other programs get the model itself. The JSON Schema of
each command's result is published under ``docs/schemas/`` and printed by
``sahara schema COMMAND``.

The conventions, held by :class:`Result` when a model class is defined:

- keys are snake_case; one key per concept (``asset_id``, ``offer_id``, ``license_id``,
  ``calls_left``, ``chain_id`` as an integer), so ``id``, ``asset``, ``calls`` and
  ``chainId`` are refused as field names;
- times are ISO 8601 UTC strings (:data:`Timestamp`), ``null`` for "never"; a field named
  ``*_at`` must be one;
- amounts are exact wei as decimal strings (``*_wei``, :data:`Wei`) next to SAH as a decimal
  string (``*_sah``, :data:`Sah`, filled in from the wei); one never comes without the other;
- addresses are EIP-55 checksummed (:data:`Address`), hashes lowercase hex (:data:`Hash32`);
- a sent transaction is one :class:`Transaction` object.
"""

from __future__ import annotations

import re
import typing
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    RootModel,
    WithJsonSchema,
    model_validator,
)

from sahara_cli.units import format_sah

__all__ = [
    "Address",
    "Hash32",
    "Result",
    "Sah",
    "SchemaDocument",
    "Timestamp",
    "Transaction",
    "Wei",
    "iso_utc",
]

_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
#: Field names that hide which thing they mean; the convention names each one.
_AMBIGUOUS = {
    "id": "name the thing: asset_id, offer_id, license_id, receipt_id...",
    "asset": "asset_id",
    "offer": "offer_id",
    "license": "license_id",
    "calls": "calls_left (or calls_bought)",
    "fee": "fee_wei with fee_sah",
    "wei": "a *_wei field with its *_sah",
    "sah": "a *_sah field with its *_wei",
    "chainid": "chain_id",
}


def _to_wei(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("an amount in wei is an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    if isinstance(value, str) and value.startswith("0x"):
        return int(value, 16)
    raise ValueError(f"not an amount in wei: {value!r}")


def _to_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise ValueError("a time is not a boolean")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"not a time: {value!r}")


def iso_utc(moment: datetime) -> str:
    """``2026-12-07T16:13:48Z`` (sub-second digits only when the time has them)."""
    moment = moment.astimezone(UTC)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _checksummed(value: str) -> str:
    from sahara_cli.identity.keys import to_checksum_address

    return to_checksum_address(value)


#: Exact wei: an int in Python, a string of decimal digits in JSON.
_WEI = BeforeValidator(_to_wei)
_TIME = BeforeValidator(_to_utc)

Wei = Annotated[
    int,
    _WEI,
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^-?[0-9]+$", "description": "wei"}),
]
#: SAH as a decimal string (``"0.01"``), filled in from the ``*_wei`` field of the same stem:
#: declare it ``x_sah: Sah = ""`` (``Sah | None = None`` next to an optional wei).
Sah = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,18})?$", "description": "SAH"}
    ),
]
#: A moment as an ISO 8601 UTC string; from unix seconds, a datetime or ISO text.
Timestamp = Annotated[
    datetime,
    _TIME,
    PlainSerializer(iso_utc, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "ISO 8601, UTC"}),
]
#: An EIP-55 checksummed address.
Address = Annotated[
    str,
    AfterValidator(_checksummed),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}),
]
#: A 32-byte hash (transaction, block, commitment) as lowercase 0x-hex.
Hash32 = Annotated[
    str,
    AfterValidator(str.lower),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-f]{64}$"}),
]


def _has(info: Any, marker: Any) -> bool:
    """Whether a field is of the type whose validator is ``marker`` (or an Optional of it)."""

    def walk(annotation: Any) -> bool:
        return any(arg is marker or walk(arg) for arg in typing.get_args(annotation))

    return any(m is marker for m in info.metadata) or walk(info.annotation)


class Result(BaseModel):
    """The base of every typed result; see the module docstring for the conventions."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_serialization_defaults_required=True,
        ser_json_timedelta="float",
        # A command builds the validators of the one result it returns, when it does.
        defer_build=True,
    )

    #: Set by a subclass to name the result in its JSON Schema's title.
    __result_title__: ClassVar[str | None] = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, info in cls.model_fields.items():
            key = info.alias or name
            where = f"{cls.__name__}.{key}"
            if not _SNAKE.match(key):
                raise TypeError(f"{where}: result keys are snake_case")
            if key in _AMBIGUOUS:
                raise TypeError(f"{where}: ambiguous key, use {_AMBIGUOUS[key]}")
            if key.endswith("_wei"):
                if not _has(info, _WEI):
                    raise TypeError(f"{where}: a *_wei field is of type Wei")
                if key[:-4] + "_sah" not in cls.model_fields:
                    raise TypeError(f"{where}: declare {key[:-4]}_sah next to it")
            if key.endswith("_sah") and key[:-4] + "_wei" not in cls.model_fields:
                raise TypeError(f"{where}: a *_sah field comes with its *_wei field")
            if key.endswith("_at") and not _has(info, _TIME):
                raise TypeError(f"{where}: a *_at field is a Timestamp")

    @model_validator(mode="before")
    @classmethod
    def _fill_sah(cls, data: Any) -> Any:
        """Fill each ``*_sah`` from its ``*_wei`` (constructors pass the wei only)."""
        if not isinstance(data, dict):
            return data
        filled = None
        for name in cls.model_fields:
            if not name.endswith("_sah") or data.get(name) is not None:
                continue
            wei = data.get(name[:-4] + "_wei")
            if wei is None:
                continue
            filled = filled if filled is not None else dict(data)
            filled[name] = format_sah(_to_wei(wei))
        return filled if filled is not None else data


class Transaction(Result):
    """A transaction this command sent, once it is in a block."""

    hash: Hash32 = Field(description="transaction hash")
    block: int = Field(description="number of the block that holds it")
    status: Literal["success", "reverted"] = "success"
    gas_used: int
    fee_wei: Wei = Field(description="gas used times the effective gas price")
    fee_sah: Sah = ""


class SchemaDocument(RootModel[dict[str, Any]]):
    """A JSON Schema document (the result of ``sahara schema``)."""
