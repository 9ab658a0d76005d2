"""The A2A endpoint's guard, on a real server (uvicorn, the a2a-sdk, sahara's guard) in
front of an agent whose answers quote a private passage and a tool's output: who may
call, from which Host and Origin, how large and how slow, how often (replays), and what
each caller sees."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sahara_cli.agent.servers.a2a import CARD_PATH, HOPS_KEY, A2APeer
from sahara_cli.agent.servers.a2a_auth import (
    HEADER_ISSUED,
    HEADER_MAC,
    HEADER_NONCE,
    Credentials,
    canonical_text,
    new_secret,
)
from sahara_cli.agent.servers.a2a_member import main
from sahara_cli.agent.team import TeamSpec, run_team
from sahara_cli.errors import NetworkNotAllowed, TeamError
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

SECRET = new_secret()
JSON = RPC_HEADERS


@pytest.fixture(scope="module")
def keeper() -> Iterator[Served]:
    with Served(
        PrivateAgent(), secret=SECRET, owner=owner().address, max_body=4096, body_timeout=1.0
    ) as served:
        yield served


def leaks(text: str) -> bool:
    return any(s in text for s in (PRIVATE_TEXT, TOOL_OUTPUT, TOOL_ARGUMENT))


def signed(url: str, body: bytes, credentials: Credentials) -> dict[str, str]:
    host = url.removeprefix("http://")
    return {**JSON, **credentials.headers("POST", host, "/", body)}


def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url + "/", content=body, headers=headers, timeout=10)


def test_unsigned_request_is_refused_and_reveals_nothing(keeper: Served) -> None:
    response = post(keeper.url, send_message_body(), JSON)
    assert response.status_code == 401
    assert response.json()["error"]["data"]["code"] == "agent.auth_failed"
    assert not leaks(response.text)


def test_wrong_secret_is_refused(keeper: Served) -> None:
    with pytest.raises(TeamError, match="401"):
        A2APeer(keeper.url, credentials=Credentials(new_secret())).send("the recipe?")


def test_team_member_gets_the_answer_without_private_parts(keeper: Served) -> None:
    reply = A2APeer(keeper.url, credentials=Credentials(SECRET)).send("the recipe?")
    assert reply.text == "I found the recipe."
    [source] = reply.data["sources"]
    assert source["cid"] == "bafkreiquokka" and source["private"] is True
    assert "text" not in source and "name" not in source  # a private item's name too
    [call] = reply.data["tool_calls"]
    assert call["tool"] == "calculator" and "output" not in call and "arguments" not in call
    assert reply.data["redacted"] is True
    assert not leaks(json.dumps(reply.data))


def test_a_member_signed_by_another_id_is_still_no_owner(keeper: Served) -> None:
    reply = A2APeer(keeper.url, credentials=Credentials(SECRET, stranger())).send("hi")
    assert "text" not in reply.data["sources"][0]
    with pytest.raises(TeamError, match="401"):  # without the secret: not a member either
        A2APeer(keeper.url, credentials=Credentials(None, stranger())).send("hi")


def test_owner_gets_source_text_and_tool_output(keeper: Served) -> None:
    for credentials in (Credentials(None, owner()), Credentials(SECRET, owner())):
        reply = A2APeer(keeper.url, credentials=credentials).send("the recipe?")
        assert reply.data["sources"][0]["text"] == PRIVATE_TEXT
        assert reply.data["tool_calls"][0]["output"] == TOOL_OUTPUT
        assert "redacted" not in reply.data


def test_replayed_request_is_refused(keeper: Served) -> None:
    body = send_message_body()
    headers = signed(keeper.url, body, Credentials(SECRET))
    first = post(keeper.url, body, headers)
    assert first.status_code == 200, first.text
    assert "I found the recipe." in first.text and not leaks(first.text)
    again = post(keeper.url, body, headers)
    assert again.status_code == 401
    assert "replayed" in again.json()["error"]["message"]


def test_tampered_body_is_refused(keeper: Served) -> None:
    headers = signed(keeper.url, send_message_body("hello"), Credentials(SECRET))
    response = post(keeper.url, send_message_body("tell me every recipe"), headers)
    assert response.status_code == 401
    assert "MAC is wrong" in response.json()["error"]["message"]


def _mac_headers(url: str, body: bytes, issued: int, nonce: str) -> dict[str, str]:
    host = url.removeprefix("http://")
    text = canonical_text("POST", host, "/", issued, nonce, body)
    mac = hmac.new(SECRET.encode(), text, hashlib.sha256).hexdigest()
    return {**JSON, HEADER_ISSUED: str(issued), HEADER_NONCE: nonce, HEADER_MAC: mac}


def test_stale_and_future_requests_are_refused(keeper: Served) -> None:
    body = send_message_body()
    now = int(time.time() * 1000)
    for issued, nonce in ((now - 600_000, "ab" * 16), (now + 600_000, "cd" * 16)):
        response = post(keeper.url, body, _mac_headers(keeper.url, body, issued, nonce))
        assert response.status_code == 401
        assert "stale or from the future" in response.json()["error"]["message"]


def test_request_made_before_a_restart_is_refused_after_it() -> None:
    body = send_message_body()
    with Served(PrivateAgent(), secret=SECRET) as first:
        port = first.url.rsplit(":", 1)[1]
        headers = signed(first.url, body, Credentials(SECRET))
        assert post(first.url, body, headers).status_code == 200
    # The same agent again, on the same port (a restart): the recorded request is refused.
    again = _served_on(int(port))
    try:
        response = post(again.url, body, headers)
    finally:
        again.close()
    assert response.status_code == 401
    assert "before this agent started" in response.json()["error"]["message"]


def _served_on(port: int) -> Served:
    import tests.a2a_serving as serving

    original = serving.free_port
    serving.free_port = lambda: port
    try:
        return Served(PrivateAgent(), secret=SECRET)
    finally:
        serving.free_port = original


def test_request_to_one_member_cannot_be_replayed_to_another(keeper: Served) -> None:
    body = send_message_body()
    with Served(PrivateAgent("other"), secret=SECRET) as other:
        headers = signed(other.url, body, Credentials(SECRET))
        response = post(keeper.url, body, headers)  # same team secret, other host
    assert response.status_code == 401


def test_foreign_host_is_refused_even_for_the_card(keeper: Served) -> None:
    body = send_message_body()
    headers = {**signed(keeper.url, body, Credentials(SECRET)), "Host": "evil.example"}
    response = post(keeper.url, body, headers)
    assert response.status_code == 403
    assert response.json()["error"]["data"]["code"] == "agent.request_refused"
    card = httpx.get(keeper.url + CARD_PATH, headers={"Host": "evil.example:80"}, timeout=10)
    assert card.status_code == 403
    assert httpx.get(keeper.url + CARD_PATH, timeout=10).status_code == 200


def test_foreign_origin_is_refused(keeper: Served) -> None:
    body = send_message_body()
    headers = {**signed(keeper.url, body, Credentials(SECRET)), "Origin": "http://evil.example"}
    response = post(keeper.url, body, headers)
    assert response.status_code == 403
    assert not leaks(response.text)


def test_oversized_body_is_refused(keeper: Served) -> None:
    body = send_message_body("x" * 8192)  # the keeper takes 4096 bytes at most
    response = post(keeper.url, body, signed(keeper.url, body, Credentials(SECRET)))
    assert response.status_code == 413
    assert response.json()["error"]["data"]["code"] == "agent.request_invalid"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the guard counts what arrives
        yield body[:4000]
        yield body[4000:]

    streamed = httpx.post(keeper.url + "/", content=chunks(), headers=JSON, timeout=10)
    assert streamed.status_code == 413


def test_slow_body_is_cut_off(keeper: Served) -> None:
    host, port = keeper.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n{".encode()
        )
        reply = sock.recv(4096).decode(errors="replace")  # the rest never comes
    assert reply.startswith("HTTP/1.1 408"), reply


def test_card_is_public_and_holds_no_secret(keeper: Served) -> None:
    response = httpx.get(keeper.url + CARD_PATH, timeout=10)
    assert response.status_code == 200
    card = response.text
    assert SECRET not in card and owner().address.lower() not in card.lower()
    assert not leaks(card)


def test_member_refuses_a_non_loopback_host_without_network(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["--home", str(tmp_path), "--agent", "m0", "--port", "1", "--host", "0.0.0.0"]
    assert main(argv) == NetworkNotAllowed.exit_code
    assert "--network" in capsys.readouterr().err


def test_p2p_team_on_a_non_loopback_host_needs_network(tmp_path: Path) -> None:
    team = TeamSpec(name="wide", mode="p2p", members=["m0", "m1"], host="0.0.0.0")
    with pytest.raises(NetworkNotAllowed, match="only loopback without --network"):
        run_team(tmp_path, team, "anything")


def test_peers_are_asked_with_the_team_credentials() -> None:
    """A member consults its peers with the team secret (and its own ID)."""
    peer_agent = PrivateAgent("peer")
    with (
        Served(peer_agent, secret=SECRET, owner=owner().address) as peer,
        Served(PrivateAgent("asker"), secret=SECRET, signer=owner(), peers=[peer.url]) as asker,
    ):
        reply = A2APeer(asker.url, credentials=Credentials(SECRET)).send(
            "ask around", metadata={HOPS_KEY: 1}
        )
    [exchange] = reply.exchanges
    assert exchange.error is None and peer_agent.asked == ["ask around"]
    # The asker signed as the peer's owner, so it got the private parts; its own caller
    # (a member, not the owner) gets none of them, however deep they are nested.
    assert not leaks(json.dumps(reply.data))
    assert "text" not in exchange.data["sources"][0]


def test_malformed_hop_metadata_is_refused_cleanly(keeper: Served) -> None:
    peer = A2APeer(keeper.url, credentials=Credentials(SECRET))
    with pytest.raises(TeamError, match=r"sahara\.hops must be a whole number"):
        peer.send("hi", metadata={HOPS_KEY: "many"})
    with pytest.raises(TeamError, match=r"sahara\.visited must be a list"):
        peer.send("hi", metadata={"sahara.visited": "http://127.0.0.1:9"})


def test_body_that_is_not_utf8_json_is_a_parse_error(keeper: Served) -> None:
    body = b"\x00" * 9  # JSON parsers guess UTF-32 from the NULs
    response = post(keeper.url, body, signed(keeper.url, body, Credentials(SECRET)))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700
