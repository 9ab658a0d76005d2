"""Owner keys for ``sahara mcp serve`` over streamable HTTP.

Over HTTP anyone who reaches the port may call the tools, so ``vault_search`` lists the
vault's private items (their names, CIDs and scores) only to a caller who proves to be
the ID the server runs as. The proof is an owner key made by ``sahara mcp key``: a token
signed by that ID (EIP-191), sent as ``Authorization: Bearer <key>``. It names the
address and an expiry; the signed text starts with its own header, so neither an agent
API key (``sahara agent key``) nor a vault key or read request can stand in for it::

    sahara mcp owner key
    address: 0x…
    issued: 1764123456
    expires: 1764209856

The key holds no secret: it proves who calls, until it expires. Anyone who copies it can
use it until then, so keys live one day by default and 30 days at most, and travel only
over loopback or TLS.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sahara_cli.agent.servers.signed_tokens import read_token, sign_token, signer_of
from sahara_cli.errors import AgentAuthFailed, SignatureInvalid, UsageError

if TYPE_CHECKING:
    from sahara_cli.agent.results import McpOwnerKey
    from sahara_cli.identity.keys import Signer

KEY_PREFIX = "sahara-mcp-"
KEY_HEADER = "sahara mcp owner key"
DEFAULT_TTL = 86400  # one day
MAX_TTL = 30 * 86400
MAX_SKEW = 300  # seconds a key's issue time may lie ahead of the server's clock
MAX_KEY_LENGTH = 2048  # characters of a bearer token read at all
_HINT = "Make one with 'sahara mcp key' and send it as 'Authorization: Bearer KEY'."


@dataclass(frozen=True)
class OwnerKey:
    """What an owner key states, signed by ``address``."""

    address: str
    issued: int
    expires: int

    def message(self) -> bytes:
        """The EIP-191 text the owner's ID signs."""
        return (
            f"{KEY_HEADER}\naddress: {self.address}\nissued: {self.issued}\nexpires: {self.expires}"
        ).encode()


def check_ttl(ttl: int) -> int:
    """``ttl`` when an owner key may live that long (1 s to 30 days)."""
    if not 0 < ttl <= MAX_TTL:
        raise UsageError(
            f"an MCP owner key lives between 1 second and {MAX_TTL // 86400} days",
            hint="Pass --ttl 12h, 1d or 30d, say.",
        )
    return ttl


def make_owner_key(signer: Signer, ttl: int = DEFAULT_TTL, *, now: float | None = None) -> str:
    """An owner key for the MCP servers that run as ``signer``'s ID, valid ``ttl`` s."""
    check_ttl(ttl)
    issued = int(time.time() if now is None else now)
    key = OwnerKey(signer.address, issued, issued + int(ttl))
    fields = {"address": key.address, "issued": key.issued, "expires": key.expires}
    return sign_token(KEY_PREFIX, signer, key.message(), fields)


def owner_key(signer: Signer, identity: str, ttl: int = DEFAULT_TTL) -> McpOwnerKey:
    """``sahara mcp key``: an owner key of ``signer`` (the ID named ``identity``), valid
    ``ttl`` seconds from now."""
    from sahara_cli.agent.results import McpOwnerKey

    issued = int(time.time())
    token = make_owner_key(signer, ttl, now=issued)
    return McpOwnerKey(
        owner_key=token,
        address=signer.address,
        identity=identity,
        ttl_s=ttl,
        expires_at=issued + int(ttl),
    )


def verify_owner_key(token: str, owner: str, *, now: float | None = None) -> OwnerKey:
    """The key's statement once its signature, signer (``owner``) and times check out;
    :class:`~sahara_cli.errors.AgentAuthFailed` otherwise."""
    if not token.startswith(KEY_PREFIX) or len(token) > MAX_KEY_LENGTH:
        raise AgentAuthFailed("not a sahara MCP owner key", hint=_HINT)
    try:
        data = read_token(KEY_PREFIX, token)
        key = OwnerKey(str(data["address"]), int(data["issued"]), int(data["expires"]))
        signature = str(data["signature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AgentAuthFailed(
            f"the MCP owner key is malformed ({type(exc).__name__})", hint=_HINT
        ) from None
    try:
        signed_by = signer_of(key.message(), signature)
    except SignatureInvalid as exc:
        raise AgentAuthFailed(
            f"the MCP owner key's signature is invalid: {exc.message}", hint=_HINT
        ) from None
    if signed_by.lower() != key.address.lower():
        raise AgentAuthFailed("the MCP owner key is not signed by the address it names")
    if signed_by.lower() != owner.lower():
        raise AgentAuthFailed(
            f"the MCP owner key is signed by {signed_by}; this server answers to {owner}",
            hint="Make the key with the ID the server runs as ('sahara mcp key --id NAME').",
        )
    at = time.time() if now is None else now
    if key.expires - key.issued > MAX_TTL or key.expires <= key.issued:
        raise AgentAuthFailed("the MCP owner key claims a lifetime over 30 days", hint=_HINT)
    if key.issued > at + MAX_SKEW:
        raise AgentAuthFailed("the MCP owner key is issued in the future", hint=_HINT)
    if key.expires <= at:
        raise AgentAuthFailed("the MCP owner key has expired", hint=_HINT)
    return OwnerKey(signed_by, key.issued, key.expires)


def bearer(headers: Mapping[str, str] | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None without one."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AgentAuthFailed("the Authorization header is not 'Bearer KEY'", hint=_HINT)
    return token.strip()
