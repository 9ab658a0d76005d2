"""What leaves a served A2A agent, beyond who may call it (test_a2a_security.py): no
request goes through an HTTP proxy, a caller other than the owner gets no answer built
from private vault text, peers' error details stay with the owner, a request dated in
the future cannot outlive a restart, and the team secret and the ID's password do not
stay in a member's environment for its children to inherit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sahara_cli.agent.runners.base import Completion, GenerationParams, Runner
from sahara_cli.agent.servers.a2a import HOPS_KEY, A2APeer
from sahara_cli.agent.servers.a2a_auth import (
    HEADER_ISSUED,
    HEADER_MAC,
    HEADER_NONCE,
    SECRET_ENV,
    Credentials,
    Verifier,
    canonical_text,
    new_secret,
)
from sahara_cli.agent.servers.a2a_member import main
from sahara_cli.agent.spec import AgentSpec
from sahara_cli.agent.types import Answer, Message
from sahara_cli.errors import AgentAuthFailed
from tests.a2a_serving import PrivateAgent, Served, owner, send_message_body

SECRET = new_secret()

# -- 1. no proxy between A2A clients and agents ---------------------------------------


class Listener:
    """A TCP listener on loopback that records every connection it gets (a stand-in
    for an HTTP proxy that would read what passes through it) and answers 502."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    listener = Listener()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, listener.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield listener
    listener.close()


def test_a2a_calls_ignore_proxy_settings(proxy: Listener) -> None:
    with Served(PrivateAgent(), secret=SECRET, owner=owner().address) as served:
        for url in (served.url, served.url.replace("127.0.0.1", "localhost")):
            peer = A2APeer(url, credentials=Credentials(SECRET, owner()))
            reply = peer.send("the recipe?")  # the owner's reply, with the private parts
            assert reply.text == "I found the recipe."
    assert proxy.seen == [], "an A2A request went through the proxy"


def test_team_readiness_check_ignores_proxy_settings(proxy: Listener, tmp_path: Path) -> None:
    from sahara_cli.agent.team import _Process, _wait_ready

    events: list[Any] = []
    with Served(PrivateAgent(), secret=SECRET) as served:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            member = _Process("m0", served.url, proc, tmp_path / "m0.log")
            _wait_ready([member], 10.0, events.append)
        finally:
            proc.kill()
            proc.wait()
    assert [e.kind for e in events] == ["ready"]
    assert proxy.seen == []


# -- 3. a request from the future does not outlive a restart --------------------------


def _mac_headers(host: str, body: bytes, issued: int) -> dict[str, str]:
    import hashlib
    import hmac

    nonce = os.urandom(16).hex()
    text = canonical_text("POST", host, "/", issued, nonce, body)
    mac = hmac.new(SECRET.encode(), text, hashlib.sha256).hexdigest()
    return {"host": host, HEADER_ISSUED.lower(): str(issued), HEADER_NONCE.lower(): nonce,
            HEADER_MAC.lower(): mac}  # fmt: skip


def test_request_dated_in_the_future_is_refused_by_a_restarted_agent() -> None:
    host = "127.0.0.1:50123"
    body = send_message_body()
    headers = _mac_headers(host, body, int(time.time() * 1000) + 100_000)
    fresh = Verifier(f"http://{host}", secret=SECRET, owner=None)  # the agent restarted
    with pytest.raises(AgentAuthFailed, match="from the future"):
        fresh.authenticate("POST", "/", headers, body)
    # A clock a little ahead (2 s) is still taken, once.
    ahead = _mac_headers(host, body, int(time.time() * 1000) + 2_000)
    assert fresh.authenticate("POST", "/", ahead, body).owner is False
    with pytest.raises(AgentAuthFailed, match="replayed"):
        fresh.authenticate("POST", "/", ahead, body)


# -- 4. secrets do not stay in a member's environment ---------------------------------


