"""License-gated key release: the owner's vault server and the licensee's client.

The owner runs ``sahara vault serve``. A licensee asks for an asset's data key with a
request signed by its Sahara ID (EIP-191)::

    sahara vault key request
    asset: 7
    cid: bafybei…
    address: 0x…
    chain: 31313
    issued: 1764123456
    nonce: 9f0c…

A request names its purpose in the text it signs, so one signed for one door does not
open another: the key request above releases a wrapped key (``vault serve``), while
``sahara mcp serve``'s ``vault_read``, which returns plaintext, takes only a read
request, whose text starts ``sahara vault read request`` and has the line
``purpose: mcp-read`` after it (the other lines are the same). A key request seen on the
wire cannot be replayed to ``vault_read``, nor a read request to ``vault serve``.

The server recovers the public key from the signature, refuses stale or replayed
requests, asks the chain whether that address may read the asset (the owner, an address
the owner shared it with, or a valid Full-Access, Long-term or Partnership license:
an API license pays for metered calls, not for the data), then wraps the asset's data
key to the recovered public key. Each request is checked against the chain again, so a
license that has expired releases nothing more. The server also serves the asset's
blocks (ciphertext) as a CAR stream; the client checks every block against its CID.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    SaharaError,
    SignatureInvalid,
    VaultBackendError,
    VaultError,
    VaultItemNotFound,
    VaultLicenseExpired,
    VaultNoLicense,
    VaultRequestInvalid,
    VaultServerUnreachable,
)

if TYPE_CHECKING:
    from aiohttp import web

    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.db import Item

HEADER = "sahara vault key request"
MAX_SKEW = 300  # seconds a signed request stays valid
DATA_KINDS = ("full", "long-term", "partnership")
#: The purpose of a request for a wrapped data key (``vault serve``).
KEY_RELEASE = "key-release"
#: The purpose of a request for an item's plaintext (``mcp serve``'s ``vault_read``).
MCP_READ = "mcp-read"
#: The first line of the signed text of each purpose.
HEADERS = {KEY_RELEASE: HEADER, MCP_READ: "sahara vault read request"}


@dataclass(frozen=True)
class KeyRequest:
    asset: int
    cid: str
    address: str
    chain: int
    issued: int
    nonce: str
    purpose: str = KEY_RELEASE

    def message(self) -> bytes:
        """The EIP-191 text the caller signs; it names the purpose (a key request keeps
        its original text)."""
        if self.purpose not in HEADERS:
            raise VaultRequestInvalid(f"no such request purpose {self.purpose!r}")
        purpose = "" if self.purpose == KEY_RELEASE else f"\npurpose: {self.purpose}"
        return (
            f"{HEADERS[self.purpose]}{purpose}\nasset: {self.asset}\ncid: {self.cid}\n"
            f"address: {self.address}\nchain: {self.chain}\nissued: {self.issued}\n"
            f"nonce: {self.nonce}"
        ).encode()

    @classmethod
    def new(
        cls, signer: Signer, asset: int, cid: str, chain: int, purpose: str = KEY_RELEASE
    ) -> KeyRequest:
        return cls(
            asset, cid, signer.address, chain, int(time.time()), os.urandom(16).hex(), purpose
        )

    def signed(self, signer: Signer) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "cid": self.cid,
            "address": self.address,
            "chain": self.chain,
            "issued": self.issued,
            "nonce": self.nonce,
            "purpose": self.purpose,
            "signature": "0x" + signer.sign_message(self.message()).hex(),
        }

    @classmethod
    def verify(cls, body: Any, purpose: str = KEY_RELEASE) -> tuple[KeyRequest, bytes]:
        """Parse a request signed for ``purpose``; returns it and the signer's public
        key. A request for another purpose is refused, whatever its signature."""
        from sahara_cli.identity.keys import (
            address_of_public_key,
            personal_message_hash,
            recover_public_key,
        )

        if not isinstance(body, dict):
            raise VaultRequestInvalid("key request must be a JSON object")
        claimed = body.get("purpose", purpose)
        if claimed != purpose:
            raise VaultRequestInvalid(
                f"the request is signed for {claimed!r}, not {purpose!r}",
                hint=_PURPOSE_HINTS.get(purpose),
            )
        try:
            request = cls(
                asset=int(body["asset"]),
                cid=str(body["cid"]),
                address=str(body["address"]),
                chain=int(body["chain"]),
                issued=int(body["issued"]),
                nonce=str(body["nonce"]),
                purpose=purpose,
            )
            signature = str(body["signature"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VaultRequestInvalid(
                f"key request is missing or mistypes a field: {exc}"
            ) from None
        try:
            public_key = recover_public_key(personal_message_hash(request.message()), signature)
        except SignatureInvalid as exc:
            raise VaultRequestInvalid(f"key request signature is invalid: {exc.message}") from None
        if address_of_public_key(public_key).lower() != request.address.lower():
            raise VaultRequestInvalid(
                f"key request is not signed by the address it names (as a {purpose} request)",
                hint=_PURPOSE_HINTS.get(purpose),
            )
        return request, public_key


_PURPOSE_HINTS = {
    KEY_RELEASE: "Key requests for 'vault serve' are signed as 'sahara vault key request'.",
    MCP_READ: "vault_read takes a read request: the signed text starts 'sahara vault read "
    "request' and names 'purpose: mcp-read'; a key request for 'vault serve' is refused.",
}


def check_access(proto: Protocol, asset_id: int, user: str, owner: str) -> int:
    """0 when ``user`` owns the asset, else the latest expiry of a data license it holds.

    Raises :class:`VaultLicenseExpired` when its licenses have all run out and
    :class:`VaultNoLicense` when it never held one.
    """
    if user.lower() == owner.lower():
        return 0
    now = int(proto.node.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
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


class KeyServer:
    """The request handling of ``sahara vault serve`` (an aiohttp application)."""

    def __init__(
        self,
        vault: Vault,
        owner: Signer,
        proto_factory: Callable[[], Protocol],
        *,
        chain_id: int,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.vault = vault
        self.owner = owner
        self.owner_address = owner.address
        self.proto_factory = proto_factory
        self.chain_id = chain_id
        self.log = log
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def app(self) -> web.Application:
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/v1/info", self._info)
        app.router.add_post("/v1/keys", self._keys)
        app.router.add_get("/v1/dag/{cid}", self._dag)
        return app

    async def _info(self, _request: web.Request) -> web.Response:
        from aiohttp import web

        from sahara_cli import __version__

        return web.json_response(
            {"owner": self.owner_address, "chain_id": self.chain_id, "version": __version__}
        )

    def _error(self, exc: SaharaError, status: int) -> web.Response:
        from aiohttp import web

        self.log(f"refused: {exc.code}: {exc.message}")
        return web.json_response({"error": exc.to_dict()}, status=status)

    def _fresh(self, request: KeyRequest) -> None:
        now = time.time()
        if abs(now - request.issued) > MAX_SKEW:
            raise VaultRequestInvalid(
                "key request is stale or from the future (clocks differ by more than 5 minutes)"
            )
        for nonce, seen in list(self._seen.items()):
            if now - seen > 2 * MAX_SKEW:
                del self._seen[nonce]
        if request.nonce in self._seen:
            raise VaultRequestInvalid("key request was already used (replayed nonce)")
        self._seen[request.nonce] = now

    def release(self, body: Any) -> dict[str, Any]:
        """Check one signed request and return the data key wrapped to its signer."""
        with self._lock:  # one catalogue connection, shared by the worker threads
            return self._release(body)

    def check(self, body: Any, purpose: str = KEY_RELEASE) -> tuple[Item, int]:
        """Every check of a request signed for ``purpose`` (signature, chain, freshness,
        no replay, the asset is this ID's, and the caller's access on chain): the item
        and the caller's access expiry (0: unlimited)."""
        with self._lock:
            item, until, _request, _public_key = self._check(body, purpose)
        return item, until

    def _check(self, body: Any, purpose: str) -> tuple[Item, int, KeyRequest, bytes]:
        request, public_key = KeyRequest.verify(body, purpose)
        if request.chain != self.chain_id:
            raise VaultRequestInvalid(
                f"key request is for chain {request.chain}; this server is on {self.chain_id}"
            )
        self._fresh(request)
        item = self.vault.db.by_asset(request.asset)
        if item is None or item.origin != "added":
            raise VaultItemNotFound(f"asset {request.asset} is not served here")
        if item.cid != request.cid:
            raise VaultRequestInvalid(f"asset {request.asset} is {item.cid}, not {request.cid}")
        proto = self.proto_factory()
        asset = proto.asset(request.asset)
        if asset.owner.lower() != self.owner_address.lower():
            raise VaultItemNotFound(f"asset {request.asset} is not owned by this server's ID")
        if self.vault.db.is_granted(item.id, request.address):
            until = 0
        else:
            until = check_access(proto, request.asset, request.address, asset.owner)
        return item, until, request, public_key

    def _release(self, body: Any) -> dict[str, Any]:
        from sahara_cli.vault import crypto

        item, until, request, public_key = self._check(body, KEY_RELEASE)
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

        from aiohttp import web

        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return self._error(VaultRequestInvalid("key request body is not JSON"), 400)
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, self.release, body)
        except (VaultNoLicense, VaultLicenseExpired, VaultRequestInvalid) as exc:
            return self._error(exc, 403)
        except VaultItemNotFound as exc:
            return self._error(exc, 404)
        except SaharaError as exc:
            return self._error(exc, 502)
        except Exception as exc:  # a bug must still answer in JSON, and be logged
            self.log(f"internal error: {type(exc).__name__}: {exc}")
            return self._error(VaultError(f"internal error: {type(exc).__name__}"), 500)
        return web.json_response(result)

    async def _dag(self, request: web.Request) -> web.StreamResponse:
        """Every block of a served item's DAG as a CAR v1 stream."""
        from aiohttp import web

        from sahara_cli.vault import car, unixfs
        from sahara_cli.vault.cid import CID

        text = request.match_info["cid"]
        with self._lock:
            known = self.vault.db.by_cid(text)
        if known is None:
            return self._error(VaultItemNotFound(f"{text} is not served here"), 404)
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


