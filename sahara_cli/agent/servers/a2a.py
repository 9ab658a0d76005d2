"""Agents over the Agent2Agent (A2A) protocol: serve one, discover others, message them.

A served agent publishes its agent card at the well-known path
(``/.well-known/agent-card.json``) and answers A2A ``SendMessage`` calls over JSON-RPC
at ``/``. The reply is one A2A message: a text part with the answer and a data part
(``application/vnd.sahara.answer+json``) with the sources, tool calls, provenance
record and usage, so a caller can attribute and pay what the answer used.

Peers: an agent served with peer URLs may consult them. A request carries a hop budget
and the URLs already visited in its message metadata (``sahara.hops``,
``sahara.visited``). With a budget above zero the agent fetches its peers' cards,
chooses whom to ask (all of them when few, otherwise the model picks names with a
JSON-constrained choice), messages them with the budget less one, and answers with
their replies as context. The budget and the visited list make loops impossible.

Callers authenticate every request (a team secret, or the agent's own ID for its
owner) and only the owner sees the private parts of a reply: see
:mod:`sahara_cli.agent.servers.a2a_auth`. Any other caller is answered from public vault
items only (:func:`sahara_cli.agent.tools.registry.public_only`), and the agent asks its
peers on such a caller's behalf with the team secret alone. A2A clients never use an HTTP proxy from
the environment.

Teams start their peer-to-peer members as processes of their own
(:mod:`sahara_cli.agent.servers.a2a_member`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.client.errors import A2AClientError
from a2a.helpers import get_data_parts, new_data_part, new_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    Message,
    Role,
    SendMessageRequest,
)
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, TransportProtocol
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]

from sahara_cli.agent.servers.a2a_auth import (
    BODY_TIMEOUT,
    MAX_BODY,
    SECRET_ENV,
    A2AGuard,
    Credentials,
    SignedAuth,
    Verifier,
    caller_of,
    redact,
    require_loopback,
)
from sahara_cli.agent.servers.limits import DEFAULT_RATE_PER_IP
from sahara_cli.agent.types import Answer
from sahara_cli.agent.types import Message as ChatMessage
from sahara_cli.errors import AgentRequestInvalid, SaharaError, TeamError, UsageError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from sahara_cli.agent.runners.base import Runner
    from sahara_cli.agent.spec import AgentSpec

CARD_PATH = AGENT_CARD_WELL_KNOWN_PATH
RPC_PATH = "/"
ANSWER_MEDIA_TYPE = "application/vnd.sahara.answer+json"
HOPS_KEY = "sahara.hops"
VISITED_KEY = "sahara.visited"
DEFAULT_TIMEOUT = 600.0  # seconds for one message (the peer's model may be slow)
PEER_ANSWER_CHARS = 1200  # of each peer's reply shown to the model
MAX_HOPS = 8  # the most hops a request may ask for (a team's hops are at most 8 too)
MAX_VISITED = 64  # URLs a request may name as visited


class Answering(Protocol):
    """What serving needs of an agent (:class:`sahara_cli.agent.brain.Agent` has it)."""

    spec: AgentSpec
    runner: Runner

    def respond(self, messages: Sequence[ChatMessage]) -> Answer: ...


@dataclass
class Exchange:
    """One message to a peer and its reply (or the error that came instead)."""

    peer: str
    url: str
    task: str
    answer: str = ""
    seconds: float = 0.0
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # the peer's answer payload
    error_type: str | None = None  # the error's class: all a caller but the owner sees

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "url": self.url,
            "task": self.task,
            "answer": self.answer,
            "seconds": round(self.seconds, 4),
            "error": self.error,
            "error_type": self.error_type,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Exchange:
        return cls(
            peer=str(data.get("peer", "")),
            url=str(data.get("url", "")),
            task=str(data.get("task", "")),
            answer=str(data.get("answer", "")),
            seconds=float(data.get("seconds", 0.0)),
            error=data.get("error"),
            data=dict(data.get("data") or {}),
            error_type=data.get("error_type"),
        )


@dataclass
class Reply:
    """What an A2A agent sent back: its text and, from sahara agents, the payload."""

    text: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def exchanges(self) -> list[Exchange]:
        """The peers this agent consulted, in order."""
        return [Exchange.from_dict(e) for e in self.data.get("exchanges", [])]

    @property
    def record(self) -> dict[str, Any]:
        return dict(self.data.get("record") or {})


# --- the agent card ------------------------------------------------------------------


def agent_card(agent: Answering, url: str) -> AgentCard:
    """The card of ``agent`` served at ``url``: name, description, skills, interface."""
    from sahara_cli import __version__

    spec = agent.spec
    description = spec.description or spec.persona.strip().splitlines()[0]
    skills = [
        AgentSkill(
            id="answer",
            name=f"{spec.name}: answer",
            description=spec.persona.strip() or description,
            tags=["sahara", "answer", *_tool_names(agent)],
            input_modes=["text/plain"],
            output_modes=["text/plain", ANSWER_MEDIA_TYPE],
        )
    ]
    toolbox = getattr(agent, "toolbox", None)
    for tool in getattr(toolbox, "tools", {}).values():
        skills.append(
            AgentSkill(
                id=f"tool.{tool.name}",
                name=tool.name,
                description=tool.description or tool.name,
                tags=["tool", str(getattr(tool, "source", "builtin"))],
            )
        )
    return AgentCard(
        name=spec.name,
        description=description,
        version=__version__,
        provider=AgentProvider(organization="Sahara agent", url=url),
        supported_interfaces=[
            AgentInterface(
                url=url, protocol_binding=TransportProtocol.JSONRPC.value, protocol_version="1.0"
            )
        ],
        capabilities=AgentCapabilities(streaming=False, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain", ANSWER_MEDIA_TYPE],
        skills=skills,
    )


def _tool_names(agent: Answering) -> list[str]:
    toolbox = getattr(agent, "toolbox", None)
    return sorted(getattr(toolbox, "tools", {}))


def card_url(card: AgentCard) -> str:
    """The JSON-RPC URL a card advertises."""
    for iface in card.supported_interfaces:
        if iface.protocol_binding == TransportProtocol.JSONRPC.value:
            return str(iface.url)
    return str(card.supported_interfaces[0].url) if card.supported_interfaces else ""


def card_to_dict(card: AgentCard) -> dict[str, Any]:
    out: dict[str, Any] = MessageToDict(card)
    return out


# --- the client ----------------------------------------------------------------------


def _ints(value: Any) -> Any:
    """Data parts carry numbers as doubles: give whole numbers back their int type."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


