"""License-gated key release: the owner's vault server and the licensee's client.

The owner runs ``sahara vault serve``. A licensee asks for an asset's data key with a
request signed by its Sahara ID (EIP-191)::

    sahara vault key request
    audience: http://127.0.0.1:8547
    asset: 7
    cid: bafybei…
    address: 0x…
    chain: 31313
    issued: 1764123456
    nonce: 9f0c…

The audience is the URL the client sent the request to (scheme, host, port and path,
normalised by :func:`audience_of`). A server takes only requests signed for one of its
own URLs, so a request captured on its way to one server cannot be replayed to another.

A request names its purpose in the text it signs, so one signed for one door does not
open another: the key request above releases a wrapped key (``vault serve``), while
``sahara mcp serve``'s ``vault_read``, which returns plaintext, takes only a read
request, whose text starts ``sahara vault read request`` and has the line
``purpose: mcp-read`` after it (the other lines are the same, the audience optional). A
key request seen on the wire cannot be replayed to ``vault_read``, nor a read request
to ``vault serve``.

The server checks the request's shape and bounds, its chain, audience and time before
it recovers the public key from the signature; it then limits each address's rate,
claims the nonce in SQLite (:mod:`sahara_cli.vault.replay`: no replay after a restart
or against a second server of the home), and asks the chain whether that address may
read the asset (the owner, an address the owner shared it with, or a Full-Access,
Long-term or Partnership license valid by both the last block's time and the wall
clock: an API license pays for metered calls, not for the data). Only then does it wrap
the asset's data key to the recovered public key. Each request is checked against the
chain again, so a license that has expired releases nothing more. The server also
serves the asset's blocks (ciphertext) as a CAR stream; the client checks every block
against its CID.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    SaharaError,
    SignatureInvalid,
    VaultError,
    VaultItemNotFound,
    VaultLicenseExpired,
    VaultNoLicense,
    VaultRateLimited,
    VaultRequestInvalid,
)
from sahara_cli.vault.keyclient import KeyClient
from sahara_cli.vault.ratelimit import rate_key

if TYPE_CHECKING:
    from aiohttp import web

    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.db import Item
    from sahara_cli.vault.replay import NonceStore

HEADER = "sahara vault key request"
MAX_SKEW = 300  # seconds a signed request stays valid
DATA_KINDS = ("full", "long-term", "partnership")
#: The purpose of a request for a wrapped data key (``vault serve``).
KEY_RELEASE = "key-release"
#: The purpose of a request for an item's plaintext (``mcp serve``'s ``vault_read``).
MCP_READ = "mcp-read"
#: The first line of the signed text of each purpose.
HEADERS = {KEY_RELEASE: HEADER, MCP_READ: "sahara vault read request"}

# Bounds of a request's fields, checked before its signature (docs/vault.md lists them).
NONCE_MIN = 16  # hex digits: 64 bits
NONCE_MAX = 64
AUDIENCE_MAX = 256
CID_MAX = 128
ID_MAX = 2**63  # asset and chain ids
MAX_BODY = 8 * 1024  # bytes of a POST /v1/keys body
LOG_EVERY = 10.0  # seconds between log lines counting rate-limited requests
_HEX = re.compile(r"[0-9a-fA-F]+")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_CID = re.compile(r"[A-Za-z0-9]+")
_SIGNATURE = re.compile(r"(0x)?[0-9a-fA-F]{130}")
_AUDIENCE = re.compile(r"https?://[\x21-\x7e]+")


def audience_of(url: str) -> str:
    """A server URL as requests name it: lower-case scheme and host, the port always
    written, no trailing slash, no query (``http://Host/`` -> ``http://host:80``)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise VaultRequestInvalid(f"{url!r} is not a server URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise VaultRequestInvalid(f"{url!r} is not an http:// or https:// URL")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = port or (443 if scheme == "https" else 80)
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_ANY_INTERFACE = ("0.0.0." + "0", "::", "")  # a listen address, not a name to reach it by


def server_audiences(listen: str, public_url: str | None = None) -> frozenset[str]:
    """The audiences a server on ``listen`` (HOST:PORT) answers to: ``http://`` plus its
    address, the loopback names of its port when it listens on loopback or on every
    interface, and ``public_url``."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]").lower()
    names = {f"[{host}]" if ":" in host else host}
    if host in ("127.0.0.1", "localhost", "::1", *_ANY_INTERFACE):
        names |= set(_LOOPBACK)
    names -= {"[::]", "", *_ANY_INTERFACE}
    out = {audience_of(f"http://{name}:{port}") for name in names}
    if public_url:
        out.add(audience_of(public_url))
    return frozenset(out)


@dataclass(frozen=True)
class KeyRequest:
    asset: int
    cid: str
    address: str
    chain: int
    issued: int
    nonce: str
    purpose: str = KEY_RELEASE
    #: The URL of the server the request is for (see :func:`audience_of`).
    audience: str = ""

    def message(self) -> bytes:
        """The EIP-191 text the caller signs; it names the purpose and the audience."""
        if self.purpose not in HEADERS:
            raise VaultRequestInvalid(f"no such request purpose {self.purpose!r}")
        purpose = "" if self.purpose == KEY_RELEASE else f"\npurpose: {self.purpose}"
        audience = f"\naudience: {self.audience}" if self.audience else ""
        return (
            f"{HEADERS[self.purpose]}{purpose}{audience}\nasset: {self.asset}\n"
            f"cid: {self.cid}\naddress: {self.address}\nchain: {self.chain}\n"
            f"issued: {self.issued}\nnonce: {self.nonce}"
        ).encode()

    @classmethod
    def new(
        cls,
        signer: Signer,
        asset: int,
        cid: str,
        chain: int,
        purpose: str = KEY_RELEASE,
        *,
        audience: str = "",
    ) -> KeyRequest:
        """A fresh request; a key request names the URL of the server it goes to."""
        if purpose == KEY_RELEASE and not audience:
            raise VaultRequestInvalid("a key request names the server it is for (its audience)")
        return cls(
            asset,
            cid,
            signer.address,
            chain,
            int(time.time()),
            os.urandom(16).hex(),
            purpose,
            audience_of(audience) if audience else "",
        )

    def signed(self, signer: Signer) -> dict[str, Any]:
        body: dict[str, Any] = {
            "asset": self.asset,
            "cid": self.cid,
            "address": self.address,
            "chain": self.chain,
            "issued": self.issued,
            "nonce": self.nonce,
            "purpose": self.purpose,
        }
        if self.audience:
            body["audience"] = self.audience
        body["signature"] = "0x" + signer.sign_message(self.message()).hex()
        return body

    @classmethod
    def parse(cls, body: Any, purpose: str = KEY_RELEASE) -> tuple[KeyRequest, str]:
        """The request and its signature, after checking the shape and bounds of every
        field (cheap: no signature is recovered yet)."""
        if not isinstance(body, dict):
            raise VaultRequestInvalid("key request must be a JSON object")
        claimed = body.get("purpose", purpose)
        if claimed != purpose:
            raise VaultRequestInvalid(
                f"the request is signed for {str(claimed)[:40]!r}, not {purpose!r}",
                hint=_PURPOSE_HINTS.get(purpose),
            )
        try:
            request = cls(
                asset=_id_field(body, "asset"),
                cid=_text_field(body, "cid", _CID, 1, CID_MAX),
                address=_text_field(body, "address", _ADDRESS, 42, 42),
                chain=_id_field(body, "chain"),
                issued=_int_field(body, "issued", 0, 2**40),
                nonce=_text_field(body, "nonce", _HEX, NONCE_MIN, NONCE_MAX),
                purpose=purpose,
                audience=_audience_field(body, purpose),
            )
            signature = _text_field(body, "signature", _SIGNATURE, 130, 132)
        except KeyError as exc:
            raise VaultRequestInvalid(f"key request is missing the field {exc}") from None
        return request, signature

    def recover(self, signature: str) -> bytes:
        """The public key that signed this request; it must be ``address``'s."""
        from sahara_cli.identity.keys import (
            address_of_public_key,
            personal_message_hash,
            recover_public_key,
        )

        try:
            public_key = recover_public_key(personal_message_hash(self.message()), signature)
        except SignatureInvalid as exc:
            raise VaultRequestInvalid(f"key request signature is invalid: {exc.message}") from None
        if address_of_public_key(public_key).lower() != self.address.lower():
            raise VaultRequestInvalid(
                f"key request is not signed by the address it names (as a {self.purpose} request)",
                hint=_PURPOSE_HINTS.get(self.purpose),
            )
        return public_key

    @classmethod
    def verify(cls, body: Any, purpose: str = KEY_RELEASE) -> tuple[KeyRequest, bytes]:
        """Parse a request signed for ``purpose``; returns it and the signer's public
        key. A request for another purpose is refused, whatever its signature."""
        request, signature = cls.parse(body, purpose)
        return request, request.recover(signature)


def _int_field(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < high:
        raise VaultRequestInvalid(
            f"key request field {name!r} must be a whole number from {low} below {high}"
        )
    return value


def _id_field(body: dict[str, Any], name: str) -> int:
    return _int_field(body, name, 1, ID_MAX)


def _text_field(
    body: dict[str, Any], name: str, pattern: re.Pattern[str], low: int, high: int
) -> str:
    value = body[name]
    if not isinstance(value, str) or not low <= len(value) <= high or not pattern.fullmatch(value):
        size = f"{low}" if low == high else f"{low} to {high}"
        raise VaultRequestInvalid(
            f"key request field {name!r} must be a string of {size} characters "
            f"({_SHAPES.get(name, 'letters and digits')})"
        )
    return value


def _audience_field(body: dict[str, Any], purpose: str) -> str:
    if "audience" not in body and purpose != KEY_RELEASE:
        return ""
    if "audience" not in body:
        raise VaultRequestInvalid(
            "key request names no audience (the URL of the server it is for)",
            hint="Upgrade the client: key requests now name the server they are for.",
        )
    return _text_field(body, "audience", _AUDIENCE, 8, AUDIENCE_MAX)


_SHAPES = {
    "address": "0x and 40 hex digits",
    "nonce": "hex digits",
    "signature": "0x and 130 hex digits",
    "audience": "an http:// or https:// URL",
}

_PURPOSE_HINTS = {
    KEY_RELEASE: "Key requests for 'vault serve' are signed as 'sahara vault key request'.",
    MCP_READ: "vault_read takes a read request: the signed text starts 'sahara vault read "
    "request' and names 'purpose: mcp-read'; a key request for 'vault serve' is refused.",
}


def check_access(proto: Protocol, asset_id: int, user: str, owner: str) -> int:
    """0 when ``user`` owns the asset, else the latest expiry of a data license it holds.

    A license has run out once either clock passes its expiry: the last block's time,
    or the wall clock (a chain that mines only on transactions may make no block for
    days, and its last block's time stands still meanwhile).

    Raises :class:`VaultLicenseExpired` when its licenses have all run out and
    :class:`VaultNoLicense` when it never held one.
    """
    if user.lower() == owner.lower():
        return 0
    block = int(proto.node.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    now = max(block, int(time.time()))
    best = 0
    for kind in DATA_KINDS:
        best = max(best, proto.access_until(asset_id, user, kind))
    if best > now:
        return best
    if best:
        raise VaultLicenseExpired(
            f"the license of {user} to asset {asset_id} expired at {_when(best)}",
            details={"asset": asset_id, "expired_at": best},
        )
    hint = None
    if proto.has_access(asset_id, user, "api"):
        hint = "An API license pays for metered calls; the data needs full-access or long-term."
    raise VaultNoLicense(
        f"{user} holds no license to asset {asset_id}", hint=hint, details={"asset": asset_id}
    )


def _when(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


# -- the server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeLimits:
    """How much one caller may ask of ``vault serve`` (docs/vault.md lists the defaults).

    Token buckets: ``per_ip`` requests a second from one remote IP (any endpoint) and
    ``per_address`` key requests a second from one Sahara address (counted once its
    signature checks out), each with bursts of twice as many. ``pending`` is how many
    key requests may wait for their checks at once before the server answers 503.
    """

    per_ip: float = 20.0
    per_address: float = 5.0
    pending: int = 256
    workers: int = 8


class KeyServer:
    """The request handling of ``sahara vault serve`` (an aiohttp application).

    ``audiences``: the URLs this server answers to (:func:`server_audiences`); a key
    request signed for another is refused. ``nonces``: where seen nonces are claimed
    (``<vault>/nonces.db`` unless given). The chain is read through one client made by
    ``proto_factory`` on first use, outside the lock that guards the catalogue.
    """

    def __init__(
        self,
        vault: Vault,
        owner: Signer,
        proto_factory: Callable[[], Protocol],
        *,
        chain_id: int,
        log: Callable[[str], None] = lambda _m: None,
        audiences: Iterable[str] | None = None,
        limits: ServeLimits | None = None,
        nonces: NonceStore | None = None,
    ) -> None:
        from sahara_cli.vault.ratelimit import RateLimiter
        from sahara_cli.vault.replay import NonceStore

        self.vault = vault
        self.owner = owner
        self.owner_address = owner.address
        self.proto_factory = proto_factory
        self.chain_id = chain_id
        self.log = log
        self.audiences = (
            frozenset(audience_of(a) for a in audiences) if audiences is not None else None
        )
        self.limits = limits or ServeLimits()
        self.nonces = nonces or NonceStore(vault.root / "nonces.db")
        self._by_ip = RateLimiter(self.limits.per_ip)
        self._by_address = RateLimiter(self.limits.per_address)
        self._lock = threading.Lock()  # the catalogue's one connection
        self._proto: Protocol | None = None
        self._proto_lock = threading.Lock()
        self._pending = 0
        self._executor: Any = None
        self._limited = 0
        self._limited_logged = -LOG_EVERY

    def proto(self) -> Protocol:
        """The one chain client of this server (made on first use, then shared)."""
        with self._proto_lock:
            if self._proto is None:
                self._proto = self.proto_factory()
            return self._proto

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.nonces.close()

    def app(self) -> web.Application:
        from aiohttp import web

        @web.middleware
        async def check_host(
            request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]
        ) -> Any:
            return await self._check_host(request, handler)

        app = web.Application(client_max_size=MAX_BODY, middlewares=[check_host])
        app.router.add_get("/v1/info", self._info)
        app.router.add_post("/v1/keys", self._keys)
        app.router.add_get("/v1/dag/{cid}", self._dag)
        return app

    def _host_allowed(self, host: str) -> bool:
        """Whether a Host header names this server: ``name:port`` of one of its
        audiences, or a bare ``name`` of an audience on its scheme's default port (the
        Host a client sends to ``https://name`` through a proxy that ends TLS)."""
        from urllib.parse import urlsplit

        if self.audiences is None:
            return True
        try:
            parts = urlsplit(f"//{host}")
            name, port = (parts.hostname or "").lower(), parts.port
        except ValueError:
            return False
        if not name or "/" in host or "@" in host:
            return False
        for audience in self.audiences:
            aud = urlsplit(audience)
            if aud.hostname != name:
                continue
            default = 443 if aud.scheme == "https" else 80
            if port == aud.port or (port is None and aud.port == default):
                return True
        return False

    def _origin_refused(self, request: web.Request) -> str | None:
        """Why the request's Host or Origin is not this server's (DNS rebinding, a web
        page of another site), or None."""
        if self.audiences is None:
            return None
        host = request.headers.get("Host", "")
        if not self._host_allowed(host):
            return f"this server does not answer to the host {host[:80]!r}"
        origin = request.headers.get("Origin")
        if origin is not None:
            try:
                allowed = audience_of(origin) in self.audiences
            except VaultRequestInvalid:
                allowed = False
            if not allowed:
                return f"requests from the web origin {origin[:80]!r} are not accepted"
        return None

    async def _check_host(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]
    ) -> Any:
        reason = self._origin_refused(request)
        if reason is not None:
            return self._error(
                VaultRequestInvalid(
                    reason, hint="Reach the server by its own address or vault.public_url."
                ),
                403,
            )
        return await handler(request)

    async def _info(self, request: web.Request) -> web.Response:
        from aiohttp import web

        from sahara_cli import __version__

        limited = self._limit_ip(request)
        if limited is not None:
            return limited
        return web.json_response(
            {"owner": self.owner_address, "chain_id": self.chain_id, "version": __version__}
        )

    def _error(self, exc: SaharaError, status: int) -> web.Response:
        from aiohttp import web

        if isinstance(exc, VaultRateLimited):
            self._note_limited()  # a flood must not become a flood of log lines
        else:
            self.log(f"refused: {exc.code}: {exc.message}")
        headers = {}
        if "retry_after" in exc.details:
            headers["Retry-After"] = str(exc.details["retry_after"])
        return web.json_response({"error": exc.to_dict()}, status=status, headers=headers)

    def _note_limited(self) -> None:
        """Count a request refused over its rate; log the count at most every 10 s."""
        self._limited += 1
        now = time.monotonic()
        if now - self._limited_logged >= LOG_EVERY:
            self.log(f"refused {self._limited} requests over their rate limits")
            self._limited, self._limited_logged = 0, now

    def _limit_ip(self, request: web.Request) -> web.Response | None:
        wait = self._by_ip.take(rate_key(request.remote or ""))
        if not wait:
            return None
        return self._error(_rate_limited(f"requests from {request.remote}", wait), 429)

    def _fresh(self, request: KeyRequest) -> None:
        if abs(time.time() - request.issued) > MAX_SKEW:
            raise VaultRequestInvalid(
                "key request is stale or from the future (clocks differ by more than 5 minutes)"
            )

    def _claim(self, request: KeyRequest) -> None:
        key = f"{request.purpose}:{request.address.lower()}:{request.nonce.lower()}"
        if not self.nonces.claim(key, request.issued + MAX_SKEW + 1):
            raise VaultRequestInvalid("key request was already used (replayed nonce)")

    def release(self, body: Any) -> dict[str, Any]:
        """Check one signed key request and return the data key wrapped to its signer."""
        return self._release(body)

    def check(self, body: Any, purpose: str = KEY_RELEASE) -> tuple[Item, int]:
        """Every check of a request signed for ``purpose`` (shape, chain, audience,
        freshness, signature, no replay, the asset is this ID's, and the caller's access
        on chain): the item and the caller's access expiry (0: unlimited)."""
        item, until, _request, _public_key = self._check(body, purpose, limit=False)
        return item, until

    def _check(
        self, body: Any, purpose: str, *, limit: bool = True
    ) -> tuple[Item, int, KeyRequest, bytes]:
        request, signature = KeyRequest.parse(body, purpose)
        if request.chain != self.chain_id:
            raise VaultRequestInvalid(
                f"key request is for chain {request.chain}; this server is on {self.chain_id}"
            )
        # A key request always names its audience (parse checks); a read request may.
        audience = audience_of(request.audience) if request.audience else None
        if self.audiences is not None and audience and audience not in self.audiences:
            raise VaultRequestInvalid(
                f"key request is signed for {request.audience}, not for this server",
                hint="This server answers as " + ", ".join(sorted(self.audiences)) + ".",
            )
        self._fresh(request)
        public_key = request.recover(signature)
        if limit:
            wait = self._by_address.take(request.address.lower())
            if wait:
                raise _rate_limited(f"key requests of {request.address}", wait)
        self._claim(request)
        with self._lock:
            item = self.vault.db.by_asset(request.asset)
        if item is None or item.origin != "added":
            raise VaultItemNotFound(f"asset {request.asset} is not served here")
        if item.cid != request.cid:
            raise VaultRequestInvalid(f"asset {request.asset} is {item.cid}, not {request.cid}")
        proto = self.proto()
        asset = proto.asset(request.asset)
        if asset.owner.lower() != self.owner_address.lower():
            raise VaultItemNotFound(f"asset {request.asset} is not owned by this server's ID")
        with self._lock:
            granted = self.vault.db.is_granted(item.id, request.address)
        until = 0 if granted else check_access(proto, request.asset, request.address, asset.owner)
        return item, until, request, public_key

    def _release(self, body: Any) -> dict[str, Any]:
        from sahara_cli.vault import crypto

        item, until, request, public_key = self._check(body, KEY_RELEASE)
        with self._lock:
            key = self.vault.data_key(item, self.owner.private_key)
        if key is None:
            raise VaultError(f"asset {request.asset} is public; fetch it without a key")
        wrapped = crypto.wrap_key(key, public_key)
        self.log(f"released the key of asset {request.asset} to {request.address}")
        return {
            "asset": request.asset,
            "cid": item.cid,
            "commitment": item.commitment,
            "name": item.name,
            "kind": item.kind,
            "size": item.size,
            "wrapped_key": wrapped.hex(),
            "access_until": until,
        }

    async def _keys(self, request: web.Request) -> web.Response:
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        from aiohttp import web

        limited = self._limit_ip(request)
        if limited is not None:
            return limited
        if request.content_length is not None and request.content_length > MAX_BODY:
            return self._error(_too_large(), 413)
        try:
            body = await request.json()
        except web.HTTPRequestEntityTooLarge:
            return self._error(_too_large(), 413)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return self._error(VaultRequestInvalid("key request body is not JSON"), 400)
        if self._pending >= self.limits.pending:
            return self._error(
                VaultRateLimited(
                    "the vault server is busy checking other requests",
                    details={"retry_after": 1},
                ),
                503,
            )
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.limits.workers, "vault-serve")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, self.release, body)
        except (VaultNoLicense, VaultLicenseExpired, VaultRequestInvalid) as exc:
            return self._error(exc, 403)
        except VaultRateLimited as exc:
            return self._error(exc, 429)
        except VaultItemNotFound as exc:
            return self._error(exc, 404)
        except SaharaError as exc:
            return self._error(exc, 502)
        except Exception as exc:  # a bug must still answer in JSON, and be logged
            self.log(f"internal error: {type(exc).__name__}: {exc}")
            return self._error(VaultError(f"internal error: {type(exc).__name__}"), 500)
        finally:
            self._pending -= 1
        return web.json_response(result)

    async def _dag(self, request: web.Request) -> web.StreamResponse:
        """Every block of a served item's DAG as a CAR v1 stream."""
        from aiohttp import web

        from sahara_cli.vault import car, unixfs
        from sahara_cli.vault.cid import CID

        limited = self._limit_ip(request)
        if limited is not None:
            return limited
        text = request.match_info["cid"]
        with self._lock:
            known = self.vault.db.by_cid(text)
        if known is None:
            return self._error(VaultItemNotFound(f"{text[:CID_MAX]} is not served here"), 404)
        root = CID.decode(text)
        response = web.StreamResponse(headers={"Content-Type": "application/vnd.ipld.car"})
        await response.prepare(request)
        buffer = _Buffer()
        car.write_car(buffer, [root], [])
        for cid, data in unixfs.walk(root, self.vault.store.get):
            car.write_section(buffer, cid, data)
            if buffer.size >= 1 << 20:
                await response.write(buffer.take())
        await response.write(buffer.take())
        await response.write_eof()
        return response


def _rate_limited(what: str, wait: float) -> VaultRateLimited:
    retry = max(1, int(wait + 0.999))
    return VaultRateLimited(f"too many {what}; retry in {retry} s", details={"retry_after": retry})


def _too_large() -> VaultRequestInvalid:
    return VaultRequestInvalid(f"key request body is over {MAX_BODY} bytes")


class _Buffer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts = []
        self.size = 0
        return out


__all__ = [
    "HEADER",
    "KEY_RELEASE",
    "MCP_READ",
    "KeyClient",
    "KeyRequest",
    "KeyServer",
    "ServeLimits",
    "audience_of",
    "check_access",
    "server_audiences",
]
