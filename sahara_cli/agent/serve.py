"""Serving an agent over an OpenAI-compatible API, metered and paid on chain.

``sahara agent publish`` registers the agent as an asset (kind ``agent``, derived from
its model's asset when the model is registered) and offers an API license at a price
per call. Callers buy calls with ``sahara license buy`` and make an API key with
``sahara agent key``: a token signed by their Sahara ID (EIP-191) that names their
address, the agent's asset, the chain and an expiry. ``sahara agent serve`` answers
``POST /v1/chat/completions`` (streaming too), ``GET /v1/models`` and ``GET /health``.

Each answered call, one at a time (one model, one runner):

1. the key's signature, chain, agent and expiry are checked (else 401);
2. the caller's oldest API license of the agent with calls left is found, from the
   ``Licensed`` events filtered by holder and read live (else 403; the agent's owner is
   served without a license and without metering);
3. the agent prepares the reply (``Agent.prepare``: retrieval and tool calls, without
   the owner's long-term memory or feedback); nothing is sent yet;
4. ``Licensing.meterWith(license, 1, sources)`` moves one call's price from the
   caller's prepayment to the agent's revenue, which the Attribution contract splits
   between the agent's owner, its model's contributors and the contributors of the vault
   assets the answer retrieved (the first four). If it fails (the caller refunded the
   license meanwhile, say), the caller gets the error and no answer;
5. only then is the reply generated and sent (streamed or whole, ``Agent.finish``);
6. the answer's provenance record goes on chain (``Provenance.record``) with the
   license, best effort: the call is paid for, so a failure here is logged, the local
   record stays pending (with the meter transaction and license), and the answer goes
   out with ``record_tx: null`` and a ``record_error``.

The response carries the record and both transactions in a ``sahara`` object (and the
``X-Sahara-*`` headers, for non-streaming calls). Sources are named (content id, name,
asset id, score, kind), never quoted, and tool calls come without their output: the
caller pays for the answer, not for the vault's text.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    AgentAuthFailed,
    AgentError,
    AgentNoLicense,
    NotFoundError,
    NotPermitted,
    PermissionDeniedError,
    ProtocolReverted,
    SaharaError,
    SignatureInvalid,
    UnreachableError,
    UsageError,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from sahara_cli.agent.brain import Agent, Turn
    from sahara_cli.agent.spec import AgentSpec
    from sahara_cli.agent.types import Answer, Message
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import License, Protocol

KEY_PREFIX = "sahara-"
KEY_HEADER = "sahara agent api key"
DEFAULT_TTL = 30 * 86400
#: Default part of each call's revenue that flows to the model and the retrieved assets.
DEFAULT_UPSTREAM_BPS = 2000
MAX_SOURCES = 4


# --- API keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    """What an API key states, signed by ``address``."""

    address: str
    agent: int
    chain: int
    expires: int

    def message(self) -> bytes:
        """The EIP-191 message the caller's ID signs."""
        return (
            f"{KEY_HEADER}\nagent: {self.agent}\naddress: {self.address}\n"
            f"chain: {self.chain}\nexpires: {self.expires}"
        ).encode()