class A2APeer:
    """An agent reached over A2A: resolve its card, send it a message signed with
    ``credentials`` (the team secret, the caller's ID, or both)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        credentials: Credentials | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.credentials = credentials or Credentials()
        self._card: AgentCard | None = None

    async def fetch_card(self) -> AgentCard:
        """The agent card at the well-known path (fetched once)."""
        if self._card is None:
            async with httpx.AsyncClient(timeout=30.0, trust_env=False) as http:
                try:
                    self._card = await A2ACardResolver(http, self.url).get_agent_card()
                except A2AClientError as exc:
                    raise TeamError(f"no agent card at {self.url}: {exc}") from exc
        return self._card

    async def send_async(self, text: str, *, metadata: Mapping[str, Any] | None = None) -> Reply:
        """Send ``text`` as a user message; the agent's reply."""
        card = await self.fetch_card()
        message = new_message([new_text_part(text)], role=Role.ROLE_USER)
        if metadata:
            message.metadata.update(dict(metadata))
        request = SendMessageRequest(message=message)
        auth = SignedAuth(self.credentials) if self.credentials else None
        # trust_env=False: never through an HTTP proxy named in the environment (owner
        # replies carry private text and tool output), and no credentials from .netrc.
        async with httpx.AsyncClient(timeout=self.timeout, auth=auth, trust_env=False) as http:
            client = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)
            try:
                async for event in client.send_message(request):
                    if event.HasField("message"):
                        return _reply(card.name, event.message)
                    if event.HasField("task") and event.task.status.HasField("message"):
                        return _reply(card.name, event.task.status.message)
            except A2AClientError as exc:
                raise TeamError(f"agent {card.name!r} at {self.url} failed: {exc}") from exc
            except httpx.HTTPError as exc:
                raise TeamError(f"agent {card.name!r} at {self.url} unreachable: {exc}") from exc
            finally:
                await client.close()
        raise TeamError(f"agent {card.name!r} at {self.url} sent no reply")

    def card(self) -> AgentCard:
        return asyncio.run(self.fetch_card())

    def send(self, text: str, *, metadata: Mapping[str, Any] | None = None) -> Reply:
        """Blocking :meth:`send_async` (not from inside a running event loop)."""
        return asyncio.run(self.send_async(text, metadata=metadata))


