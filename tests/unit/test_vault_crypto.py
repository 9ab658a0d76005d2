"""The streamed AES-256-GCM format and ECIES key wrapping of the vault."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sahara_cli.errors import VaultDecryptFailed, VaultWrongKey
from sahara_cli.identity.keys import public_key_of
from sahara_cli.vault import crypto

KEY = bytes(range(32))
SEG = 10  # 1 KiB segments keep the examples small


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=5000),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
    read_cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
)
def test_round_trip_for_any_write_pattern(data: bytes, cuts: list[int], read_cuts: list[int]):
    sealed: list[bytes] = []
    enc = crypto.Encryptor(KEY, sealed.append, segment_log2=SEG)
    for piece in _split(data, cuts):
        enc.write(piece)
    enc.finish()
    stream = b"".join(sealed)
    assert len(stream) == crypto.ciphertext_size(len(data), SEG)
    plain: list[bytes] = []
    dec = crypto.Decryptor(KEY, plain.append)
    for piece in _split(stream, read_cuts):
        dec.write(piece)
    dec.finish()
    assert b"".join(plain) == data


def test_same_plaintext_encrypts_differently_each_time():
    assert crypto.encrypt_bytes(KEY, b"x" * 100) != crypto.encrypt_bytes(KEY, b"x" * 100)


def test_exact_multiple_of_the_segment_seals_its_last_full_segment_as_last():
    data = os.urandom(3 << SEG)
    stream = crypto.encrypt_bytes(KEY, data, segment_log2=SEG)
    assert len(stream) == crypto.HEADER_SIZE + len(data) + 3 * crypto.TAG_SIZE
    assert crypto.decrypt_bytes(KEY, stream) == data


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 5000])
def test_flipping_any_byte_is_detected(size: int):
    stream = crypto.encrypt_bytes(KEY, os.urandom(size), segment_log2=SEG)
    for position in {0, 4, 5, 11, 12, len(stream) // 2, len(stream) - 1}:
        bad = bytearray(stream)
        bad[position] ^= 0x01
        with pytest.raises(VaultDecryptFailed):
            crypto.decrypt_bytes(KEY, bytes(bad))


def test_truncation_at_a_segment_boundary_is_detected():
    data = os.urandom(3000)
    stream = crypto.encrypt_bytes(KEY, data, segment_log2=SEG)
    whole = (1 << SEG) + crypto.TAG_SIZE
    cut = stream[: crypto.HEADER_SIZE + 2 * whole]  # the last segment is gone
    with pytest.raises(VaultDecryptFailed, match="final segment"):
        crypto.decrypt_bytes(KEY, cut)
    with pytest.raises(VaultDecryptFailed, match="truncated"):
        crypto.decrypt_bytes(KEY, stream[:5])


def test_reordered_segments_are_detected():
    data = os.urandom(3000)
    stream = crypto.encrypt_bytes(KEY, data, segment_log2=SEG)
    whole = (1 << SEG) + crypto.TAG_SIZE
    h = crypto.HEADER_SIZE
    first, second = stream[h : h + whole], stream[h + whole : h + 2 * whole]
    swapped = stream[:h] + second + first + stream[h + 2 * whole :]
    with pytest.raises(VaultDecryptFailed):
        crypto.decrypt_bytes(KEY, swapped)


def test_wrong_data_key_fails_authentication():
    stream = crypto.encrypt_bytes(KEY, b"secret")
    with pytest.raises(VaultDecryptFailed):
        crypto.decrypt_bytes(bytes(32), stream)


def test_plain_bytes_are_not_a_stream():
    with pytest.raises(VaultDecryptFailed, match="bad header"):
        crypto.decrypt_bytes(KEY, b"just some plain text that is long enough")


def test_key_wrap_round_trip_and_wrong_recipient():
    alice, bob = os.urandom(32), os.urandom(32)
    data_key = crypto.new_data_key()
    wrapped = crypto.wrap_key(data_key, public_key_of(alice))
    assert len(wrapped) == crypto.WRAPPED_SIZE
    assert crypto.unwrap_key(wrapped, alice) == data_key
    with pytest.raises(VaultWrongKey):
        crypto.unwrap_key(wrapped, bob)
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(VaultWrongKey):
        crypto.unwrap_key(bytes(tampered), alice)
    with pytest.raises(VaultWrongKey, match="malformed"):
        crypto.unwrap_key(wrapped[:-1], alice)


def test_wrap_accepts_compressed_keys_and_rejects_junk():
    alice = os.urandom(32)
    from coincurve import PrivateKey

    compressed = PrivateKey(alice).public_key.format(compressed=True)
    data_key = crypto.new_data_key()
    assert crypto.unwrap_key(crypto.wrap_key(data_key, compressed), alice) == data_key
    with pytest.raises(VaultWrongKey):
        crypto.wrap_key(data_key, b"\x02" + bytes(32))


def test_sealed_snippets():
    sealed = crypto.seal_text(KEY, "MARKER-sentence")
    assert "MARKER" not in sealed
    assert crypto.open_text(KEY, sealed) == "MARKER-sentence"
    with pytest.raises(VaultDecryptFailed):
        crypto.open_text(bytes(32), sealed)
