"""API keys of served agents and the OpenAI wire format (the server end to end is in
tests/e2e/test_agent_serve.py)."""

from __future__ import annotations

import base64
import json
import time

import pytest

from sahara_cli.agent.serve import (
    KEY_PREFIX,
    error_body,
    http_status,
    make_api_key,
    parse_request,
    verify_api_key,
)
from sahara_cli.errors import (
    AgentAuthFailed,
    AgentError,
    AgentNoLicense,
    NodeUnreachable,
    UsageError,
)
from sahara_cli.identity import Signer
from tests.conftest import TEST_ADDRESS_0, TEST_KEY_0

SIGNER = Signer(bytes.fromhex(TEST_KEY_0[2:]))
CHAIN = 31313


def decode(token: str) -> dict[str, object]:
    body = token[len(KEY_PREFIX) :]
    data: dict[str, object] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return data


def encode(data: dict[str, object]) -> str:
    raw = json.dumps(data).encode()
    return KEY_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_key_proves_the_callers_address() -> None:
    token = make_api_key(SIGNER, 7, CHAIN, ttl=60)
    key = verify_api_key(token, agent_asset=7, chain_id=CHAIN)
    assert key.address == TEST_ADDRESS_0
    assert (key.agent, key.chain) == (7, CHAIN)
    assert time.time() < key.expires <= time.time() + 61


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"agent": 8}, "not signed by"),
        ({"expires": 2**40}, "not signed by"),
        ({"address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}, "not signed by"),
        ({"signature": "0x" + "11" * 65}, "signature"),
        ({"agent": None}, "malformed"),
    ],
)
def test_a_changed_key_is_refused(change: dict[str, object], message: str) -> None:
    data = decode(make_api_key(SIGNER, 7, CHAIN, ttl=60))
    with pytest.raises(AgentAuthFailed, match=message):
        verify_api_key(encode({**data, **change}), agent_asset=7, chain_id=CHAIN)


def test_a_key_for_another_agent_chain_or_time_is_refused() -> None:
    token = make_api_key(SIGNER, 7, CHAIN, ttl=60)
    with pytest.raises(AgentAuthFailed, match="asset 7"):
        verify_api_key(token, agent_asset=9, chain_id=CHAIN)
    with pytest.raises(AgentAuthFailed, match="chain"):
        verify_api_key(token, agent_asset=7, chain_id=1)
    with pytest.raises(AgentAuthFailed, match="expired"):
        verify_api_key(token, agent_asset=7, chain_id=CHAIN, now=time.time() + 61)
    for bad in ("", "sk-abc", KEY_PREFIX + "!!!", KEY_PREFIX + "e30"):
        with pytest.raises(AgentAuthFailed):
            verify_api_key(bad, agent_asset=7, chain_id=CHAIN)
    with pytest.raises(UsageError):
        make_api_key(SIGNER, 7, CHAIN, ttl=0)


def test_parse_request_reads_openai_messages() -> None:
    messages, stream, usage = parse_request(
        {
            "model": "x",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
                },
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert [(m.role, m.content) for m in messages] == [
        ("system", "Be brief."),
        ("user", "Hi there"),
    ]
    assert (stream, usage) == (True, True)
    _, stream, usage = parse_request({"messages": [{"role": "user", "content": "x"}]})
    assert (stream, usage) == (False, False)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"messages": []},
        {"messages": ["hi"]},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": "x"}], "n": 2},
    ],
)
def test_parse_request_refuses_what_it_cannot_serve(body: object) -> None:
    with pytest.raises(UsageError):
        parse_request(body)


def test_errors_map_to_http_statuses_and_openai_bodies() -> None:
    assert http_status(AgentAuthFailed("x")) == 401
    assert http_status(AgentNoLicense("x")) == 403
    assert http_status(UsageError("x")) == 400
    assert http_status(NodeUnreachable("x")) == 503
    assert http_status(AgentError("x")) == 500
    body = error_body(AgentNoLicense("no calls left"))["error"]
    assert body["type"] == "permission_error"
    assert body["code"] == "agent.no_license" and body["message"] == "no calls left"
    assert "license buy" in str(body["hint"])


def test_parse_sampling_reads_openai_settings() -> None:
    from sahara_cli.agent.serve import parse_sampling

    assert parse_sampling({}) == {}
    got = parse_sampling(
        {"max_tokens": 7, "temperature": 0, "top_p": 0.5, "seed": 3, "stop": "\n\n"}
    )
    assert got == {"max_tokens": 7, "temperature": 0.0, "top_p": 0.5, "seed": 3, "stop": ("\n\n",)}
    assert parse_sampling({"max_completion_tokens": 9, "max_tokens": 100})["max_tokens"] == 9


@pytest.mark.parametrize(
    "body",
    [
        {"max_tokens": 0},
        {"max_tokens": "10"},
        {"max_tokens": True},
        {"temperature": 3},
        {"temperature": "hot"},
        {"top_p": 0},
        {"seed": 1.5},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"stop": [""]},
        {"stop": 5},
    ],
)
def test_parse_sampling_refuses_bad_values(body: dict[str, object]) -> None:
    from sahara_cli.agent.serve import parse_sampling

    with pytest.raises(UsageError):
        parse_sampling(body)