def _reply(name: str, message: Message) -> Reply:
    texts = [p.text for p in message.parts if p.HasField("text")]
    data: dict[str, Any] = {}
    for part, value in zip(
        [p for p in message.parts if p.HasField("data")],
        get_data_parts(list(message.parts)),
        strict=True,
    ):
        if isinstance(value, dict) and (part.media_type in ("", ANSWER_MEDIA_TYPE)):
            data.update(_ints(value))
    error = data.get("error")
    if isinstance(error, dict):
        raise TeamError(f"agent {name!r} failed: {error.get('message', error)}")
    return Reply(text="\n".join(texts), data=data)


async def discover_async(urls: Sequence[str]) -> list[AgentCard]:
    """The cards of the agents at ``urls``; an unreachable one raises :class:`TeamError`."""
    return list(await asyncio.gather(*(A2APeer(u).fetch_card() for u in urls)))


def discover(urls: Sequence[str]) -> list[AgentCard]:
    """Blocking :func:`discover_async`."""
    return asyncio.run(discover_async(urls))


# --- choosing peers ------------------------------------------------------------------


def choose_peers(
    runner: Runner, task: str, cards: Sequence[AgentCard], limit: int
) -> list[AgentCard]:
    """The peers to consult on ``task``: all when ``limit`` allows, else the model's pick.

    The model answers JSON constrained to the peers' names, so its pick always parses;
    names repeated are asked once.
    """
    if len(cards) <= limit:
        return list(cards)
    from sahara_cli.agent.runners.base import GenerationParams

    names = [c.name for c in cards]
    listing = "\n".join(f"- {c.name}: {c.description}" for c in cards)
    schema = {
        "type": "object",
        "properties": {
            "peers": {
                "type": "array",
                "items": {"type": "string", "enum": names},
                "minItems": 1,
                "maxItems": limit,
            }
        },
        "required": ["peers"],
    }
    messages = [
        ChatMessage(
            "system",
            f"Choose up to {limit} of these agents to consult on the task:\n{listing}\n"
            'Answer with JSON: {"peers": [names]}.',
        ),
        ChatMessage("user", task),
    ]
    picked = runner.complete_json(messages, schema, GenerationParams(max_tokens=64 * limit))
    chosen: list[AgentCard] = []
    for name in picked.get("peers", []):
        card = next((c for c in cards if c.name == name), None)
        if card is not None and card not in chosen:
            chosen.append(card)
    return chosen[:limit] or list(cards[:1])


# --- the server ----------------------------------------------------------------------


def _metadata(message: Message | None) -> dict[str, Any]:
    if message is None or not message.HasField("metadata"):
        return {}
    out: dict[str, Any] = _ints(MessageToDict(message.metadata))
    return out


def context_messages(task: str, exchanges: Sequence[Exchange]) -> list[ChatMessage]:
    """The history given to the Brain: peers' replies as context, then the task."""
    answered = [e for e in exchanges if e.error is None]
    if not answered:
        return [ChatMessage("user", task)]
    lines = ["Other agents were consulted on this task. Their replies:"]
    for e in answered:
        reply = e.answer.strip() or "(empty reply)"
        lines.append(f"[{e.peer}] {reply[:PEER_ANSWER_CHARS]}")
    lines.append("Use what helps, and answer the task yourself.")
    return [ChatMessage("system", "\n".join(lines)), ChatMessage("user", task)]


