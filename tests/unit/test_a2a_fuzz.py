"""Fuzz the A2A endpoint with malformed, oversized, misdirected and replayed requests,
unsigned and signed in every way: no reply is a server error (500, a traceback), every
request is answered within the client's timeout (no hang), no caller but the owner
ever reads the private passage or the tool output, and the agent keeps answering.

``SAHARA_FUZZ_EXAMPLES`` sets the number of hypothesis examples (default 150). Each
example is one request (two for a replay) against one real server (uvicorn, the
a2a-sdk, sahara's guard) in front of an agent whose answers quote private text.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sahara_cli.agent.servers.a2a_auth import (
    HEADER_ISSUED,
    HEADER_MAC,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    Credentials,
    new_secret,
)
from tests.a2a_serving import (
    PRIVATE_TEXT,
    RPC_HEADERS,
    TOOL_ARGUMENT,
    TOOL_OUTPUT,
    PrivateAgent,
    Served,
    owner,
    send_message_body,
    stranger,
)

EXAMPLES = int(os.environ.get("SAHARA_FUZZ_EXAMPLES", "150"))
MAX_BODY = 8192
TIMEOUT = 20.0  # seconds for one reply: a request that takes longer hangs
SECRET = new_secret()


@pytest.fixture(scope="module")
def keeper() -> Iterator[Served]:
    with Served(
        PrivateAgent(), secret=SECRET, owner=owner().address, max_body=MAX_BODY, body_timeout=2.0
    ) as served:
        yield served


@pytest.fixture(scope="module")
def http(keeper: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keeper.url, timeout=TIMEOUT) as client:
        yield client


def leaks(text: str) -> bool:
    return any(s in text for s in (PRIVATE_TEXT, TOOL_OUTPUT, TOOL_ARGUMENT))


# -- strategies -----------------------------------------------------------------------

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)  # fmt: skip
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=16,
)
methods = st.sampled_from(
    ["SendMessage", "SendStreamingMessage", "GetTask", "CancelTask", "ListTasks",
     "GetExtendedAgentCard", "message/send", "tasks/get", "", "sendmessage"]
)  # fmt: skip
message = st.fixed_dictionaries(
    {},
    optional={
        "messageId": st.one_of(st.text(max_size=12), json_value),
        "role": st.sampled_from(["ROLE_USER", "ROLE_AGENT", "user", "", 7]),
        "parts": st.one_of(
            st.lists(st.fixed_dictionaries({}, optional={"text": json_value}), max_size=3),
            json_value,
        ),
        "metadata": st.one_of(
            json_value,
            st.fixed_dictionaries(
                {}, optional={"sahara.hops": json_value, "sahara.visited": json_value}
            ),
        ),
        "contextId": json_value,
        "taskId": json_value,
    },
)
rpc_object = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2, None]),
        "id": st.one_of(st.text(max_size=8), st.integers(), st.none(), json_value),
        "method": st.one_of(methods, json_value),
        "params": st.one_of(st.fixed_dictionaries({"message": message}), json_value),
    },
)
routing = st.fixed_dictionaries(
    {}, optional={"sahara.hops": json_value, "sahara.visited": json_value}
)


def _with_metadata(meta: dict[str, Any]) -> bytes:
    request = json.loads(send_message_body("route me"))
    request["params"]["message"]["metadata"] = meta
    return json.dumps(request).encode()


bodies = st.one_of(
    routing.map(_with_metadata),  # a valid message with hop metadata of any shape
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    json_value.map(lambda v: json.dumps(v).encode()),
    rpc_object.map(lambda v: json.dumps(v).encode()),
    st.lists(rpc_object, max_size=4).map(lambda v: json.dumps(v).encode()),  # batches
    st.text(max_size=200).map(send_message_body),
    st.integers(MAX_BODY + 1, 4 * MAX_BODY).map(lambda n: send_message_body("x" * n)),
)
modes = st.sampled_from(
    ["none", "member", "member", "owner", "stranger", "stranger-member", "garbage", "replay",
     "stale", "other-host"]
)  # fmt: skip
garbage_header = st.one_of(st.text(max_size=80), st.sampled_from(["0" * 64, "0x" + "0" * 130]))


def _ascii(value: str) -> str:
    """``value`` as a header may carry it (printable ASCII)."""
    return "".join(c for c in value if " " <= c <= "~").strip()


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "mode": draw(modes),
        "body": draw(bodies),
        "method": draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE"])),
        "path": draw(st.sampled_from(["/"] * 6 + ["/x", "/.well-known/agent-card.json", "//"])),
        "host": draw(st.one_of(st.none(), st.none(), st.none(), st.text(max_size=20))),
        "origin": draw(st.one_of(st.none(), st.none(), st.none(), st.text(max_size=20))),
        "garbage": {
            name: draw(garbage_header)
            for name in (HEADER_ISSUED, HEADER_NONCE, HEADER_MAC, HEADER_SIGNATURE)
            if draw(st.booleans())
        },
    }


def _headers(req: dict[str, Any], host: str) -> dict[str, str]:
    mode, body, method, path = req["mode"], req["body"], req["method"], req["path"]
    credentials = {
        "member": Credentials(SECRET),
        "replay": Credentials(SECRET),
        "owner": Credentials(None, owner()),
        "stranger": Credentials(None, stranger()),
        "stranger-member": Credentials(SECRET, stranger()),
        "stale": Credentials(SECRET),
        "other-host": Credentials(SECRET),
    }.get(mode)
    headers = dict(RPC_HEADERS)
    if credentials is not None:
        signed_host = "127.0.0.1:1" if mode == "other-host" else host
        headers.update(credentials.headers(method, signed_host, path, body))
        if mode == "stale":  # the MAC no longer matches either: refused all the same
            headers[HEADER_ISSUED] = str(int(time.time() * 1000) - 3_600_000)
    if mode == "garbage":
        headers.update({k: _ascii(v) for k, v in req["garbage"].items()})
    if req["host"] is not None:
        headers["Host"] = _ascii(req["host"])
    if req["origin"] is not None:
        headers["Origin"] = _ascii(req["origin"])
    return headers


def _send(http: httpx.Client, req: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    started = time.monotonic()
    response = http.request(req["method"], req["path"], content=req["body"], headers=headers)
    assert time.monotonic() - started < TIMEOUT
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    # -32603 is JSON-RPC's "internal error": the agent raised instead of refusing.
    assert '"code":-32603' not in response.text.replace(" ", ""), response.text
    return response


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # a loaded 2-core machine varies a lot; the client timeout bounds hangs
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(req=requests())
def test_fuzzed_requests_never_crash_hang_or_leak(
    keeper: Served, http: httpx.Client, req: dict[str, Any]
) -> None:
    host = keeper.url.removeprefix("http://")
    headers = _headers(req, host)
    response = _send(http, req, headers)
    event(f"{req['mode']}: {response.status_code}")  # see --hypothesis-show-statistics
    owner_asked = req["mode"] == "owner" and req["host"] is None and req["origin"] is None
    if not owner_asked:
        assert not leaks(response.text), (req["mode"], response.text[:400])
    card = req["method"] == "GET" and req["path"].endswith("agent-card.json")
    if req["mode"] in ("none", "stranger", "stale", "other-host") and not card:
        assert response.status_code in (401, 403, 413), response.text
    if req["mode"] == "replay":
        again = _send(http, req, headers)
        assert again.status_code != 200 or card, again.text
        assert not leaks(again.text)


def test_fuzzing_leaves_the_agent_answering(keeper: Served, http: httpx.Client) -> None:
    body = send_message_body("still there?")
    host = keeper.url.removeprefix("http://")
    headers = dict(RPC_HEADERS)
    headers.update(Credentials(SECRET).headers("POST", host, "/", body))
    response = http.post("/", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert "I found the recipe." in response.text and not leaks(response.text)