# -- the client ------------------------------------------------------------------------------


class KeyClient:
    """Talks to an owner's ``vault serve`` over HTTP."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _fail(self, exc: Exception) -> VaultServerUnreachable:
        return VaultServerUnreachable(f"vault server {self.url} is unreachable: {exc}")

    def info(self) -> dict[str, Any]:
        import httpx

        try:
            response = self._http.get(f"{self.url}/v1/info")
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None
        return self._json(response)

    def request_key(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            response = self._http.post(f"{self.url}/v1/keys", json=body)
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None
        return self._json(response)

    def _json(self, response: Any) -> dict[str, Any]:
        try:
            data = response.json()
        except (ValueError, json.JSONDecodeError):
            raise VaultBackendError(
                f"vault server {self.url} answered HTTP {response.status_code} without JSON"
            ) from None
        if response.status_code >= 400 or "error" in data:
            error = data.get("error") or {}
            raise _remote_error(error, response.status_code, self.url)
        return dict(data)

    def blocks(self, cid: str) -> Iterator[tuple[Any, bytes]]:
        """Stream the blocks of ``cid`` (each checked against its CID by the CAR reader)."""
        import httpx

        from sahara_cli.vault import car

        try:
            with self._http.stream("GET", f"{self.url}/v1/dag/{cid}") as response:
                if response.status_code >= 400:
                    response.read()
                    self._json(response)
                reader = _StreamReader(response.iter_bytes(1 << 20))
                _roots, blocks = car.read_car(reader)
                yield from blocks
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None


class _StreamReader:
    """A minimal binary file over an iterator of byte chunks (for ``read_car``)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            for chunk in self._chunks:
                self._buffer += chunk
            out = bytes(self._buffer)
            self._buffer.clear()
            return out
        while len(self._buffer) < size:
            more = next(self._chunks, None)
            if more is None:
                break
            self._buffer += more
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


_REMOTE = {
    "vault.no_license": VaultNoLicense,
    "vault.license_expired": VaultLicenseExpired,
    "vault.request_invalid": VaultRequestInvalid,
    "vault.not_found": VaultItemNotFound,
}


def _remote_error(error: dict[str, Any], status: int, url: str) -> SaharaError:
    code = str(error.get("code", ""))
    message = str(error.get("message") or f"vault server {url} answered HTTP {status}")
    cls = _REMOTE.get(code)
    if cls is not None:
        return cls(message, hint=error.get("hint"), details=error.get("details"))
    return VaultBackendError(f"vault server {url}: {message}", code=code or None)