def route(meta: Mapping[str, Any]) -> tuple[int, list[str]]:
    """The hop budget (at most :data:`MAX_HOPS`) and the visited URLs of a request's
    metadata; :class:`AgentRequestInvalid` for values of the wrong shape."""
    hops = meta.get(HOPS_KEY, 0) or 0
    if isinstance(hops, str) and hops.isdigit():
        hops = int(hops)
    visited = meta.get(VISITED_KEY, []) or []
    if isinstance(hops, bool) or not isinstance(hops, int):
        raise AgentRequestInvalid(f"{HOPS_KEY} must be a whole number, not {hops!r:.40}")
    if not isinstance(visited, list) or len(visited) > MAX_VISITED:
        raise AgentRequestInvalid(f"{VISITED_KEY} must be a list of at most {MAX_VISITED} URLs")
    if not all(isinstance(v, str) and len(v) <= 2048 for v in visited):
        raise AgentRequestInvalid(f"{VISITED_KEY} must hold URLs")
    return min(max(0, hops), MAX_HOPS), [v.rstrip("/") for v in visited]


class SaharaAgentExecutor(AgentExecutor):
    """Answers A2A messages with a sahara agent, consulting peers within a hop budget.

    The agent's model runs in a worker thread, one message at a time (a runner is not
    thread-safe); peers are awaited without holding it, so agents that consult each
    other cannot deadlock.
    """

    def __init__(
        self,
        agent: Answering,
        *,
        url: str,
        peers: Sequence[str] = (),
        max_peers: int = 3,
        timeout: float = DEFAULT_TIMEOUT,
        credentials: Credentials | None = None,
    ) -> None:
        self.agent = agent
        self.url = url.rstrip("/")
        self.peers = [p.rstrip("/") for p in peers if p.rstrip("/") != self.url]
        self.max_peers = max_peers
        self.timeout = timeout
        self.credentials = credentials or Credentials()
        self._lock = threading.Lock()

    def _locked(self, func: Any, *args: Any) -> Any:
        with self._lock:
            return func(*args)

    def _answer(self, messages: list[ChatMessage], owner: bool) -> Answer:
        """The agent's answer; for a caller other than the owner, built from public
        vault items only (no private passage reaches the model, so none can be quoted)."""
        from sahara_cli.agent.tools.registry import public_only

        with self._lock:
            if owner:
                return self.agent.respond(messages)
            with public_only():
                return self.agent.respond(messages)

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        caller = caller_of(context.call_context.state)
        owner = caller is not None and caller.owner
        task = context.get_user_input()
        data: dict[str, Any]
        text = ""
        try:
            hops, visited = route(_metadata(context.message))
            if self.url not in visited:
                visited.append(self.url)
            exchanges = await self._consult(task, hops, visited, owner)
            answer: Answer = await asyncio.to_thread(
                self._answer, context_messages(task, exchanges), owner
            )
            text = answer.text
            data = {
                "agent": self.agent.spec.name,
                "url": self.url,
                **answer.to_dict(),
                "hops": hops,
                "visited": visited,
                "exchanges": [e.to_dict() for e in exchanges],
            }
            data.pop("answer", None)
        except SaharaError as exc:
            data = {"agent": self.agent.spec.name, "url": self.url, "error": exc.to_dict()}
        except Exception as exc:  # the caller gets the message, not a hang
            detail = f"{type(exc).__name__}: {exc}" if owner else type(exc).__name__
            data = {
                "agent": self.agent.spec.name,
                "url": self.url,
                "error": {"code": "agent.error", "message": detail},
            }
        if not owner and "error" not in data:
            data = redact(data)  # only the owner sees source text and tool output
        parts = [new_text_part(text), new_data_part(data, media_type=ANSWER_MEDIA_TYPE)]
        await event_queue.enqueue_event(new_message(parts, context_id=context.context_id))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:  # noqa: ARG002
        from a2a.types import TaskNotCancelableError

        raise TaskNotCancelableError

    async def _consult(
        self, task: str, hops: int, visited: list[str], owner: bool
    ) -> list[Exchange]:
        candidates = [u for u in self.peers if u not in visited]
        if hops <= 0 or not candidates:
            return []
        # Peers are asked as this agent's caller may be answered: with its ID (so a peer
        # with the same owner answers in full) only on the owner's behalf, otherwise
        # with the team secret alone (a non-owner caller always signs with it).
        credentials = self.credentials if owner else Credentials(self.credentials.secret)
        peers = [A2APeer(u, timeout=self.timeout, credentials=credentials) for u in candidates]
        found = await asyncio.gather(*(p.fetch_card() for p in peers), return_exceptions=True)
        cards = [c for c in found if isinstance(c, AgentCard)]
        by_card = {id(c): p for c, p in zip(found, peers, strict=True) if isinstance(c, AgentCard)}
        exchanges = [
            Exchange(peer=p.url, url=p.url, task=task, error=str(c), error_type=type(c).__name__)
            for c, p in zip(found, peers, strict=True)
            if not isinstance(c, AgentCard)
        ]
        if not cards:
            return exchanges
        chosen = await asyncio.to_thread(
            self._locked, choose_peers, self.agent.runner, task, cards, self.max_peers
        )
        # Everyone asked now counts as visited, so peers do not ask each other in turn.
        visited = [*visited, *(by_card[id(c)].url for c in chosen)]
        meta = {HOPS_KEY: hops - 1, VISITED_KEY: visited}

        async def ask(card: AgentCard) -> Exchange:
            peer = by_card[id(card)]
            started = time.perf_counter()
            try:
                reply = await peer.send_async(task, metadata=meta)
            except TeamError as exc:
                return Exchange(
                    card.name,
                    peer.url,
                    task,
                    seconds=_since(started),
                    error=str(exc),
                    error_type=type(exc).__name__,
                )
            return Exchange(
                card.name, peer.url, task, reply.text, _since(started), None, reply.data
            )

        exchanges.extend(await asyncio.gather(*(ask(c) for c in chosen)))
        return exchanges