def test_member_takes_the_password_and_team_secret_out_of_its_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAHARA_PASSWORD", "correct horse battery staple")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    # No such agent: the member stops with an error, after reading its credentials.
    code = main(["--home", str(tmp_path), "--agent", "ghost", "--port", "1"])
    assert code != 0 and "error:" in capsys.readouterr().err
    assert "SAHARA_PASSWORD" not in os.environ and SECRET_ENV not in os.environ
    # So no child of the member (an IPFS daemon, a tool) inherits them.
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(sorted(os.environ))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "SAHARA_PASSWORD" not in child.stdout and SECRET_ENV not in child.stdout


def test_ipfs_daemon_environment_holds_no_sahara_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sahara_cli.vault.kubo import KuboDaemon

    monkeypatch.setenv("SAHARA_PASSWORD", "correct horse battery staple")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.setenv("SAHARA_MCP_TOKEN", "a-bearer-token-for-something")
    env = KuboDaemon(tmp_path / "ipfs", "ipfs")._env()
    assert not [name for name in env if name.startswith("SAHARA_")]
    assert SECRET not in env.values()
    assert env["IPFS_PATH"] == str(tmp_path / "ipfs") and env["PATH"] == os.environ["PATH"]


# -- 5. peers' error details reach the owner only -------------------------------------

DETAIL = "cannot read /home/alice/okapi-ledger.md: the okapi ledger is locked"


class FailingAgent(PrivateAgent):
    def respond(self, messages: Sequence[Message]) -> Answer:
        raise RuntimeError(DETAIL)


def test_peer_error_details_reach_only_the_owner() -> None:
    with (
        Served(FailingAgent("peer"), secret=SECRET, owner=owner().address) as peer,
        Served(
            PrivateAgent("asker"),
            secret=SECRET,
            owner=owner().address,
            signer=owner(),  # the asker signs as the peer's owner: it gets the detail
            peers=[peer.url],
        ) as asker,
    ):
        meta = {HOPS_KEY: 1}
        member = A2APeer(asker.url, credentials=Credentials(SECRET)).send("ask", metadata=meta)
        mine = A2APeer(asker.url, credentials=Credentials(None, owner())).send("ask", metadata=meta)
    [seen] = member.exchanges
    assert seen.error is not None and "okapi" not in seen.error and "alice" not in seen.error
    assert seen.error == "TeamError"
    [full] = mine.exchanges
    assert full.error is not None and DETAIL in full.error


# -- 2. a caller other than the owner gets no answer built from private text ----------

PRIVATE_NOTE = "Okapis of the Epulu station hide their salt lick behind the third fig tree."
PUBLIC_NOTE = "Okapis feed on the forest edge at dawn and rest at noon."


class EchoRunner(Runner):
    """Stands in for a model that repeats everything it was shown: the reply is every
    message of its context. Its first step calls ``vault_search`` when it has it."""

    kind = "echo"
    model_path = Path("echo")

    def __init__(self, search: bool) -> None:
        self.search = search
        self._last = Completion("", 0, 0, "stop")

    @property
    def context_length(self) -> int:
        return 1_000_000

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def stream_chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams = GenerationParams(),
        *,
        images: Sequence[Path] = (),
    ) -> Iterator[str]:
        for m in messages:
            yield f"{m.role}: {m.content}\n"
        self._last = Completion("", 1, 1, "stop")

    def complete_json(
        self,
        messages: Sequence[Message],
        schema: dict[str, Any],
        params: GenerationParams = GenerationParams(),
    ) -> dict[str, Any]:
        props = schema.get("properties", {})
        if "tool" in props:  # plan: search once, then answer
            searched = any(m.content.startswith("Calling vault_search") for m in messages)
            return {"thought": "look it up", "tool": "answer" if searched else "vault_search"}
        return {"query": "okapi salt lick forest", "k": 4}

    @property
    def last(self) -> Completion:
        return self._last


