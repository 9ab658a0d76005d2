"""Content identifiers: CIDv1 (and reading CIDv0) over sha2-256 multihashes.

A CIDv1 is ``varint(1) varint(codec) multihash``; its text form is multibase base32
(lowercase, no padding, prefix ``b``), the form Kubo prints with ``--cid-version=1``.
CIDv0 (``Qm…``, base58btc, always dag-pb) is read so that CIDs from older tools work.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
from dataclasses import dataclass

from sahara_cli.errors import VaultCidInvalid

RAW = 0x55
DAG_PB = 0x70
DAG_CBOR = 0x71
SHA2_256 = 0x12

CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb", DAG_CBOR: "dag-cbor"}

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def varint(value: int) -> bytes:
    """Unsigned LEB128, as multiformats and protobuf use it."""
    if value < 0:
        raise ValueError("varint must not be negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a varint at ``offset``; returns ``(value, next_offset)``."""
    value = 0
    shift = 0
    end = len(data)
    while True:
        if offset >= end:
            raise ValueError("truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 9 bytes")


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        if char not in _B58_INDEX:
            raise ValueError(f"{char!r} is not base58")
        number = number * 58 + _B58_INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * zeros + body


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, rem = divmod(number, 58)
        chars.append(_B58[rem])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + "".join(reversed(chars))


@dataclass(frozen=True, slots=True)
class CID:
    """A content identifier: version, codec and the sha2-256 digest it addresses."""

    codec: int
    digest: bytes
    version: int = 1

    @classmethod
    def raw(cls, digest: builtins.bytes) -> CID:
        return cls(RAW, digest)

    @classmethod
    def dag_pb(cls, digest: builtins.bytes) -> CID:
        return cls(DAG_PB, digest)

    @classmethod
    def of(cls, codec: int, block: builtins.bytes) -> CID:
        """The CIDv1 of ``block`` under ``codec`` (sha2-256)."""
        return cls(codec, hashlib.sha256(block).digest())

    @property
    def multihash(self) -> builtins.bytes:
        return bytes((SHA2_256, 32)) + self.digest

    @property
    def bytes(self) -> builtins.bytes:
        """Binary form (what dag-pb links and CAR sections hold)."""
        if self.version == 0:
            return self.multihash
        return varint(1) + varint(self.codec) + self.multihash

    def encode(self) -> str:
        """Text form: base32 ``b…`` for v1, base58btc ``Qm…`` for v0."""
        if self.version == 0:
            return _b58encode(self.multihash)
        return "b" + base64.b32encode(self.bytes).decode("ascii").lower().rstrip("=")

    def v1(self) -> CID:
        return CID(self.codec, self.digest, 1)

    def verify(self, block: builtins.bytes) -> bool:
        return hashlib.sha256(block).digest() == self.digest

    @property
    def codec_name(self) -> str:
        return CODEC_NAMES.get(self.codec, hex(self.codec))

    def __str__(self) -> str:
        return self.encode()

    def __repr__(self) -> str:
        return f"CID({self.encode()})"

    @classmethod
    def from_bytes(cls, data: builtins.bytes | memoryview, offset: int = 0) -> tuple[CID, int]:
        """Read a binary CID at ``offset``; returns ``(cid, next_offset)``."""
        try:
            if data[offset] == SHA2_256 and data[offset + 1] == 32:
                end = offset + 34
                if end > len(data):
                    raise ValueError("truncated multihash")
                return cls(DAG_PB, bytes(data[offset + 2 : end]), 0), end
            version, pos = read_varint(data, offset)
            if version != 1:
                raise ValueError(f"CID version {version}")
            codec, pos = read_varint(data, pos)
            hash_code, pos = read_varint(data, pos)
            length, pos = read_varint(data, pos)
        except (IndexError, ValueError) as exc:
            raise VaultCidInvalid(f"malformed binary CID: {exc}") from None
        if hash_code != SHA2_256 or length != 32:
            raise VaultCidInvalid(
                f"unsupported multihash 0x{hash_code:x} of {length} bytes",
                hint="The vault stores sha2-256 content (Kubo's default).",
            )
        end = pos + length
        if end > len(data):
            raise VaultCidInvalid("malformed binary CID: truncated digest")
        return cls(codec, bytes(data[pos:end]), 1), end

    @classmethod
    def decode(cls, text: str) -> CID:
        """Parse a CID's text form (base32 v1 or base58 v0)."""
        text = text.strip()
        if text.startswith("/ipfs/"):
            text = text[len("/ipfs/") :].split("/", 1)[0]
        try:
            if len(text) == 46 and text.startswith("Qm"):
                raw = _b58decode(text)
            elif text.startswith(("b", "B")) and len(text) > 8:
                body = text[1:].upper()
                raw = base64.b32decode(body + "=" * (-len(body) % 8))
            else:
                raise ValueError("not a base32 CIDv1 or a base58 CIDv0")
        except ValueError as exc:
            raise VaultCidInvalid(
                f"not a CID: {text!r} ({exc})",
                hint="CIDs look like bafk… or bafy… (CIDv1) or Qm… (CIDv0).",
            ) from None
        cid, end = cls.from_bytes(raw)
        if end != len(raw):
            raise VaultCidInvalid(f"not a CID: {text!r} (trailing bytes)")
        return cid


def looks_like_cid(text: str) -> bool:
    try:
        CID.decode(text)
    except VaultCidInvalid:
        return False
    return True
