"""A per-caller rate limit in front of the agents' HTTP servers (ASGI).

``agent serve``, ``mcp serve --transport http`` and A2A team members each take at most
``rate`` requests a second from one remote address (an IPv6 caller by its /64), in
bursts of twice that; past it a request is answered 429 with ``Retry-After`` before it
reaches the server, so a caller cannot keep one busy with signature checks, license
reads or sessions. All local programs share the loopback address's rate.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from sahara_cli.errors import AgentRateLimited
from sahara_cli.vault.ratelimit import RateLimiter, rate_key

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

#: Requests a second one remote address may make of an agent server (bursts of twice).
DEFAULT_RATE_PER_IP = 50.0


class PerCallerRate:
    """ASGI middleware: ``rate`` HTTP requests a second per remote address."""

    def __init__(self, app: ASGIApp, rate: float) -> None:
        self.app = app
        self.limiter = RateLimiter(rate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client") or ("", 0)
            wait = self.limiter.take(rate_key(str(client[0])))
            if wait:
                await _refuse(send, wait)
                return
        await self.app(scope, receive, send)


def limited(app: ASGIApp, rate: float | None) -> ASGIApp:
    """``app`` behind a per-caller rate of ``rate`` a second (as it is when None)."""
    return app if rate is None else PerCallerRate(app, rate)


async def _refuse(send: Send, wait: float) -> None:
    seconds = max(1, math.ceil(wait))
    error = AgentRateLimited(
        f"too many requests from this address; try again in {seconds} s",
        hint="Slow down, or ask the server's owner to raise --rate-per-ip.",
    )
    body = json.dumps({"error": error.to_dict()}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(seconds).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
