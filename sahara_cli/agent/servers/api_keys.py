"""API keys of ``sahara agent serve``: made and signed by the caller, revocable.

A key is a token signed by the caller's Sahara ID (EIP-191) that states a random key
id, the caller's address, the agent's asset, the chain and an expiry at most
:data:`MAX_TTL` away. It holds no secret: it proves who calls. A key is revoked by its
id and address (the owner may revoke an id for every address); revocations go into a
SQLite file beside the agent (``revoked_keys.sqlite``), which the server reads on every
call, so a revocation holds at once, in a running server and after a restart.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.agent.servers.signed_tokens import read_token, sign_token, signer_of
from sahara_cli.errors import AgentAuthFailed, AgentKeyRevoked, SignatureInvalid, UsageError

if TYPE_CHECKING:
    from sahara_cli.agent.results import AgentKeyMade, AgentKeyRevocation
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Asset, Protocol

KEY_PREFIX = "sahara-"
KEY_HEADER = "sahara agent api key"
DEFAULT_TTL = 30 * 86400
#: The longest an API key may be valid; the server refuses keys that expire later.
MAX_TTL = 365 * 86400
#: Clock skew allowed between the caller who made a key and the server.
CLOCK_SKEW = 300
KEY_ID_RE = re.compile(r"^[0-9a-f]{32}$")
REVOKED_FILE = "revoked_keys.sqlite"


@dataclass(frozen=True)
class ApiKey:
    """What an API key states, signed by ``address``."""

    key_id: str
    address: str
    agent: int
    chain: int
    expires: int

    def message(self) -> bytes:
        """The EIP-191 message the caller's ID signs."""
        return (
            f"{KEY_HEADER}\nid: {self.key_id}\nagent: {self.agent}\naddress: {self.address}\n"
            f"chain: {self.chain}\nexpires: {self.expires}"
        ).encode()


def check_ttl(ttl: int) -> int:
    """``ttl`` if it is a lifetime an API key may have; :class:`UsageError` if not."""
    if ttl <= 0:
        raise UsageError("an API key needs a positive lifetime")
    if ttl > MAX_TTL:
        raise UsageError(
            f"an API key lives at most {MAX_TTL // 86400} days ({ttl} s asked)",
            hint="Pass --ttl 365d or less, and make a new key when it expires.",
        )
    return ttl


def make_api_key(signer: Signer, agent_asset: int, chain_id: int, ttl: int = DEFAULT_TTL) -> str:
    """An API key for calling the agent ``agent_asset`` on chain ``chain_id`` as
    ``signer``, valid for ``ttl`` seconds (at most :data:`MAX_TTL`), with a fresh id."""
    check_ttl(int(ttl))
    key = ApiKey(
        secrets.token_hex(16),
        signer.address,
        int(agent_asset),
        int(chain_id),
        int(time.time()) + int(ttl),
    )
    fields = {
        "id": key.key_id,
        "address": key.address,
        "agent": key.agent,
        "chain": key.chain,
        "expires": key.expires,
    }
    return sign_token(KEY_PREFIX, signer, key.message(), fields)


