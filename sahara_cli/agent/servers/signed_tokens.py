"""Signed bearer tokens, the form of the agent servers' keys: a JSON statement with the
EIP-191 signature of its text, base64url without padding, after a prefix that names the
kind of key (``sahara-`` for agent API keys, ``sahara-mcp-`` for MCP owner keys).

Each kind of key states its own fields and signs its own text (which starts with a
header of its own, so one kind cannot stand in for another); this module only encodes,
decodes and recovers the signer.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer


def sign_token(prefix: str, signer: Signer, message: bytes, fields: dict[str, Any]) -> str:
    """``fields`` with ``signer``'s EIP-191 signature of ``message``, as a token."""
    payload = {**fields, "signature": "0x" + signer.sign_message(message).hex()}
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_token(prefix: str, token: str) -> dict[str, Any]:
    """The statement of a token made by :func:`sign_token` (its signature unchecked);
    :class:`ValueError` when ``token`` is not one."""
    if not token.startswith(prefix):
        raise ValueError(f"the token does not start with {prefix!r}")
    body = token[len(prefix) :]
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if not isinstance(data, dict):
        raise ValueError("the token does not hold a JSON object")
    return data


def signer_of(message: bytes, signature: str) -> str:
    """The address whose EIP-191 signature of ``message`` ``signature`` is
    (:class:`~sahara_cli.errors.SignatureInvalid` when it is none)."""
    from sahara_cli.identity.keys import personal_message_hash, recover_hash

    return recover_hash(personal_message_hash(message), signature)
