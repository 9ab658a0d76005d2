"""Who may call a served A2A agent, and what each caller may see.

Every request but ``GET`` of the public agent card must be authenticated. The caller
states what it sends in one canonical text::

    sahara a2a request
    method: POST
    host: 127.0.0.1:50123
    path: /
    issued: 1765112345678
    nonce: 3f9c0a...
    body: <SHA-256 of the body, hex>

and proves it with one or both of these headers (plus ``X-Sahara-Issued`` and
``X-Sahara-Nonce`` carrying the two values):

- ``X-Sahara-Team-Mac``: HMAC-SHA256 of the text under the team's secret. A team run
  makes a fresh random secret and hands it to its member processes in their
  environment (``SAHARA_A2A_SECRET``); it never appears on a command line, in a card or
  in a reply. It lets members that hold no unlocked ID (a team run without a password)
  talk to each other.
- ``X-Sahara-Signature``: an EIP-191 signature of the text by a Sahara ID. A request
  signed by the agent's own ID comes from the agent's **owner**; the owner alone gets
  the private parts of a reply (the text of the sources and the tool outputs). The
  owner may call with the signature alone.

A request is refused (401) unless its MAC is valid or the owner signed it, its
``issued`` time (milliseconds) is at most :data:`WINDOW_MS` behind the server's clock,
at most :data:`FUTURE_MS` ahead of it (clock skew) and not before the server started,
and its nonce is new. Nonces live in memory only; the two time bounds make that enough:
a request recorded before a restart was issued before the new process started, and
one dated ahead could outlive a restart by :data:`FUTURE_MS` at most. The host is part
of the text, so a request to one member cannot be replayed to another. Requests are
bounded in size (:data:`MAX_BODY`) and in the time their body may take to arrive, and
must name a Host the agent serves and no foreign Origin (no page in a browser can reach
it through DNS rebinding or a cross-site post).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import threading
import time
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from sahara_cli.errors import (
    AgentAuthFailed,
    AgentRequestInvalid,
    AgentRequestRefused,
    NetworkNotAllowed,
    SaharaError,
    SignatureInvalid,
)

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from sahara_cli.identity.keys import Signer

SECRET_ENV = "SAHARA_A2A_SECRET"  # noqa: S105 - the name of a variable, not a secret
HEADER_ISSUED = "X-Sahara-Issued"
HEADER_NONCE = "X-Sahara-Nonce"
HEADER_MAC = "X-Sahara-Team-Mac"
HEADER_SIGNATURE = "X-Sahara-Signature"
TEXT_HEADER = "sahara a2a request"
MAX_BODY = 256 * 1024  # bytes of one request
BODY_TIMEOUT = 30.0  # seconds for a request's body to arrive
WINDOW_MS = 120_000  # how far a request's issued time may lie behind the server's clock
FUTURE_MS = 5_000  # how far it may lie ahead (clock skew; a restart outlives no more)
MAX_NONCES = 100_000  # nonces remembered at once (each for its window)
MIN_SECRET = 32  # characters of a team secret

_NONCE_RE = re.compile(r"[0-9a-f]{16,64}")
_MAC_RE = re.compile(r"[0-9a-f]{64}")
_ISSUED_RE = re.compile(r"[0-9]{1,15}")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

_SIGN_HINT = "Sign each request with the team secret or the agent's own ID (docs/agents.md)."


def new_secret() -> str:
    """A fresh team secret (256 random bits, hex)."""
    return secrets.token_hex(32)


def check_secret(secret: str) -> bytes:
    """The secret as key bytes; a short one is refused."""
    if len(secret) < MIN_SECRET:
        raise AgentAuthFailed(
            f"the A2A team secret is too short ({len(secret)} characters, at least {MIN_SECRET})",
            hint="Use a random secret such as the output of 'openssl rand -hex 32'.",
        )
    return secret.encode("utf-8")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def require_loopback(host: str, network: bool) -> None:
    """Refuse to listen on ``host`` beyond loopback unless ``network`` says so."""
    if not network and not is_loopback(host):
        raise NetworkNotAllowed(f"refusing to serve A2A on {host}: only loopback without --network")


def canonical_text(
    method: str, host: str, path: str, issued: int, nonce: str, body: bytes
) -> bytes:
    """The text a request's MAC and signature cover."""
    return (
        f"{TEXT_HEADER}\nmethod: {method.upper()}\nhost: {host.lower()}\npath: {path}\n"
        f"issued: {issued}\nnonce: {nonce}\nbody: {hashlib.sha256(body).hexdigest()}"
    ).encode()


