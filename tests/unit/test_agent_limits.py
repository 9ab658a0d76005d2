"""The per-caller rate in front of the agents' HTTP servers: a real uvicorn server on
loopback, a real Starlette app behind it, real HTTP requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sahara_cli.agent.servers.limits import limited
from tests.e2e.nodes import free_port


@pytest.fixture
def served() -> Iterator[str]:
    import uvicorn

    async def hello(_request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = limited(Starlette(routes=[Route("/", hello)]), 2.0)  # bursts of 4
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(20)


def test_one_address_is_held_to_its_rate(served: str) -> None:
    codes = []
    with httpx.Client(timeout=10) as http:
        for _ in range(8):
            answer = http.get(served + "/")
            codes.append(answer.status_code)
            if answer.status_code == 429:
                assert answer.json()["error"]["code"] == "agent.rate_limited"
                assert int(answer.headers["retry-after"]) >= 1
    assert codes[:4] == [200] * 4 and 429 in codes[4:], codes
    # Another address has a bucket of its own.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport, timeout=10) as other:
        assert other.get(served + "/").status_code == 200


def test_no_rate_means_no_limit() -> None:
    app = Starlette()
    assert limited(app, None) is app
