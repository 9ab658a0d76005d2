"""Fuzz the JSON-RPC server with malformed requests: every reply must be a well-formed
JSON-RPC 2.0 error with a spec code, and the node must keep answering.

``SAHARA_FUZZ_EXAMPLES`` sets the number of hypothesis examples (default 200); each
example sends a batch of ``BATCH`` requests plus one single request, so the default run
sends over 10,000 requests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sahara_cli.node.rpc.dispatch import method_table
from sahara_cli.node.rpc.errors import SPEC_CODES
from sahara_cli.node.rpc.testing import dev_node

EXAMPLES = int(os.environ.get("SAHARA_FUZZ_EXAMPLES", "200"))
BATCH = 50
MAX_BODY = 64 * 1024
HEADERS = {"Content-Type": "application/json"}

#: Methods that are safe to hammer with random params: they cannot change the chain.
READ_METHODS = sorted(
    name
    for name, spec in method_table().items()
    if not spec.flags.dev and not spec.flags.signing and name != "eth_sendRawTransaction"
)


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with (
        dev_node(tmp_path_factory.mktemp("rpc-fuzz"), max_body=MAX_BODY) as (_node, handle),
        httpx.Client(base_url=handle.url, timeout=60) as client,
    ):
        yield client


# -- strategies: values that are wrong in every way a client gets them wrong ---------------

ARABIC_ONE = "\u0661"  # int() takes it as a digit; hex parsing must not
bad_hex = st.sampled_from(
    ["0x", "0X1", "0x01", "0xzz", "0x0g", " 0x1", "0x1 ", "0x" + ARABIC_ONE, "0x" + "f" * 65,
     "0x" + "0" * 63 + "1", "0x" + "f" * 17, "1", "-0x1", "0x-1", "0x1_0", "", "latest ",
     "Latest", "0x" + "ab" * 19]
)  # fmt: skip
huge_numbers = st.one_of(
    st.integers(min_value=2**256, max_value=2**600),
    st.integers(max_value=-1),
    st.just("0x1" + "0" * 64),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), bad_hex, huge_numbers,
)  # fmt: skip
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
call_object = st.fixed_dictionaries(
    {},
    optional={
        "from": st.one_of(bad_hex, json_value), "to": st.one_of(bad_hex, json_value),
        "gas": st.one_of(bad_hex, huge_numbers), "value": st.one_of(bad_hex, huge_numbers),
        "data": st.one_of(bad_hex, json_value), "input": bad_hex,
        "maxFeePerGas": huge_numbers, "gasPrice": bad_hex, "accessList": json_value,
    },
)  # fmt: skip
params = st.one_of(
    st.lists(st.one_of(json_value, bad_hex, huge_numbers, call_object), max_size=5),
    json_value,
)
method_names = st.one_of(
    st.sampled_from(READ_METHODS), st.text(max_size=30), st.sampled_from(["eth_", "", "eth_call "])
)
ids = st.one_of(st.integers(), st.text(max_size=10), st.none(), st.lists(st.integers(), max_size=2))


@st.composite
def request(draw: st.DrawFn) -> Any:
    """One request object, usually malformed in shape or content."""
    kind = draw(st.integers(0, 5))
    if kind == 0:  # not an object at all
        return draw(json_leaf | st.lists(json_leaf, max_size=3))
    if kind == 1:  # an object with random members
        return draw(
            st.dictionaries(st.sampled_from(["jsonrpc", "id", "method", "params", "x"]), json_value)
        )
    body: dict[str, Any] = {"jsonrpc": draw(st.sampled_from(["2.0", "2.0", "1.0", 2.0]))}
    body["id"] = draw(ids)
    body["method"] = draw(method_names | json_value) if kind == 2 else draw(method_names)
    if draw(st.booleans()):
        body["params"] = draw(params)
    return body


bad_json = st.one_of(
    st.binary(min_size=1, max_size=200).filter(lambda b: not _is_json(b)),
    st.text(min_size=1, max_size=200).filter(lambda t: not _is_json(t.encode())),
    st.sampled_from([b"[" * 5000, b'{"a":' * 3000, b"NaN", b"[Infinity]", b'{"id":1,']),
)


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


# -- checks ----------------------------------------------------------------------------------


def check_reply(reply: Any) -> None:
    assert isinstance(reply, dict), reply
    assert reply.get("jsonrpc") == "2.0", reply
    assert "id" in reply, reply
    assert ("result" in reply) != ("error" in reply), reply
    if "error" in reply:
        error = reply["error"]
        assert error["code"] in SPEC_CODES, reply
        assert isinstance(error["message"], str) and error["message"], reply
        assert "Traceback" not in error["message"]


def check_error(reply: Any) -> None:
    check_reply(reply)
    assert "error" in reply, reply


def post(http: httpx.Client, body: bytes) -> Any:
    response = http.post("/", content=body, headers=HEADERS)
    assert response.status_code in (200, 413), response.status_code
    return response.json() if response.content else None


def batches(requests: list[Any]) -> Iterator[list[Any]]:
    """``requests`` as one batch, or split until each part fits the body limit."""
    if len(requests) > 1 and len(json.dumps(requests)) > MAX_BODY:
        half = len(requests) // 2
        yield from batches(requests[:half])
        yield from batches(requests[half:])
    else:
        yield requests


def still_alive(http: httpx.Client) -> None:
    doc = post(http, b'{"jsonrpc":"2.0","id":0,"method":"eth_blockNumber"}')
    assert doc["result"].startswith("0x")


# -- the fuzz tests --------------------------------------------------------------------------


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(requests=st.lists(request(), min_size=BATCH, max_size=BATCH), garbage=bad_json)
def test_malformed_requests_get_spec_errors(
    http: httpx.Client, requests: list[Any], garbage: bytes
) -> None:
    for batch in batches(requests):
        replies = post(http, json.dumps(batch).encode())
        if isinstance(replies, dict):  # the batch as a whole was refused
            check_error(replies)
        else:
            assert replies is None or len(replies) <= len(batch)
            for reply in replies or []:
                check_reply(reply)  # a random read method may succeed on lucky params
    single = post(http, json.dumps(requests[0]).encode())  # may itself be a (small) batch
    for reply in single if isinstance(single, list) else [single] if single is not None else []:
        check_reply(reply)
    parse_error = post(http, garbage)
    check_error(parse_error)
    assert parse_error["error"]["code"] == -32700 and parse_error["id"] is None
    still_alive(http)


@settings(
    max_examples=max(10, EXAMPLES // 10), deadline=None, suppress_health_check=list(HealthCheck)
)
@given(
    method=st.sampled_from(READ_METHODS),
    bad=st.one_of(bad_hex, huge_numbers),
    position=st.integers(0, 3),
)
def test_bad_hex_and_huge_numbers_are_invalid_params(
    http: httpx.Client, method: str, bad: Any, position: int
) -> None:
    """A wrong value in a hex slot of a real method is -32602, never a crash."""
    good = {
        "eth_getBalance": ["0x" + "11" * 20, "latest"],
        "eth_getBlockByNumber": ["0x0", False],
        "eth_getStorageAt": ["0x" + "11" * 20, "0x0", "latest"],
        "eth_feeHistory": ["0x1", "latest", []],
        "eth_getTransactionByHash": ["0x" + "22" * 32],
        "web3_sha3": ["0x00"],
    }
    if method not in good:
        method = "eth_getBalance"
    args = list(good[method])
    args[position % len(args)] = bad
    reply = post(
        http, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": args}).encode()
    )
    check_reply(reply)
    if "error" in reply:
        assert reply["error"]["code"] in (-32602, -32000)


def test_oversized_bodies_are_refused_and_the_node_keeps_serving(http: httpx.Client) -> None:
    for size in (MAX_BODY + 1, 2 * MAX_BODY, 10 * MAX_BODY):
        body = (
            b'{"jsonrpc":"2.0","id":1,"method":"web3_sha3","params":["0x'
            + b"ab" * (size // 2)
            + b'"]}'
        )
        response = http.post("/", content=body, headers=HEADERS)
        assert response.status_code == 413
        check_error(response.json())
    still_alive(http)