def _mac(key: bytes, text: bytes) -> str:
    return hmac.new(key, text, hashlib.sha256).hexdigest()


# --- the caller's side -----------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """What a caller signs its A2A requests with: the team secret, its ID, or both."""

    secret: str | None = None
    signer: Signer | None = None

    def __post_init__(self) -> None:
        if self.secret is not None:
            check_secret(self.secret)

    def __bool__(self) -> bool:
        return self.secret is not None or self.signer is not None

    def headers(self, method: str, host: str, path: str, body: bytes) -> dict[str, str]:
        """The headers that authenticate one request."""
        issued = int(time.time() * 1000)
        nonce = secrets.token_hex(16)
        text = canonical_text(method, host, path, issued, nonce, body)
        out = {HEADER_ISSUED: str(issued), HEADER_NONCE: nonce}
        if self.secret is not None:
            out[HEADER_MAC] = _mac(check_secret(self.secret), text)
        if self.signer is not None:
            out[HEADER_SIGNATURE] = "0x" + self.signer.sign_message(text).hex()
        return out

    def __repr__(self) -> str:  # never print the secret by accident
        secret = "set" if self.secret else None
        return f"Credentials(secret={secret}, signer={self.signer!r})"


class SignedAuth(httpx.Auth):
    """httpx authentication that signs every request with :class:`Credentials`."""

    requires_request_body = True

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        host = request.headers.get("host") or request.url.netloc.decode("ascii")
        path = request.url.raw_path.decode("ascii")
        request.headers.update(
            self.credentials.headers(request.method, host, path, request.content)
        )
        yield request


# --- the server's side -----------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the owner (signed by the agent's ID) or a team member."""

    owner: bool
    address: str | None = None  # the ID that signed, if one did


def caller_of(state: Mapping[str, Any]) -> Caller | None:
    """The caller :class:`A2AGuard` authenticated, from a call context's ``state``
    (the a2a-sdk copies the ASGI scope's ``auth`` there); None for anyone else."""
    caller = state.get("auth")
    return caller if isinstance(caller, Caller) else None