def _since(started: float) -> float:
    return time.perf_counter() - started


def build_app(
    agent: Answering,
    url: str,
    *,
    credentials: Credentials | None = None,
    owner: str | None = None,
    peers: Sequence[str] = (),
    max_peers: int = 3,
    timeout: float = DEFAULT_TIMEOUT,
    max_body: int = MAX_BODY,
    body_timeout: float = BODY_TIMEOUT,
) -> Starlette:
    """A Starlette app serving ``agent`` over A2A, its card at the well-known path.

    Callers must sign with the team secret of ``credentials`` or be ``owner`` (the
    address of the agent's ID), who alone sees source text and tool output. The agent
    signs its own requests to ``peers`` with ``credentials``.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    credentials = credentials or Credentials()
    if credentials.secret is None and owner is None:
        raise UsageError(
            "an A2A agent needs a team secret or an owner ID, or no one could call it",
            hint=f"Set {SECRET_ENV}, or unlock the agent's ID.",
        )
    card = agent_card(agent, url)
    executor = SaharaAgentExecutor(
        agent, url=url, peers=peers, max_peers=max_peers, timeout=timeout, credentials=credentials
    )
    handler = DefaultRequestHandler(
        agent_executor=executor, task_store=InMemoryTaskStore(), agent_card=card
    )
    routes = [*create_agent_card_routes(card), *create_jsonrpc_routes(handler, rpc_url=RPC_PATH)]
    verifier = Verifier(url, secret=credentials.secret, owner=owner)
    guard = Middleware(
        A2AGuard,
        verifier=verifier,
        public=[CARD_PATH],
        max_body=max_body,
        body_timeout=body_timeout,
    )
    return Starlette(routes=routes, middleware=[guard])


def serve_a2a(
    agent: Answering,
    host: str,
    port: int,
    peers: Sequence[str] = (),
    *,
    credentials: Credentials | None = None,
    owner: str | None = None,
    network: bool = False,
    public_url: str | None = None,
    max_peers: int = 3,
    timeout: float = DEFAULT_TIMEOUT,
    log_level: str = "warning",
    rate_per_ip: float | None = DEFAULT_RATE_PER_IP,
) -> None:
    """Serve ``agent`` over A2A on ``host:port`` until interrupted; beyond loopback
    only with ``network``; at most ``rate_per_ip`` requests a second from one address
    (None: no limit)."""
    import uvicorn

    from sahara_cli.agent.servers.limits import limited

    require_loopback(host, network)
    url = public_url or f"http://{host}:{port}"
    app = build_app(
        agent,
        url,
        credentials=credentials,
        owner=owner,
        peers=peers,
        max_peers=max_peers,
        timeout=timeout,
    )
    uvicorn.run(
        limited(app, rate_per_ip), host=host, port=port, log_level=log_level, access_log=False
    )