def decode_api_key(token: str) -> tuple[ApiKey, str]:
    """What ``token`` states and its signature, unchecked; :class:`AgentAuthFailed` when
    it is not a well-formed key."""
    if not token or not token.startswith(KEY_PREFIX):
        raise AgentAuthFailed(
            "not a sahara API key" if token else "no API key given",
            hint="Make one with 'sahara agent key NAME' and send it as 'Authorization: Bearer'.",
        )
    try:
        data = read_token(KEY_PREFIX, token)
        if "id" not in data:
            raise AgentAuthFailed(
                "the API key has no key id (it was made by an older version and cannot be revoked)",
                hint="Make a new one with 'sahara agent key NAME'.",
            )
        key = ApiKey(
            key_id=str(data["id"]),
            address=str(data["address"]),
            agent=int(data["agent"]),
            chain=int(data["chain"]),
            expires=int(data["expires"]),
        )
        signature = str(data["signature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AgentAuthFailed(f"the API key is malformed ({type(exc).__name__})") from None
    if not KEY_ID_RE.match(key.key_id):
        raise AgentAuthFailed("the API key's id is malformed")
    return key, signature


def verify_api_key(
    token: str,
    *,
    agent_asset: int,
    chain_id: int,
    now: float | None = None,
    revoked: RevokedKeys | None = None,
) -> ApiKey:
    """The key's statement once its signature, agent, chain, expiry, lifetime and (with
    ``revoked``) revocation check out; :class:`AgentAuthFailed` otherwise."""
    key, signature = decode_api_key(token)
    try:
        signed_by = signer_of(key.message(), signature)
    except SignatureInvalid as exc:
        raise AgentAuthFailed(f"the API key's signature is invalid: {exc.message}") from None
    if signed_by.lower() != key.address.lower():
        raise AgentAuthFailed("the API key is not signed by the address it names")
    if key.chain != chain_id:
        raise AgentAuthFailed(f"the API key is for chain {key.chain}, this is chain {chain_id}")
    if key.agent != agent_asset:
        raise AgentAuthFailed(
            f"the API key is for agent asset {key.agent}, this server is asset {agent_asset}"
        )
    at = time.time() if now is None else now
    if key.expires <= at:
        raise AgentAuthFailed(
            "the API key has expired", hint="Make a new one with 'sahara agent key NAME'."
        )
    if key.expires > at + MAX_TTL + CLOCK_SKEW:
        raise AgentAuthFailed(
            f"the API key is valid for longer than {MAX_TTL // 86400} days",
            hint="Make one with 'sahara agent key NAME --ttl 365d' or less.",
        )
    if revoked is not None and revoked.is_revoked(key.key_id, signed_by):
        raise AgentKeyRevoked(f"the API key {key.key_id} has been revoked")
    return ApiKey(key.key_id, signed_by, key.agent, key.chain, key.expires)


#: The address of a revocation that holds for a key id whoever's key states it.
EVERY_ADDRESS = "*"


class RevokedKeys:
    """Revoked keys of one agent, in ``<agent dir>/revoked_keys.sqlite``, each a key id
    and the address whose key it is.

    Anyone may make a key that states any id (ids are shown and logged), so a key
    revoked at the server ends only that address's key with that id. The owner's local
    ``agent key revoke ID --agent NAME`` revokes the id for every address
    (:data:`EVERY_ADDRESS`), as do the rows of a store made before addresses counted.
    Each revocation is one committed SQLite transaction, so it holds across restarts
    and is seen at once by every process that reads the file. A row is dropped once
    the key it names has expired (no expired key is accepted anyway).
    """

    def __init__(self, agent_dir: Path) -> None:
        from sahara_cli.fsutil import ensure_private_dir

        ensure_private_dir(agent_dir)
        self.path = agent_dir / REVOKED_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        with self._lock, self._db:
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS revocations (key_id TEXT NOT NULL,"
                " address TEXT NOT NULL, expires INTEGER NOT NULL, revoked_at INTEGER NOT NULL,"
                " PRIMARY KEY (key_id, address))"
            )
            old = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'revoked'"
            ).fetchone()
            if old is not None:  # a store of ids alone: each id held for every address
                self._db.execute(
                    "INSERT OR IGNORE INTO revocations (key_id, address, expires, revoked_at)"
                    " SELECT key_id, ?, expires, revoked_at FROM revoked",
                    (EVERY_ADDRESS,),
                )
                self._db.execute("DROP TABLE revoked")
        with contextlib.suppress(OSError):
            self.path.chmod(0o600)

    def revoke(
        self, key_id: str, *, address: str | None = None, expires: int | None = None
    ) -> bool:
        """Revoke ``address``'s key ``key_id`` (without ``address``: the id, whoever's
        key states it) until ``expires`` (default the longest a key can live); False
        when it was revoked already."""
        if not KEY_ID_RE.match(key_id):
            raise UsageError(
                f"{key_id!r} is not an API key id (32 hex digits)",
                hint="'sahara agent key' prints a key's id; a whole key works too.",
            )
        now = int(time.time())
        until = expires if expires is not None else now + MAX_TTL + CLOCK_SKEW
        who = address.lower() if address else EVERY_ADDRESS
        with self._lock, self._db:
            self._db.execute("DELETE FROM revocations WHERE expires < ?", (now - CLOCK_SKEW,))
            if self._revoked(key_id, who):
                return False
            self._db.execute(
                "INSERT INTO revocations (key_id, address, expires, revoked_at)"
                " VALUES (?, ?, ?, ?)",
                (key_id, who, max(until, now), now),
            )
            return True

    def is_revoked(self, key_id: str, address: str) -> bool:
        """Whether ``address``'s key ``key_id`` is revoked."""
        with self._lock:
            return self._revoked(key_id, address.lower())

    def _revoked(self, key_id: str, who: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM revocations WHERE key_id = ? AND address IN (?, ?)",
            (key_id, who, EVERY_ADDRESS),
        ).fetchone()
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def revoke_at_server(url: str, token: str, *, timeout: float = 30.0) -> dict[str, object]:
    """Revoke ``token`` at the served agent whose API is at ``url`` (``.../v1``): the
    server checks the key and keeps its id as revoked. The server's refusal comes back as
    the error it names (:class:`AgentAuthFailed` for a key it does not take)."""
    import httpx

    from sahara_cli.errors import AgentError, AgentNoLicense, AgentServerUnreachable

    decode_api_key(token)  # a well-formed key, before anything is sent
    endpoint = url.rstrip("/") + "/keys/revoke"
    try:
        reply = httpx.post(endpoint, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise AgentServerUnreachable(f"no served agent answered at {endpoint}: {exc}") from None
    try:
        data = reply.json()
    except ValueError:
        data = None
    if reply.status_code == 200 and isinstance(data, dict):
        return data
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("code") == AgentKeyRevoked.code:
        return {"revoked": True, "key_id": decode_api_key(token)[0].key_id, "already": True}
    if not isinstance(error, dict):
        raise AgentError(f"{endpoint} answered HTTP {reply.status_code}, not a served agent")
    message = str(error.get("message", "refused"))
    hint = error.get("hint")
    kinds: dict[str, type[AgentError]] = {
        AgentKeyRevoked.code: AgentKeyRevoked,
        AgentAuthFailed.code: AgentAuthFailed,
        AgentNoLicense.code: AgentNoLicense,
    }
    kind = kinds.get(str(error.get("code")), AgentError)
    raise kind(f"{endpoint}: {message}", hint=str(hint) if hint else None)


# --- the flows of ``sahara agent key`` ---------------------------------------------------


def agent_asset_id(home_root: Path, agent: str) -> int:
    """The asset of ``agent``: an asset id (``12``, ``#12``) or an agent of this home,
    which must be published."""
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.errors import AgentError

    raw = agent.strip().removeprefix("#")
    if raw.isdigit():
        if int(raw) == 0:
            raise UsageError(f"agent asset id must be a positive number, got {agent!r}")
        return int(raw)
    spec = AgentStore(home_root).load(agent)
    if spec.asset_id is None:
        raise AgentError(
            f"agent {agent!r} is not published",
            hint=f"Publish it with 'sahara agent publish {agent} --price-per-call X'.",
        )
    return spec.asset_id


def served_agent(protocol: Protocol, asset_id: int) -> Asset:
    """The asset ``asset_id``, which must be an agent (:class:`UsageError` if not)."""
    found = protocol.asset(asset_id)
    if found.kind != "agent":
        raise UsageError(f"asset {asset_id} is a {found.kind}, not an agent")
    return found


def make_agent_key(
    home_root: Path, agent: str, protocol: Protocol, signer: Signer, ttl: int = DEFAULT_TTL
) -> AgentKeyMade:
    """An API key for calling ``agent`` (see :func:`agent_asset_id`) as ``signer``, with
    the calls left on the caller's API licenses of it."""
    from sahara_cli.agent.results import AgentKeyMade

    check_ttl(ttl)
    asset_id = agent_asset_id(home_root, agent)
    found = served_agent(protocol, asset_id)
    chain_id = protocol.node.chain_id()
    token = make_api_key(signer, asset_id, chain_id, ttl)
    made, _signature = decode_api_key(token)
    licenses = protocol.api_licenses(signer.address, asset_id)
    return AgentKeyMade(
        api_key=token,
        key_id=made.key_id,
        expires_at=made.expires,
        address=signer.address,
        asset_id=asset_id,
        agent=found.name,
        chain_id=chain_id,
        ttl_s=ttl,
        calls_left=sum(lic.calls for lic in licenses),
        owner=found.owner.lower() == signer.address.lower(),
    )


def revoke_agent_key(
    home_root: Path | None, key: str, *, url: str | None = None, agent: str | None = None
) -> AgentKeyRevocation:
    """Revoke an API key at the server whose API is at ``url`` (``key`` is the whole key,
    which proves it is the caller's), or in the agent ``agent`` of this home, whose server
    reads the revocations on every call (``key`` is the key or its id, ended for every
    address; it needs ``home_root``)."""
    from sahara_cli.agent.results import AgentKeyRevocation
    from sahara_cli.agent.spec import AgentStore

    if (url is None) == (agent is None):
        raise UsageError(
            "say where to revoke the key: --url (the server's API) or --agent (an agent "
            "of this home)",
            hint="A caller: --url http://HOST:PORT/v1. The agent's owner: --agent NAME.",
        )
    if url is not None:
        if not key.startswith(KEY_PREFIX):
            raise UsageError("--url needs the whole key (it proves the key is yours)")
        data = revoke_at_server(url, key)
        return AgentKeyRevocation(
            revoked=bool(data.get("revoked", True)),
            key_id=str(data["key_id"]),
            already=bool(data.get("already", False)),
            url=url,
        )
    if agent is None or home_root is None:
        raise UsageError("revoking a key in an agent of this home needs the home")
    store = AgentStore(home_root)
    store.load(agent)  # the agent exists
    expires = None
    key_id = key.strip()
    if key_id.startswith(KEY_PREFIX):
        stated, _signature = decode_api_key(key_id)
        key_id, expires = stated.key_id, stated.expires
    revoked = RevokedKeys(store.dir(agent))
    try:
        # The owner ends the id whoever's key states it (no address).
        fresh = revoked.revoke(key_id, expires=expires)
    finally:
        revoked.close()
    return AgentKeyRevocation(revoked=True, key_id=key_id, already=not fresh, agent=agent)
