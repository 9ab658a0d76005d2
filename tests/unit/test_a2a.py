"""One sahara agent (tiny random GGUF, real llama.cpp) served over A2A in-process, and
reached with the official a2a-sdk client and with sahara's own A2APeer, both signing
with the team secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sahara_cli import __version__
from sahara_cli.agent.servers.a2a import (
    ANSWER_MEDIA_TYPE,
    CARD_PATH,
    HOPS_KEY,
    VISITED_KEY,
    A2APeer,
    choose_peers,
    discover,
)
from sahara_cli.agent.servers.a2a_auth import Credentials, SignedAuth, new_secret
from sahara_cli.errors import TeamError
from tests.a2a_serving import Served
from tests.agent_models import save_tiny_agent

pytest_plugins = ("tests.agent_models",)  # the tiny_gguf fixture

SECRET = new_secret()
MEMBER = Credentials(SECRET)


@pytest.fixture(scope="module")
def agent(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from sahara_cli.agent.brain import open_agent

    home = tmp_path_factory.mktemp("home")
    save_tiny_agent(home, "solo", tiny_gguf)
    with open_agent(home, "solo") as opened:
        yield opened


@pytest.fixture(scope="module")
def solo(agent: Any) -> Iterator[str]:
    served = Served(agent, secret=SECRET)
    yield served.url
    served.close()


def test_card_is_served_at_the_well_known_path(solo: str) -> None:
    card = httpx.get(solo + CARD_PATH, timeout=10).json()
    assert card["name"] == "solo"
    assert card["description"] == "The solo agent of the tests."
    assert card["version"] == __version__
    assert card["supportedInterfaces"][0]["url"] == solo
    assert card["supportedInterfaces"][0]["protocolBinding"] == "JSONRPC"
    skills = {s["id"]: s for s in card["skills"]}
    assert "You are solo" in skills["answer"]["description"]
    assert "tool.calculator" in skills


def test_official_client_gets_the_answer_with_its_record(solo: str) -> None:
    import asyncio

    from a2a.client import ClientConfig, create_client
    from a2a.helpers import get_data_parts, new_text_message
    from a2a.types import Role, SendMessageRequest

    async def ask() -> Any:
        http = httpx.AsyncClient(auth=SignedAuth(MEMBER), timeout=60)
        config = ClientConfig(streaming=False, httpx_client=http)
        client = await create_client(solo, client_config=config)
        try:
            request = SendMessageRequest(message=new_text_message("hello", role=Role.ROLE_USER))
            return [event async for event in client.send_message(request)]
        finally:
            await client.close()
            await http.aclose()

    events = asyncio.run(ask())
    assert len(events) == 1 and events[0].HasField("message")
    message = events[0].message
    assert message.role == Role.ROLE_AGENT
    texts = [p.text for p in message.parts if p.HasField("text")]
    data_parts = [p for p in message.parts if p.HasField("data")]
    assert len(texts) == 1 and texts[0].strip()
    assert [p.media_type for p in data_parts] == [ANSWER_MEDIA_TYPE]
    data = get_data_parts(data_parts)[0]
    assert data["agent"] == "solo"
    assert data["record"]["agent"] == "solo"
    assert data["exchanges"] == []


def test_a2a_peer_sends_and_reads_the_payload(solo: str) -> None:
    reply = A2APeer(solo, credentials=MEMBER).send(
        "what is two and two", metadata={HOPS_KEY: 0, VISITED_KEY: []}
    )
    assert reply.text.strip()
    assert reply.record["agent"] == "solo"
    assert reply.data["hops"] == 0 and isinstance(reply.data["hops"], int)
    assert reply.data["visited"] == [solo]
    assert reply.exchanges == []


def test_discover_returns_cards_and_refuses_an_unreachable_url(solo: str) -> None:
    [card] = discover([solo])
    assert card.name == "solo"
    with pytest.raises(TeamError, match=r"no agent card at http://127\.0\.0\.1:9"):
        discover(["http://127.0.0.1:9"])


def test_unreachable_peer_is_an_exchange_error_not_a_failure(agent: Any) -> None:
    served = Served(agent, secret=SECRET, peers=["http://127.0.0.1:9"])
    url = served.url
    try:
        with_budget = A2APeer(url, credentials=MEMBER).send("hi", metadata={HOPS_KEY: 1})
        without = A2APeer(url, credentials=MEMBER).send("hi", metadata={HOPS_KEY: 0})
    finally:
        served.close()
    [exchange] = with_budget.exchanges
    assert exchange.url == "http://127.0.0.1:9"
    assert exchange.error == "TeamError"  # a member sees the class, the owner the details
    assert with_budget.text.strip()
    assert without.exchanges == []


def test_the_model_chooses_among_peer_names(agent: Any) -> None:
    from a2a.types import AgentCard

    cards = [AgentCard(name=n, description=f"{n} things") for n in ("ann", "bob", "cyd")]
    chosen = choose_peers(agent.runner, "who knows about things?", cards, limit=2)
    assert 1 <= len(chosen) <= 2
    assert {c.name for c in chosen} <= {"ann", "bob", "cyd"}
    assert len({c.name for c in chosen}) == len(chosen)
    # Few enough peers: all are asked, the model is not consulted.
    assert choose_peers(agent.runner, "x", cards, limit=3) == cards
