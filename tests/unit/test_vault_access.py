"""Signed vault requests name their purpose and a key request its audience: a key
request for ``vault serve`` (a wrapped key) and a read request for ``mcp serve``'s
``vault_read`` (plaintext) are never taken for each other; fields are bounded; the
replay store and the rate limiter on their own (the servers are in
tests/unit/test_vault_serve.py and tests/e2e)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sahara_cli.errors import VaultError, VaultRequestInvalid
from sahara_cli.identity import Signer
from sahara_cli.identity.keys import public_key_of
from sahara_cli.vault.access import (
    HEADER,
    KEY_RELEASE,
    MCP_READ,
    KeyRequest,
    audience_of,
    server_audiences,
)
from sahara_cli.vault.ratelimit import RateLimiter
from sahara_cli.vault.replay import NonceStore
from tests.conftest import TEST_KEY_0

SIGNER = Signer(bytes.fromhex(TEST_KEY_0[2:]))
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def test_a_key_request_signs_its_audience() -> None:
    """The text names the server the request is for, after the header."""
    request = KeyRequest(
        7, CID, SIGNER.address, 31313, 1_764_000_000, "ab" * 16, KEY_RELEASE,
        "http://127.0.0.1:8547",
    )  # fmt: skip
    assert (
        request.message()
        == (
            f"{HEADER}\naudience: http://127.0.0.1:8547\nasset: 7\ncid: {CID}\n"
            f"address: {SIGNER.address}\nchain: 31313\nissued: 1764000000\nnonce: {'ab' * 16}"
        ).encode()
    )
    body = request.signed(SIGNER)
    assert body["purpose"] == KEY_RELEASE and body["audience"] == "http://127.0.0.1:8547"
    unlabelled = {k: v for k, v in body.items() if k != "purpose"}
    for accepted in (body, unlabelled):
        got, public_key = KeyRequest.verify(accepted)
        assert got == request and public_key == public_key_of(SIGNER.private_key)
    # Without an audience a key request is refused, however it is signed.
    bare = KeyRequest(7, CID, SIGNER.address, 31313, 1_764_000_000, "ab" * 16).signed(SIGNER)
    with pytest.raises(VaultRequestInvalid, match="no audience"):
        KeyRequest.verify(bare)
    with pytest.raises(VaultRequestInvalid, match="audience"):
        KeyRequest.new(SIGNER, 7, CID, 31313)


def test_audiences_are_normalised() -> None:
    assert audience_of("HTTP://LocalHost:8547/") == "http://localhost:8547"
    assert audience_of("https://vault.example.org/a/") == "https://vault.example.org:443/a"
    assert audience_of("http://[::1]:9/") == "http://[::1]:9"
    for bad in ("ftp://x:1", "127.0.0.1:8547", "http://x:99999", ""):
        with pytest.raises(VaultRequestInvalid):
            audience_of(bad)
    assert server_audiences("127.0.0.1:8547") == {
        "http://127.0.0.1:8547",
        "http://localhost:8547",
        "http://[::1]:8547",
    }
    public = server_audiences("10.0.0.5:8547", "https://vault.example.org/")
    assert public == {"http://10.0.0.5:8547", "https://vault.example.org:443"}
    assert "http://0.0.0.0:8547" not in server_audiences("0.0.0.0:8547")


def test_fields_are_bounded_before_the_signature_is_checked() -> None:
    good = KeyRequest.new(SIGNER, 7, CID, 31313, audience="http://h:1").signed(SIGNER)
    bad_values = {
        "asset": [0, -1, 2**63, True, 7.0, "7", None],
        "chain": [0, 2**64, "31313"],
        "issued": [-1, 2**40, 1.5],
        "cid": ["", "b" * 129, "baf\nasset: 8", 7],
        "address": [SIGNER.address[:-1], "0x" + "g" * 40, None],
        "nonce": ["ab" * 7 + "a", "ab" * 33, "xy" * 16, "ab" * 8 + "\n"],
        "signature": ["0x" + "ab" * 64, "0x" + "zz" * 65, "ab" * 2000],
        "audience": ["", "h:1", "http://h:1/\nasset: 8", "http://" + "h" * 300],
    }
    for field, values in bad_values.items():
        for value in values:
            with pytest.raises(VaultRequestInvalid, match=field):
                KeyRequest.parse({**good, field: value})
    for body in (None, [], "x", 7):
        with pytest.raises(VaultRequestInvalid, match="JSON object"):
            KeyRequest.parse(body)
    with pytest.raises(VaultRequestInvalid, match="missing"):
        KeyRequest.parse({k: v for k, v in good.items() if k != "nonce"})


def test_the_replay_store_claims_each_nonce_once_until_it_expires(tmp_path: Path) -> None:
    store = NonceStore(tmp_path / "nonces.db")
    now = int(time.time())
    assert store.claim("a", now + 60)
    assert not store.claim("a", now + 60)
    reopened = NonceStore(tmp_path / "nonces.db")  # another process, or after a restart
    assert not reopened.claim("a", now + 60)
    assert reopened.claim("b", now - 1)  # expired at once: its key may be taken again
    assert store.claim("b", now + 60)
    store.close()
    reopened.close()
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(VaultError, match="replay store"):
        NonceStore(tmp_path / "junk.db").claim("c", now + 60)


def test_the_rate_limiter_refills_per_key() -> None:
    clock = [0.0]
    limiter = RateLimiter(2.0, clock=lambda: clock[0], max_keys=2)
    assert limiter.burst == 4
    assert [limiter.take("a") for _ in range(4)] == [0.0] * 4
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # another key has its own bucket
    clock[0] += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    limiter.take("b")
    limiter.take("c")  # a third key drops the least recent bucket (a): memory stays bounded
    assert limiter.take("a") == 0.0


def test_a_read_request_names_its_purpose_in_the_signed_text() -> None:
    request = KeyRequest.new(SIGNER, 7, CID, 31313, MCP_READ)
    text = request.message().decode()
    assert "audience" not in text
    assert text.startswith("sahara vault read request\npurpose: mcp-read\nasset: 7\n")
    got, _ = KeyRequest.verify(request.signed(SIGNER), MCP_READ)
    assert got == request


def test_a_key_request_is_no_read_request_and_back() -> None:
    key = KeyRequest.new(SIGNER, 7, CID, 31313, audience="http://h:1").signed(SIGNER)
    read = KeyRequest.new(SIGNER, 7, CID, 31313, MCP_READ).signed(SIGNER)
    replays = [
        (key, MCP_READ),  # as seen on the wire to 'vault serve'
        ({**key, "purpose": MCP_READ}, MCP_READ),  # relabelled
        ({k: v for k, v in key.items() if k != "purpose"}, MCP_READ),  # unlabelled
        (read, KEY_RELEASE),
        ({**read, "purpose": KEY_RELEASE}, KEY_RELEASE),
        ({k: v for k, v in read.items() if k != "purpose"}, KEY_RELEASE),
    ]
    for body, purpose in replays:
        with pytest.raises(VaultRequestInvalid) as refused:
            KeyRequest.verify(body, purpose)
        assert refused.value.hint
    with pytest.raises(VaultRequestInvalid, match="purpose"):
        KeyRequest.verify({**key, "purpose": "anything"}, "anything")