def make_api_key(signer: Signer, agent_asset: int, chain_id: int, ttl: int = DEFAULT_TTL) -> str:
    """An API key for calling the agent ``agent_asset`` on chain ``chain_id`` as
    ``signer``, valid for ``ttl`` seconds. It holds no secret: it proves who calls."""
    if ttl <= 0:
        raise UsageError("an API key needs a positive lifetime")
    key = ApiKey(signer.address, int(agent_asset), int(chain_id), int(time.time()) + int(ttl))
    payload = {
        "address": key.address,
        "agent": key.agent,
        "chain": key.chain,
        "expires": key.expires,
        "signature": "0x" + signer.sign_message(key.message()).hex(),
    }
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return KEY_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def verify_api_key(
    token: str, *, agent_asset: int, chain_id: int, now: float | None = None
) -> ApiKey:
    """The key's statement once its signature, agent, chain and expiry check out;
    :class:`AgentAuthFailed` otherwise."""
    from sahara_cli.identity.keys import personal_message_hash, recover_hash

    if not token or not token.startswith(KEY_PREFIX):
        raise AgentAuthFailed(
            "not a sahara API key" if token else "no API key given",
            hint="Make one with 'sahara agent key NAME' and send it as 'Authorization: Bearer'.",
        )
    body = token[len(KEY_PREFIX) :]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        key = ApiKey(
            address=str(data["address"]),
            agent=int(data["agent"]),
            chain=int(data["chain"]),
            expires=int(data["expires"]),
        )
        signature = str(data["signature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AgentAuthFailed(f"the API key is malformed ({type(exc).__name__})") from None
    try:
        signed_by = recover_hash(personal_message_hash(key.message()), signature)
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
    if key.expires <= (time.time() if now is None else now):
        raise AgentAuthFailed(
            "the API key has expired", hint="Make a new one with 'sahara agent key NAME'."
        )
    return ApiKey(signed_by, key.agent, key.chain, key.expires)


# --- publishing ---------------------------------------------------------------------------


def agent_content_id(spec: AgentSpec, owner: str) -> str:
    """The content id an agent is registered under: a raw CIDv1 of its spec (without
    the asset id) and its owner, so two owners of one template do not collide."""
    import hashlib

    from sahara_cli.agent.record import canonical_json
    from sahara_cli.vault.cid import CID

    document = {
        "agent": spec.model_dump(mode="json", exclude={"asset_id"}),
        "owner": owner.lower(),
    }
    return str(CID.raw(hashlib.sha256(canonical_json(document)).digest()))


def model_asset(home_root: Path, spec: AgentSpec, protocol: Protocol) -> int | None:
    """The asset id of the agent's model on this chain, if it is registered."""
    from sahara_cli.agent.models import ModelStore
    from sahara_cli.errors import AssetNotFound

    entry = ModelStore(home_root).resolve(spec.model.name)
    if entry.asset_id is not None:
        try:
            if protocol.asset(entry.asset_id).cid == entry.cid:
                return entry.asset_id
        except AssetNotFound:
            pass
    return protocol.asset_by_cid(entry.cid) if entry.cid else None


def publish_agent(
    home_root: Path,
    agent: str | AgentSpec,
    protocol: Protocol,
    signer: Signer,
    *,
    price_per_call: int,
    upstream_bps: int = DEFAULT_UPSTREAM_BPS,
    meter: str | None = None,
    uri: str = "",
) -> dict[str, Any]:
    """Register the agent as an asset of kind ``agent`` (once per chain) and offer an
    API license at ``price_per_call`` wei.

    The agent's parent is its model's asset when the model is registered; then
    ``upstream_bps`` of every call's price flows to the model and the assets each answer
    retrieved (without a parent there is no upstream share and the owner keeps it all).
    ``meter`` (default: ``signer``) is the address allowed to meter calls: the ID that
    runs ``agent serve``. The asset id is saved in the agent's spec.
    """
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.errors import AssetNotFound

    if price_per_call < 0:
        raise UsageError("the price per call cannot be negative")
    store = AgentStore(home_root)
    spec = store.load(agent) if isinstance(agent, str) else agent
    out: dict[str, Any] = {"agent": spec.name, "owner": signer.address}
    asset_id = spec.asset_id
    if asset_id is not None:
        try:
            if protocol.asset(asset_id).owner.lower() != signer.address.lower():
                raise NotPermitted(
                    f"agent {spec.name!r} is asset {asset_id}, owned by another ID",
                    hint="Publish with the ID that owns it (--id).",
                )
        except AssetNotFound:
            asset_id = None  # registered on another chain (a reset dev chain)
    parents: list[int] = []
    model = model_asset(home_root, spec, protocol)
    if model is not None:
        parents.append(model)
    out["model_asset"] = model
    if asset_id is None:
        cid = agent_content_id(spec, signer.address)
        existing = protocol.asset_by_cid(cid)
        if existing is not None and protocol.asset(existing).owner == signer.address:
            asset_id = existing
        else:
            commitment = _sha256(spec.model_dump_json(exclude={"asset_id"}).encode())
            asset_id, tx = protocol.register(
                signer,
                kind="agent",
                cid=cid,
                commitment=commitment,
                name=spec.name[:64],
                uri=uri,
                parents=parents,
                upstream_bps=upstream_bps if parents else 0,
            )
            out["register_tx"] = tx.to_dict()
        store.save(spec.model_copy(update={"asset_id": asset_id}), overwrite=True)
    out["asset_id"] = asset_id
    asset = protocol.asset(asset_id)
    out["parents"] = asset.parents
    out["upstream_bps"] = protocol.upstream_bps(asset_id)
    wanted_meter = meter or signer.address
    if asset.meter.lower() != wanted_meter.lower():
        out["meter_tx"] = protocol.set_meter(signer, asset_id, wanted_meter).to_dict()
    out["meter"] = wanted_meter
    offer_id, offer_tx = protocol.offer(signer, asset_id, "api", price=price_per_call)
    out["offer_id"] = offer_id
    out["price_per_call"] = str(price_per_call)
    out["offer_tx"] = offer_tx.to_dict()
    return out


def _sha256(data: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(data).digest()


# --- the server ---------------------------------------------------------------------------


#: What a caller learns of each source: never its text.
SOURCE_FIELDS = ("cid", "name", "asset_id", "score", "kind")


@dataclass
class Served:
    """One answered call: the answer and what went on chain for it."""

    answer: Answer
    license_id: int
    meter_tx: dict[str, Any] | None
    record: dict[str, Any]
    paid_sources: list[int]
    record_error: str | None = None

    def extension(self) -> dict[str, Any]:
        """The ``sahara`` object of a response: what was paid and recorded, and which
        sources and tools the answer used (named, not quoted)."""
        return {
            "license_id": self.license_id or None,
            "meter_tx": self.meter_tx,
            "record_id": self.record.get("record_id"),
            "record_tx": self.record.get("tx"),
            "record_error": self.record_error,
            "record": self.record,
            "paid_sources": self.paid_sources,
            "sources": [
                {name: getattr(s, name) for name in SOURCE_FIELDS} for s in self.answer.sources
            ],
            "tool_calls": [
                {k: v for k, v in c.to_dict().items() if k != "output"}
                for c in self.answer.tool_calls
            ],
        }


class AgentServer:
    """The OpenAI-compatible front of one agent; calls are answered one at a time."""

    def __init__(
        self,
        agent: Agent,
        protocol: Protocol,
        meter: Signer,
        *,
        chain_id: int | None = None,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        if agent.spec.asset_id is None:
            raise AgentError(
                f"agent {agent.spec.name!r} is not published",
                hint=f"Run 'sahara agent publish {agent.spec.name} --price-per-call X' first.",
            )
        self.agent = agent
        self.name = agent.spec.name
        self.asset_id: int = agent.spec.asset_id
        self.protocol = protocol
        self.meter = meter
        self.chain_id = chain_id if chain_id is not None else protocol.node.chain_id()
        self.log = log
        asset = protocol.asset(self.asset_id)
        if asset.kind != "agent":
            raise AgentError(f"asset {self.asset_id} is a {asset.kind}, not an agent")
        if asset.meter.lower() != meter.address.lower():
            raise NotPermitted(
                f"{meter.address} is not the meter of agent asset {self.asset_id} "
                f"({asset.meter} is)",
                hint="Serve with the ID that published the agent, or set it as the meter.",
            )
        self.owner = asset.owner
        self.created = asset.created
        self._lock = threading.Lock()
        self._exists: dict[int, bool] = {}
        self._licenses: dict[str, list[int]] = {}

    # -- the steps of a call ----------------------------------------------------------

    def authenticate(self, authorization: str | None) -> ApiKey:
        token = ""
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        return verify_api_key(token, agent_asset=self.asset_id, chain_id=self.chain_id)

    def license_for(self, address: str) -> License | None:
        """The caller's oldest API license with calls left; None for the agent's owner."""
        if address.lower() == self.owner.lower():
            return None
        for license_id in self._licenses.get(address, []):
            lic = self.protocol.get_license(license_id)
            if lic.calls > 0:
                return lic
        found = self.protocol.api_licenses(address, self.asset_id)
        self._licenses[address] = [lic.id for lic in found]
        if not found:
            raise AgentNoLicense(
                f"{address} holds no API license with calls left for agent {self.name!r} "
                f"(asset {self.asset_id})",
                details={"asset": self.asset_id},
            )
        return found[0]

    def _sources(self, turn: Turn) -> list[int]:
        """The first four source assets of the turn that exist on this chain."""
        from sahara_cli.errors import AssetNotFound

        out = []
        for asset_id in turn.asset_ids:
            if asset_id not in self._exists:
                try:
                    self.protocol.asset(asset_id)
                    self._exists[asset_id] = True
                except AssetNotFound:
                    self._exists[asset_id] = False
            if self._exists[asset_id] and asset_id != self.asset_id:
                out.append(asset_id)
            if len(out) == MAX_SOURCES:
                break
        return out

    def answer(
        self,
        key: ApiKey,
        messages: Sequence[Message],
        on_delta: Callable[[str], None] | None = None,
        on_metered: Callable[[], None] | None = None,
        *,
        sampling: Mapping[str, Any] | None = None,
    ) -> Served:
        """Answer one call (holding the server's one lock): license, recall and tools,
        meter, then the reply (``on_metered`` is called just before it, ``on_delta`` with
        each piece), then its record on chain (best effort)."""
        with self._lock:
            lic = self.license_for(key.address)
            started = time.perf_counter()
            # The owner's long-term memory and feedback stay out of served answers.
            turn = self.agent.prepare(messages, sampling=sampling)
            sources = self._sources(turn)
            meter_tx = self._meter(key, lic, sources)
            license_id = lic.id if lic is not None else 0
            if on_metered is not None:
                on_metered()
            metered = time.perf_counter()
            answer = self.agent.finish(turn, on_delta)
            answered = time.perf_counter()
            record_error = self._commit(answer, license_id, meter_tx, sources)
            done = time.perf_counter()
        self.log(
            f"{key.address} license {license_id or '-'}: prepared and metered in "
            f"{metered - started:.2f} s, answered in {answered - metered:.2f} s, recorded in "
            f"{done - answered:.2f} s (record {answer.record.get('record_id') or 'pending'})"
        )
        return Served(answer, license_id, meter_tx, answer.record, sources, record_error)

    def _meter(self, key: ApiKey, lic: License | None, sources: list[int]) -> dict[str, Any] | None:
        """One call of ``lic`` metered (None: the owner, not metered); a license that has
        no call left by now (refunded meanwhile, say) is :class:`AgentNoLicense`."""
        if lic is None:
            return None
        try:
            tx = self.protocol.meter_with(self.meter, lic.id, 1, sources)
        except ProtocolReverted as exc:
            self._licenses.pop(key.address, None)
            raise AgentNoLicense(
                f"license {lic.id} of {key.address} could not be metered: {exc.message}",
                details={"asset": self.asset_id, "license": lic.id},
            ) from None
        return tx.to_dict()

    def _commit(
        self, answer: Answer, license_id: int, meter_tx: dict[str, Any] | None, sources: list[int]
    ) -> str | None:
        """Put the answer's record on chain; on failure the reason (logged), the local
        record left pending with its license and meter transaction."""
        from sahara_cli.agent.record import commit_record

        digest = answer.record["digest"]
        paid = {"license_id": license_id, "meter_tx": meter_tx["hash"] if meter_tx else None}
        try:
            committed = commit_record(
                self.protocol, self.meter, answer.record, license_id, sources=sources
            )
        except Exception as exc:  # the call is paid for: the answer goes out regardless
            reason = exc.message if isinstance(exc, SaharaError) else f"{type(exc).__name__}: {exc}"
            self.log(f"record {digest} not committed, kept pending: {reason}")
            answer.record.update(paid)
            if self.agent.records is not None:
                with contextlib.suppress(SaharaError):
                    self.agent.records.note(digest, paid)
            return reason
        answer.record.update(committed)
        if self.agent.records is not None:
            self.agent.records.mark_committed(digest, {**committed, **paid})
        return None

    # -- HTTP -------------------------------------------------------------------------

    def app(self) -> Starlette:
        from starlette.applications import Starlette
        from starlette.routing import Route

        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/health", self._health, methods=["GET"]),
            ]
        )

    async def _health(self, _request: Request) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse(
            {
                "status": "ok",
                "agent": self.name,
                "asset_id": self.asset_id,
                "chain_id": self.chain_id,
                "meter": self.meter.address,
            }
        )

    async def _models(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        try:
            self.authenticate(request.headers.get("authorization"))
        except SaharaError as exc:
            return self._error(exc)
        model = {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": self.owner,
        }
        return JSONResponse({"object": "list", "data": [model]})

    async def _chat(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        try:
            key = self.authenticate(request.headers.get("authorization"))
            try:
                body = await request.json()
            except ValueError:
                raise UsageError("the request body is not JSON") from None
            messages, stream, include_usage = parse_request(body)
            sampling = parse_sampling(body)
            # A caller without a license is refused at once, without waiting for the lock.
            await run_in_threadpool(self.license_for, key.address)
            if stream:
                return await self._stream(key, messages, include_usage, sampling)
            served = await run_in_threadpool(self.answer, key, messages, sampling=sampling)
        except SaharaError as exc:
            return self._error(exc)
        except Exception as exc:  # the server stays up; the caller learns why
            return self._error(AgentError(f"the agent failed: {exc}"))
        doc = completion(self.name, served)
        headers = {
            "X-Sahara-Record-Id": str(served.record.get("record_id", "")),
            "X-Sahara-Record-Tx": str(served.record.get("tx", "")),
            "X-Sahara-License": str(served.license_id or ""),
        }
        if served.meter_tx is not None:
            headers["X-Sahara-Meter-Tx"] = served.meter_tx["hash"]
        return JSONResponse(doc, headers=headers)

    async def _stream(
        self,
        key: ApiKey,
        messages: Sequence[Message],
        include_usage: bool,
        sampling: Mapping[str, Any] | None = None,
    ) -> Response:
        """Stream the answer once the call is metered; until then an error is an
        ordinary error response, with its status code and no answer."""
        import asyncio

        from starlette.responses import StreamingResponse

        chunk_id = "chatcmpl-" + uuid.uuid4().hex
        created = int(time.time())

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
            doc = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.name,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(doc)}\n\n"

        def delta(content: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def put(kind: str, value: Any) -> None:
            # The answer goes on (and is recorded) even if the caller hung up.
            with contextlib.suppress(RuntimeError):  # the server's loop is gone
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        def work() -> None:
            try:
                served = self.answer(
                    key,
                    messages,
                    on_delta=lambda t: put("delta", t),
                    on_metered=lambda: put("metered", None),
                    sampling=sampling,
                )
                put("done", served)
            except SaharaError as exc:
                put("error", exc)
            except Exception as exc:
                put("error", AgentError(f"the agent failed: {exc}"))

        threading.Thread(target=work, name="sahara-agent-call", daemon=True).start()
        kind, value = await queue.get()
        if kind == "error":
            return self._error(value)

        async def events() -> AsyncIterator[str]:
            yield chunk([delta({"role": "assistant", "content": ""})])
            while True:
                kind, value = await queue.get()
                if kind == "delta":
                    yield chunk([delta({"content": value})])
                    continue
                if kind == "error":
                    self.log(f"failed while streaming: {value.code}: {value.message}")
                    yield f"data: {json.dumps(error_body(value))}\n\n"
                else:
                    served: Served = value
                    finish = served.answer.finish_reason or "stop"
                    yield chunk([delta({}, finish)], sahara=served.extension())
                    if include_usage:
                        yield chunk([], usage=usage(served.answer))
                break
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    def _error(self, exc: SaharaError) -> Response:
        from starlette.responses import JSONResponse

        status = http_status(exc)
        self.log(f"refused ({status}): {exc.code}: {exc.message}")
        return JSONResponse(error_body(exc), status_code=status)


# --- the OpenAI wire format -----------------------------------------------------------------


def parse_sampling(body: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling settings a chat request may set: ``max_tokens`` (or
    ``max_completion_tokens``), ``temperature``, ``top_p``, ``seed`` and ``stop``.
    The agent caps ``max_tokens`` at its spec's (the owner's cost per call)."""
    out: dict[str, Any] = {}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise UsageError("'max_tokens' must be a positive integer")
        out["max_tokens"] = limit
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = body.get(name)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (low <= value <= high)
        ):
            raise UsageError(f"'{name}' must be a number from {low} to {high}")
        if name == "top_p" and value == 0:
            raise UsageError("'top_p' must be above 0")
        out[name] = float(value)
    seed = body.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UsageError("'seed' must be an integer")
        out["seed"] = seed
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stops, list)
            or len(stops) > 4
            or not all(isinstance(x, str) and x for x in stops)
        ):
            raise UsageError("'stop' must be a string or a list of up to 4 strings")
        out["stop"] = tuple(stops)
    return out


def parse_request(body: Any) -> tuple[list[Message], bool, bool]:
    """Messages, ``stream`` and ``stream_options.include_usage`` of a chat request."""
    from sahara_cli.agent.types import Message

    if not isinstance(body, Mapping):
        raise UsageError("the request body must be a JSON object")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise UsageError("'messages' must be a non-empty list")
    if body.get("n", 1) not in (1, None):
        raise UsageError("only n=1 is supported")
    messages = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise UsageError(f"messages[{i}] must be an object")
        role = item.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant", "tool"):
            raise UsageError(f"messages[{i}].role {role!r} is not supported")
        messages.append(Message(role, _text(item.get("content"), i), item.get("name")))
    options = body.get("stream_options") or {}
    include_usage = bool(isinstance(options, Mapping) and options.get("include_usage"))
    return messages, bool(body.get("stream", False)), include_usage


def _text(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise UsageError(f"messages[{index}]: only text content parts are supported")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise UsageError(f"messages[{index}].content must be text")


def usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def completion(model: str, served: Served) -> dict[str, Any]:
    """A ``chat.completion`` object for one served answer."""
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": served.answer.text},
                "finish_reason": served.answer.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage(served.answer),
        "sahara": served.extension(),
    }


def http_status(exc: SaharaError) -> int:
    if isinstance(exc, AgentAuthFailed):
        return 401
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, UnreachableError):
        return 503
    return 500


_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    400: "invalid_request_error",
    404: "not_found_error",
}


def error_body(exc: SaharaError) -> dict[str, Any]:
    """An OpenAI-style error object carrying sahara's code and hint."""
    return {
        "error": {
            "message": exc.message,
            "type": _ERROR_TYPES.get(http_status(exc), "server_error"),
            "param": None,
            "code": exc.code,
            "hint": exc.hint,
        }
    }


# --- running it -----------------------------------------------------------------------------


def serve_agent(
    agent: Agent,
    host: str,
    port: int,
    *,
    protocol: Protocol,
    meter: Signer,
    chain_id: int | None = None,
    on_ready: Callable[[str], None] | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> None:
    """Serve ``agent`` at ``http://host:port/v1`` until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    server = AgentServer(agent, protocol, meter, chain_id=chain_id, log=log)
    config = uvicorn.Config(server.app(), host=host, port=port, log_level="warning", lifespan="off")
    web = uvicorn.Server(config)
    url = f"http://{host}:{port}/v1"

    async def run() -> None:
        import asyncio

        task = asyncio.ensure_future(web.serve())
        while not web.started and not task.done():
            await asyncio.sleep(0.02)
        if web.started and on_ready is not None:
            on_ready(url)
        await task

    import asyncio

    asyncio.run(run())
    if not web.started:
        from sahara_cli.errors import AgentPortInUse

        raise AgentPortInUse(f"cannot listen on {host}:{port}")
