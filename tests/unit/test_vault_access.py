"""Signed vault requests name their purpose: a key request for ``vault serve`` (a
wrapped key) and a read request for ``mcp serve``'s ``vault_read`` (plaintext) are
never taken for each other (the servers end to end are in tests/e2e)."""

from __future__ import annotations

import pytest

from sahara_cli.errors import VaultRequestInvalid
from sahara_cli.identity import Signer
from sahara_cli.identity.keys import public_key_of
from sahara_cli.vault.access import HEADER, KEY_RELEASE, MCP_READ, KeyRequest
from tests.conftest import TEST_KEY_0

SIGNER = Signer(bytes.fromhex(TEST_KEY_0[2:]))
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def test_a_key_request_keeps_its_signed_text() -> None:
    """Clients and servers of earlier versions sign and check this very text."""
    request = KeyRequest(7, CID, SIGNER.address, 31313, 1_764_000_000, "ab" * 16)
    assert (
        request.message()
        == (
            f"{HEADER}\nasset: 7\ncid: {CID}\naddress: {SIGNER.address}\nchain: 31313\n"
            f"issued: 1764000000\nnonce: {'ab' * 16}"
        ).encode()
    )
    body = request.signed(SIGNER)
    assert body["purpose"] == KEY_RELEASE
    unlabelled = {k: v for k, v in body.items() if k != "purpose"}
    for accepted in (body, unlabelled):
        got, public_key = KeyRequest.verify(accepted)
        assert got == request and public_key == public_key_of(SIGNER.private_key)


def test_a_read_request_names_its_purpose_in_the_signed_text() -> None:
    request = KeyRequest.new(SIGNER, 7, CID, 31313, MCP_READ)
    text = request.message().decode()
    assert text.startswith("sahara vault read request\npurpose: mcp-read\nasset: 7\n")
    got, _ = KeyRequest.verify(request.signed(SIGNER), MCP_READ)
    assert got == request


def test_a_key_request_is_no_read_request_and_back() -> None:
    key = KeyRequest.new(SIGNER, 7, CID, 31313).signed(SIGNER)
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
