"""The OpenAI wire format of ``sahara agent serve``: reading requests (bounded in size),
writing completions and errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    AgentAuthFailed,
    AgentBusy,
    AgentRequestTooLarge,
    NotFoundError,
    PermissionDeniedError,
    SaharaError,
    UnreachableError,
    UsageError,
)

if TYPE_CHECKING:
    from starlette.requests import Request

    from sahara_cli.agent.servers.openai_api import Served
    from sahara_cli.agent.types import Answer, Message

#: The largest request body a served agent reads (``agent serve --max-body``).
MAX_BODY = 1024 * 1024
#: Calls of ``agent serve`` in flight at once (answered, or waiting for the one model),
#: streamed or not; the next is refused at once with HTTP 503.
MAX_PENDING = 16


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request's body, refused with :class:`AgentRequestTooLarge` (HTTP 413) when it
    is over ``limit`` bytes: at once by its Content-Length, before reading a byte, and
    while reading a chunked body, as soon as it passes the limit."""

    def too_large() -> AgentRequestTooLarge:
        return AgentRequestTooLarge(f"the request body is larger than {limit} bytes")

    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise UsageError("the Content-Length header is not a number")
        if int(length) > limit:
            raise too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large()
    return bytes(body)


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
                "finish_reason": served.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(served.answer),
        "sahara": served.extension(),
    }


def http_status(exc: SaharaError) -> int:
    if isinstance(exc, AgentAuthFailed):
        return 401
    if isinstance(exc, AgentRequestTooLarge):
        return 413
    if isinstance(exc, AgentBusy):
        return 503
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
    413: "invalid_request_error",
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
