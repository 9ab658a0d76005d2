"""Encryption at rest: a streamed AES-256-GCM format and ECIES key wrapping.

Stream format (version 1)::

    header   = b"SVE" 0x01 | log2(segment size) (1 byte) | nonce prefix (7 random bytes)
    segment  = AES-256-GCM(key, nonce = prefix | counter (4 bytes, big endian) | last,
                           plaintext segment, aad = header)

Every segment but the last holds exactly ``segment size`` plaintext bytes; the last one
holds the rest (1 to ``segment size`` bytes, or 0 for empty content) and sets the last
flag. This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): each
segment is authenticated on its own, a reordered segment fails its counter, and a stream
cut at a segment boundary fails because its final segment was not sealed as the last one.
Memory is one segment at a time.

Key wrapping is ECIES on secp256k1 (the curve of Sahara IDs): an ephemeral key, ECDH,
HKDF-SHA256 over both public keys, then AES-256-GCM::

    wrapped  = 0x01 | ephemeral public key (33) | nonce (12) | AES-GCM(data key) (48)
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from sahara_cli.errors import VaultDecryptFailed, VaultWrongKey

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"SVE\x01"
HEADER_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32
DEFAULT_SEGMENT_LOG2 = 18  # 256 KiB of plaintext per segment
WRAP_VERSION = 1
WRAPPED_SIZE = 1 + 33 + 12 + KEY_SIZE + TAG_SIZE
_WRAP_INFO = b"sahara-vault/key-wrap/v1"
_SNIPPET_INFO = b"sahara-vault/snippet/v1"


def new_data_key() -> bytes:
    return os.urandom(KEY_SIZE)


def _aesgcm(key: bytes) -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _hkdf(secret: bytes, salt: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=info).derive(secret)


def ciphertext_size(plain_size: int, segment_log2: int = DEFAULT_SEGMENT_LOG2) -> int:
    """Bytes of the encrypted stream for ``plain_size`` bytes of plaintext."""
    segments = max(1, -(-plain_size // (1 << segment_log2)))
    return HEADER_SIZE + plain_size + segments * TAG_SIZE


class Encryptor:
    """Push plaintext in with :meth:`write`; sealed bytes go to ``sink`` in order."""

    def __init__(
        self,
        key: bytes,
        sink: Callable[[bytes], object],
        *,
        segment_log2: int = DEFAULT_SEGMENT_LOG2,
    ) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("data keys are 32 bytes")
        if not 10 <= segment_log2 <= 24:
            raise ValueError("segment size must be 1 KiB to 16 MiB")
        self._aead = _aesgcm(key)
        self._sink = sink
        self._segment = 1 << segment_log2
        self.header = MAGIC + bytes((segment_log2,)) + os.urandom(7)
        self._prefix = self.header[5:]
        self._counter = 0
        self._buffer = bytearray()
        self._done = False
        sink(self.header)

    def _nonce(self, last: bool) -> bytes:
        if self._counter >= 0xFFFFFFFF:
            raise ValueError("stream too long for one data key")
        nonce = self._prefix + self._counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        self._counter += 1
        return nonce

    def _seal(self, plain: bytes | bytearray | memoryview, last: bool) -> None:
        self._sink(self._aead.encrypt(self._nonce(last), bytes(plain), self.header))

    def seal_into(
        self, plain: bytes | bytearray | memoryview, out: memoryview, *, last: bool
    ) -> None:
        """Seal the next segment straight into ``out`` (``len(plain) + TAG_SIZE`` bytes):
        for callers that cut the plaintext into segments themselves, with no copies
        (:mod:`sahara_cli.vault.ingest`). The header is the caller's to place; the sink
        gets nothing. ``plain`` is a whole segment, or with ``last`` the rest (0 to a
        segment's bytes). Not to be mixed with :meth:`write`."""
        if self._done or self._buffer:
            raise ValueError("seal_into() after finish() or write()")
        if len(plain) > self._segment or (len(plain) < self._segment and not last):
            raise ValueError("seal_into() takes whole segments, and a shorter last one")
        self._aead.encrypt_into(self._nonce(last), plain, self.header, out)
        self._done = last

    def write(self, data: bytes | memoryview) -> None:
        if self._done:
            raise ValueError("write after finish")
        size = self._segment
        view = memoryview(data)
        if self._buffer:
            take = min(size - len(self._buffer), len(view))
            self._buffer += view[:take]
            view = view[take:]
            # A full buffer is sealed only once more data follows: it may be the last.
            if len(self._buffer) == size and len(view):
                self._seal(self._buffer, last=False)
                self._buffer.clear()
        while len(view) > size:
            self._seal(view[:size], last=False)
            view = view[size:]
        if len(view):
            self._buffer += view

    def finish(self) -> None:
        if self._done:
            return
        self._seal(self._buffer, last=True)
        self._buffer.clear()
        self._done = True


class Decryptor:
    """Push sealed bytes in with :meth:`write`; plaintext goes to ``sink``.

    Raises :class:`VaultDecryptFailed` on the first segment that fails, and at
    :meth:`finish` when the stream was cut short.
    """

    def __init__(self, key: bytes, sink: Callable[[bytes], object]) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("data keys are 32 bytes")
        self._aead = _aesgcm(key)
        self._sink = sink
        self._header: bytes | None = None
        self._segment = 0
        self._counter = 0
        self._buffer = bytearray()
        self._done = False

    def _open(self, sealed: bytes | bytearray | memoryview, last: bool) -> None:
        from cryptography.exceptions import InvalidTag

        assert self._header is not None
        nonce = self._header[5:] + self._counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        try:
            plain = self._aead.decrypt(nonce, bytes(sealed), self._header)
        except InvalidTag:
            where = "final segment" if last else f"segment {self._counter}"
            raise VaultDecryptFailed(
                f"ciphertext fails authentication at {where}: "
                "it was changed, cut short or reordered",
                hint="Fetch the content again; nothing was written from the bad segment.",
            ) from None
        self._counter += 1
        self._sink(plain)

    def write(self, data: bytes | memoryview) -> None:
        if self._done:
            raise ValueError("write after finish")
        self._buffer += data
        if self._header is None:
            if len(self._buffer) < HEADER_SIZE:
                return
            header = bytes(self._buffer[:HEADER_SIZE])
            if header[:4] != MAGIC or not 10 <= header[4] <= 24:
                raise VaultDecryptFailed(
                    "not a sahara encrypted stream (bad header)",
                    hint="The content is not encrypted, or its first block was changed.",
                )
            self._header = header
            self._segment = (1 << header[4]) + TAG_SIZE
            del self._buffer[:HEADER_SIZE]
        size = self._segment
        # Keep at least one full segment back: the last one is opened in finish().
        if len(self._buffer) > size:
            whole = (len(self._buffer) - 1) // size
            view = memoryview(self._buffer)
            for i in range(whole):
                self._open(view[i * size : (i + 1) * size], last=False)
            view.release()
            del self._buffer[: whole * size]

    def finish(self) -> None:
        if self._done:
            return
        if self._header is None:
            raise VaultDecryptFailed("encrypted stream is truncated (no complete header)")
        if len(self._buffer) < TAG_SIZE:
            raise VaultDecryptFailed("encrypted stream is truncated (no final segment)")
        self._open(self._buffer, last=True)
        self._buffer.clear()
        self._done = True


def encrypt_bytes(key: bytes, data: bytes, *, segment_log2: int = DEFAULT_SEGMENT_LOG2) -> bytes:
    out: list[bytes] = []
    enc = Encryptor(key, out.append, segment_log2=segment_log2)
    enc.write(data)
    enc.finish()
    return b"".join(out)


def decrypt_bytes(key: bytes, data: bytes) -> bytes:
    out: list[bytes] = []
    dec = Decryptor(key, out.append)
    dec.write(data)
    dec.finish()
    return b"".join(out)


# -- ECIES key wrapping ----------------------------------------------------------------------


def _compressed(public_key: bytes) -> bytes:
    from coincurve import PublicKey

    try:
        return bytes(PublicKey(public_key).format(compressed=True))
    except (ValueError, TypeError) as exc:
        raise VaultWrongKey(f"not a secp256k1 public key: {exc}") from None


def wrap_key(data_key: bytes, recipient_public_key: bytes) -> bytes:
    """Seal ``data_key`` so that only the holder of the recipient's private key opens it."""
    from coincurve import PrivateKey

    recipient = _compressed(recipient_public_key)
    ephemeral = PrivateKey()
    ephemeral_public = bytes(ephemeral.public_key.format(compressed=True))
    shared = ephemeral.ecdh(recipient)
    kek = _hkdf(shared, ephemeral_public + recipient, _WRAP_INFO)
    nonce = os.urandom(12)
    sealed = _aesgcm(kek).encrypt(nonce, data_key, ephemeral_public + recipient)
    return bytes((WRAP_VERSION,)) + ephemeral_public + nonce + sealed


def unwrap_key(wrapped: bytes, private_key: bytes) -> bytes:
    """Open a key from :func:`wrap_key` with the recipient's private key."""
    from coincurve import PrivateKey
    from cryptography.exceptions import InvalidTag

    if len(wrapped) != WRAPPED_SIZE or wrapped[0] != WRAP_VERSION:
        raise VaultWrongKey("wrapped key is malformed (wrong length or version)")
    ephemeral_public = wrapped[1:34]
    nonce = wrapped[34:46]
    own = PrivateKey(private_key)
    recipient = bytes(own.public_key.format(compressed=True))
    try:
        shared = own.ecdh(ephemeral_public)
    except ValueError:
        raise VaultWrongKey("wrapped key is malformed (bad ephemeral key)") from None
    kek = _hkdf(shared, ephemeral_public + recipient, _WRAP_INFO)
    try:
        data_key: bytes = _aesgcm(kek).decrypt(nonce, wrapped[46:], ephemeral_public + recipient)
    except InvalidTag:
        raise VaultWrongKey("this identity's key cannot open the data key") from None
    return data_key


# -- commitments: what the chain holds about a private item's plaintext ------------------------

_COMMITMENT_INFO = b"sahara-vault/commitment-salt/v1"


def commitment_salt(data_key: bytes) -> bytes:
    """The item's commitment salt: derived from its data key, so whoever may decrypt the
    item can check it, and revealing the salt reveals nothing of the key."""
    return _hkdf(data_key, b"", _COMMITMENT_INFO)


def salted_commitment(data_key: bytes, digest: str) -> str:
    """``0x`` + SHA-256(salt || SHA-256(plaintext)), from the plaintext's ``digest``
    (``0x`` + hex). Without the salt, a guess of the plaintext cannot be checked
    against it."""
    import hashlib

    raw = bytes.fromhex(digest.removeprefix("0x"))
    return "0x" + hashlib.sha256(commitment_salt(data_key) + raw).hexdigest()


def matches_commitment(commitment: str, digest: str, data_key: bytes | None) -> bool:
    """Whether a plaintext whose SHA-256 is ``digest`` is the one ``commitment`` names:
    a plain commitment (public items, private ones added with --plain-commitment or
    before salting) or one salted under ``data_key``."""
    if commitment == digest:
        return True
    return data_key is not None and commitment == salted_commitment(data_key, digest)


# -- snippets: short texts (index entries) sealed under an item's data key --------------------


def seal_text(data_key: bytes, text: str) -> str:
    key = _hkdf(data_key, b"", _SNIPPET_INFO)
    nonce = os.urandom(12)
    sealed = _aesgcm(key).encrypt(nonce, text.encode("utf-8"), None)
    return base64.b64encode(nonce + sealed).decode("ascii")


def open_text(data_key: bytes, sealed: str) -> str:
    from cryptography.exceptions import InvalidTag

    key = _hkdf(data_key, b"", _SNIPPET_INFO)
    try:
        raw = base64.b64decode(sealed)
        plain: bytes = _aesgcm(key).decrypt(raw[:12], raw[12:], None)
    except (InvalidTag, ValueError):
        raise VaultDecryptFailed("sealed snippet fails authentication") from None
    return plain.decode("utf-8")


# -- short texts sealed to an ID: a fresh data key per text, wrapped to the public key -------


def seal_to(public_key: bytes, text: str) -> str:
    """Seal ``text`` so that only the holder of ``public_key``'s private key opens it:
    a fresh data key wrapped with :func:`wrap_key`, the text sealed under it
    (:func:`seal_text`). Needs no password; returns ``base64(wrapped).sealed``."""
    key = new_data_key()
    wrapped = base64.b64encode(wrap_key(key, public_key)).decode("ascii")
    return f"{wrapped}.{seal_text(key, text)}"


def open_sealed(private_key: bytes, sealed: str) -> str:
    """Open a text from :func:`seal_to` with the recipient's private key."""
    head, dot, body = sealed.partition(".")
    try:
        wrapped = base64.b64decode(head, validate=True)
    except ValueError:
        raise VaultDecryptFailed("sealed text is malformed") from None
    if not dot:
        raise VaultDecryptFailed("sealed text is malformed")
    return open_text(unwrap_key(wrapped, private_key), body)