class Verifier:
    """Checks the Host, Origin and credentials of requests to one served agent.

    ``url`` is the agent's advertised URL; ``secret`` the team secret (None: only the
    owner may call); ``owner`` the address of the agent's ID (None: nobody is owner).
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None,
        owner: str | None,
        window_ms: int = WINDOW_MS,
        future_ms: int = FUTURE_MS,
        max_nonces: int = MAX_NONCES,
    ) -> None:
        parts = urlsplit(url)
        self.origin = f"{parts.scheme}://{parts.netloc}".lower()
        self.hosts = allowed_hosts(parts.netloc)
        self.key = check_secret(secret) if secret is not None else None
        self.owner = owner.lower() if owner else None
        self.window_ms = window_ms
        self.future_ms = future_ms
        self.max_nonces = max_nonces
        self.started_ms = int(time.time() * 1000)
        self._nonces: dict[str, int] = {}  # nonce -> when it may be forgotten (ms)
        self._lock = threading.Lock()

    def check_host(self, headers: Mapping[str, str]) -> None:
        host = (headers.get("host") or "").lower()
        if host not in self.hosts:
            raise AgentRequestRefused(f"this agent does not answer for host {host!r}")
        origin = headers.get("origin")
        if origin is not None and origin.lower().rstrip("/") != self.origin:
            raise AgentRequestRefused(f"requests from origin {origin!r} are refused")

    def authenticate(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Caller:
        """The caller of a request whose Host passed :meth:`check_host` (``headers``
        with lower-case names)."""
        issued_text = headers.get(HEADER_ISSUED.lower(), "")
        nonce = headers.get(HEADER_NONCE.lower(), "")
        mac = headers.get(HEADER_MAC.lower())
        signature = headers.get(HEADER_SIGNATURE.lower())
        if mac is None and signature is None:
            raise AgentAuthFailed("the request is not signed", hint=_SIGN_HINT)
        if not _ISSUED_RE.fullmatch(issued_text) or not _NONCE_RE.fullmatch(nonce):
            raise AgentAuthFailed(
                f"the request needs {HEADER_ISSUED} (milliseconds) and {HEADER_NONCE} "
                "(16 to 64 hex digits)",
                hint=_SIGN_HINT,
            )
        issued = int(issued_text)
        text = canonical_text(method, headers.get("host", ""), path, issued, nonce, body)
        mac_ok = False
        if mac is not None:
            if self.key is None:
                raise AgentAuthFailed(
                    "this agent takes no team secret", hint="Sign with the agent's own ID."
                )
            if not _MAC_RE.fullmatch(mac) or not hmac.compare_digest(_mac(self.key, text), mac):
                raise AgentAuthFailed("the request's team MAC is wrong", hint=_SIGN_HINT)
            mac_ok = True
        address = None
        if signature is not None:
            address = _signer_of(text, signature)
        owner = address is not None and self.owner is not None and address.lower() == self.owner
        if not (mac_ok or owner):
            raise AgentAuthFailed(
                "the request is signed by an ID other than the agent's owner", hint=_SIGN_HINT
            )
        self._fresh(issued, nonce)
        return Caller(owner=owner, address=address)

    def _fresh(self, issued: int, nonce: str) -> None:
        now = int(time.time() * 1000)
        if now - issued > self.window_ms or issued - now > self.future_ms:
            raise AgentAuthFailed(
                f"the request is stale or from the future (more than "
                f"{self.window_ms // 1000} s behind or {self.future_ms // 1000} s ahead of "
                "this agent's clock)",
                hint="Check the clocks of both machines.",
            )
        if issued < self.started_ms:
            raise AgentAuthFailed("the request was made before this agent started (a replay)")
        with self._lock:
            if nonce in self._nonces:
                raise AgentAuthFailed("the request was already answered (a replayed nonce)")
            if len(self._nonces) >= self.max_nonces:
                for seen, until in list(self._nonces.items()):
                    if until < now:
                        del self._nonces[seen]
            if len(self._nonces) >= self.max_nonces:
                raise AgentRequestInvalid("too many requests in the replay window; try again later")
            self._nonces[nonce] = issued + self.window_ms


def allowed_hosts(netloc: str) -> frozenset[str]:
    """The Host headers that name the agent at ``netloc``: itself, and when that is a
    loopback address, the other loopback names with the same port."""
    netloc = netloc.lower()
    host, _, port = netloc.rpartition(":")
    if not host or not port.isdigit():
        return frozenset({netloc})
    names = {netloc}
    if is_loopback(host):
        names |= {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
    return frozenset(names)


def _signer_of(text: bytes, signature: str) -> str:
    from sahara_cli.identity.keys import personal_message_hash, recover_hash

    try:
        return recover_hash(personal_message_hash(text), signature)
    except SignatureInvalid as exc:
        raise AgentAuthFailed(f"the request's signature is invalid: {exc.message}") from None


class _BodyError(Exception):
    def __init__(self, status: int, error: SaharaError, rpc_code: int = -32001) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.rpc_code = rpc_code


def _check_json(body: bytes) -> None:
    """A JSON-RPC body is UTF-8 JSON (the SDK would guess other encodings from NULs)."""
    try:
        json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _BodyError(
            400, AgentRequestInvalid("the request body is not UTF-8 JSON"), -32700
        ) from None


class _Disconnected(Exception):
    pass


class A2AGuard:
    """ASGI middleware in front of an A2A app: Host and Origin, then (except for the
    public card) a bounded body and its credentials. The caller goes to the app as the
    scope's ``auth`` (:func:`caller_of`) and ``user`` (tasks are kept per user)."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: Verifier,
        *,
        public: Iterable[str] = (),
        max_body: int = MAX_BODY,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.public = frozenset(public)
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = str(scope["method"])
        try:
            self.verifier.check_host(headers)
            if method in ("GET", "HEAD") and scope["path"] in self.public:
                await self.app(scope, receive, send)
                return
            body = await self._body(headers, receive)
            path = scope.get("raw_path") or scope["path"].encode("utf-8")
            if scope.get("query_string"):
                path += b"?" + scope["query_string"]
            caller = self.verifier.authenticate(method, path.decode("latin-1"), headers, body)
            if method == "POST":
                _check_json(body)
        except _Disconnected:
            return
        except _BodyError as exc:
            await _refuse(send, exc.status, exc.error, exc.rpc_code)
            return
        except AgentRequestRefused as exc:
            await _refuse(send, 403, exc)
            return
        except AgentRequestInvalid as exc:
            await _refuse(send, 429, exc)
            return
        except AgentAuthFailed as exc:
            await _refuse(send, 401, exc)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        from starlette.authentication import SimpleUser

        name = "owner" if caller.owner else (caller.address or "member")
        scope = {**scope, "auth": caller, "user": SimpleUser(name)}
        await self.app(scope, replay, send)

    async def _body(self, headers: Mapping[str, str], receive: Receive) -> bytes:
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            raise _BodyError(413, _too_large(self.max_body))
        chunks: list[bytes] = []
        size = 0

        async def read() -> bytes:
            nonlocal size
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    raise _BodyError(413, _too_large(self.max_body))
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)

        try:
            return await asyncio.wait_for(read(), self.body_timeout)
        except TimeoutError:
            raise _BodyError(
                408,
                AgentRequestInvalid(
                    f"the request's body did not arrive within {self.body_timeout:g} s"
                ),
            ) from None