@pytest.fixture
def notes_home(cli: Any, initialised: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from sahara_cli.identity.store import KeyStore
    from tests.conftest import PASSWORD

    private = tmp_path / "okapi-secrets.md"
    private.write_text(PRIVATE_NOTE + "\n")
    public = tmp_path / "okapi-notes.md"
    public.write_text(PUBLIC_NOTE + "\n")
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    for path, extra in ((private, []), (public, ["--public"])):
        result = cli("--json", "--no-prompt", "vault", "add", str(path), *extra)
        assert result.exit_code == 0, result.stderr
    monkeypatch.delenv("SAHARA_PASSWORD")
    return initialised, KeyStore(initialised / "keystore").unlock(None, PASSWORD)


def _agent(home: Path, signer: Any, search_tool: bool) -> Any:
    from sahara_cli.agent.brain import Agent
    from sahara_cli.agent.tools.context import ToolContext
    from sahara_cli.agent.tools.registry import build_toolbox

    spec = AgentSpec.model_validate(
        {
            "name": "ranger",
            "description": "Knows the okapis.",
            "persona": "You know the okapis.",
            "tools": {"builtin": ["vault_search"] if search_tool else []},
            "vault": {"search": not search_tool, "top_k": 4, "min_score": -1.0},
            "loop": {"max_steps": 2 if search_tool else 0},
        }
    )
    ctx = ToolContext(home, rpc_url="", signer=signer, spec=spec)
    agent = Agent(spec, EchoRunner(search_tool), build_toolbox(spec, ctx), ctx=ctx)
    agent._closers.append(ctx.close)
    return agent


@pytest.mark.parametrize("search_tool", [False, True], ids=["retrieval", "vault_search"])
def test_non_owner_gets_no_answer_built_from_private_text(
    notes_home: Any, search_tool: bool
) -> None:
    import json

    home, signer = notes_home
    with (
        _agent(home, signer, search_tool) as agent,
        Served(agent, secret=SECRET, owner=signer.address) as served,
    ):
        member = A2APeer(served.url, credentials=Credentials(SECRET)).send("okapi salt lick?")
        mine = A2APeer(served.url, credentials=Credentials(None, signer)).send("okapi salt lick?")
    everything = member.text + json.dumps(member.data)
    assert PRIVATE_NOTE not in everything and "salt lick behind" not in everything
    assert "okapi-secrets.md" not in everything  # not even the private item's name
    assert PUBLIC_NOTE in member.text  # public text still answers
    # The owner's view is as before: the private passage is in the context and sources.
    assert PRIVATE_NOTE in mine.text
    if not search_tool:
        assert PRIVATE_NOTE in [s["text"].strip() for s in mine.data["sources"]]


def test_non_owner_gets_no_private_text_through_a_peer(notes_home: Any) -> None:
    """An agent asks its peers with its owner's ID only on the owner's behalf: for a
    team member it asks with the team secret, so a peer of the same owner answers from
    public items too, and its answer cannot carry a private passage back."""
    import json

    home, signer = notes_home
    with (
        _agent(home, signer, False) as peer_agent,
        Served(peer_agent, secret=SECRET, owner=signer.address) as peer,
        _agent(home, signer, False) as asker_agent,
        Served(
            asker_agent, secret=SECRET, owner=signer.address, signer=signer, peers=[peer.url]
        ) as asker,
    ):
        asker_agent.spec.vault.search = False  # what it knows comes from the peer
        meta = {HOPS_KEY: 1}
        member = A2APeer(asker.url, credentials=Credentials(SECRET)).send("okapi?", metadata=meta)
        mine = A2APeer(asker.url, credentials=Credentials(None, signer)).send(
            "okapi?", metadata=meta
        )
    [exchange] = member.exchanges
    assert exchange.error is None and PUBLIC_NOTE in exchange.answer
    everything = member.text + json.dumps(member.data)
    assert PRIVATE_NOTE not in everything and "okapi-secrets.md" not in everything
    assert PRIVATE_NOTE in mine.text  # the owner's answer draws on the peer's private note
