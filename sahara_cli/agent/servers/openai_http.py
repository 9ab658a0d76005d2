"""The HTTP routes of ``sahara agent serve`` (Starlette): ``POST /v1/chat/completions``
(streamed or whole), ``POST /v1/keys/revoke``, ``GET /v1/models`` and ``GET /health``,
each calling the :class:`~sahara_cli.agent.servers.openai_api.AgentServer` behind it."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sahara_cli.agent.servers.openai_wire import (
    completion,
    error_body,
    http_status,
    parse_request,
    parse_sampling,
    read_body,
    usage,
)
from sahara_cli.errors import AgentError, SaharaError, UsageError

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from sahara_cli.agent.servers.api_keys import ApiKey
    from sahara_cli.agent.servers.openai_api import AgentServer, Served
    from sahara_cli.agent.types import Message


def build_app(server: AgentServer) -> Starlette:
    """The ASGI app serving ``server``."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    routes = _Routes(server)
    return Starlette(
        routes=[
            Route("/v1/chat/completions", routes._chat, methods=["POST"]),
            Route("/v1/keys/revoke", routes._revoke, methods=["POST"]),
            Route("/v1/models", routes._models, methods=["GET"]),
            Route("/health", routes._health, methods=["GET"]),
        ]
    )


class _Routes:
    """The request handlers of one :class:`AgentServer`."""

    def __init__(self, server: AgentServer) -> None:
        self.server = server

    async def _health(self, _request: Request) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse(
            {
                "status": "ok",
                "agent": self.server.name,
                "asset_id": self.server.asset_id,
                "chain_id": self.server.chain_id,
                "meter": self.server.meter.address,
            }
        )

    async def _models(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        try:
            self.server.authenticate(request.headers.get("authorization"))
        except SaharaError as exc:
            return self._error(exc)
        model = {
            "id": self.server.name,
            "object": "model",
            "created": self.server.created,
            "owned_by": self.server.owner,
        }
        return JSONResponse({"object": "list", "data": [model]})

    async def _chat(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        try:
            key = self.server.authenticate(request.headers.get("authorization"))
            raw = await read_body(request, self.server.max_body)
            try:
                body = json.loads(raw)
            except ValueError:
                raise UsageError("the request body is not JSON") from None
            messages, stream, include_usage = parse_request(body)
            sampling = parse_sampling(body)
            # A caller without a license is refused at once, without waiting for the lock.
            await run_in_threadpool(self.server.license_for, key.address)
            self.server.admit()
            if stream:
                return await self._stream(key, messages, include_usage, sampling)
            try:
                served = await run_in_threadpool(
                    self.server.answer, key, messages, sampling=sampling
                )
            finally:
                self.server.release()
        except SaharaError as exc:
            return self._error(exc)
        except Exception as exc:  # the server stays up; the caller learns why
            return self._error(AgentError(f"the agent failed: {exc}"))
        doc = completion(self.server.name, served)
        headers = {
            "X-Sahara-Record-Id": str(served.record.get("record_id", "")),
            "X-Sahara-Record-Tx": str(served.record.get("tx", "")),
            "X-Sahara-License": str(served.license_id or ""),
        }
        if served.meter_tx is not None:
            headers["X-Sahara-Meter-Tx"] = served.meter_tx["hash"]
        if served.guard.get("redacted_spans"):
            headers["X-Sahara-Redacted"] = str(served.guard["redacted_spans"])
        return JSONResponse(doc, headers=headers)

    async def _revoke(self, request: Request) -> Response:
        """``POST /v1/keys/revoke`` with the key itself as the bearer: the key is revoked
        for good (whoever holds a key may end it; a caller revokes a key that leaked)."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        try:
            key = self.server.authenticate(request.headers.get("authorization"))
            # Only callers who are or were licensed (or the owner) fill the revocation
            # list, calls left or not: a leaked key can be ended once the calls ran out.
            await run_in_threadpool(self.server.may_revoke, key.address)
            fresh = await run_in_threadpool(self.server.revoke, key)
        except SaharaError as exc:
            return self._error(exc)
        self.server.log(f"{key.address} revoked API key {key.key_id}")
        return JSONResponse({"revoked": True, "key_id": key.key_id, "already": not fresh})

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
                "model": self.server.name,
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
                served = self.server.answer(
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
            finally:
                self.server.release()  # the place taken in _chat

        try:
            threading.Thread(target=work, name="sahara-agent-call", daemon=True).start()
        except BaseException:
            self.server.release()
            raise
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
                    self.server.log(f"failed while streaming: {value.code}: {value.message}")
                    yield f"data: {json.dumps(error_body(value))}\n\n"
                else:
                    served: Served = value
                    yield chunk([delta({}, served.finish_reason)], sahara=served.extension())
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
        self.server.log(f"refused ({status}): {exc.code}: {exc.message}")
        return JSONResponse(error_body(exc), status_code=status)