def _too_large(limit: int) -> AgentRequestInvalid:
    return AgentRequestInvalid(
        f"the request is larger than {limit} bytes", hint="Send a shorter task."
    )


async def _refuse(send: Send, status: int, error: SaharaError, rpc_code: int = -32001) -> None:
    """A JSON-RPC error object (id null) with the house error in ``data``."""
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": rpc_code, "message": error.message, "data": error.to_dict()},
        }
    ).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- what a caller may see -------------------------------------------------------------

#: Fields of a source and of a tool call a caller other than the owner gets.
SOURCE_FIELDS = ("cid", "name", "score", "asset_id", "kind", "private")
TOOL_CALL_FIELDS = ("tool", "ok", "seconds")


def _source_view(source: Mapping[str, Any]) -> dict[str, Any]:
    """A source without its text, and without its name unless it is a public vault
    item (an encrypted item's or a memory note's name can tell what it holds)."""
    out = {k: source[k] for k in SOURCE_FIELDS if k in source}
    if source.get("private") is not False or source.get("kind", "vault") != "vault":
        out.pop("name", None)
    return out


def redact(data: Mapping[str, Any]) -> dict[str, Any]:
    """An answer payload as a caller other than the owner may see it: sources without
    their text (and private ones without their name), tool calls without arguments,
    output or error, peer exchanges with only the class of their error, and the same
    for every peer exchange inside it. ``redacted`` says so."""
    out = dict(data)
    out["sources"] = [_source_view(s) for s in data.get("sources") or [] if isinstance(s, Mapping)]
    out["tool_calls"] = [
        {k: c[k] for k in TOOL_CALL_FIELDS if k in c}
        for c in data.get("tool_calls") or []
        if isinstance(c, Mapping)
    ]
    exchanges = []
    for e in data.get("exchanges") or []:
        if isinstance(e, Mapping):
            inner = e.get("data")
            seen = {**e, "data": redact(inner) if isinstance(inner, Mapping) else {}}
            if e.get("error") is not None:  # a peer's details (paths, its tool's words)
                kind = e.get("error_type")
                seen["error"] = (
                    kind if isinstance(kind, str) and _NAME_RE.fullmatch(kind) else "error"
                )
            exchanges.append(seen)
    out["exchanges"] = exchanges
    out["redacted"] = True
    return out
