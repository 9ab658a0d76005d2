"""Typed results of the agent operations: what ``sahara agent ...`` and ``sahara mcp ...``
print with ``--json``, and what the library functions behind them return.

A light module: pydantic, typing and :mod:`sahara_cli.results` only, so the commands can
name these models without loading the agent's machinery. The conventions of
:mod:`sahara_cli.results` hold (``asset_id``, ISO 8601 UTC times, ``*_wei`` with ``*_sah``,
checksummed addresses, one :class:`~sahara_cli.results.Transaction` per sent transaction).

Two parts stay free-form objects on purpose: an answer's provenance ``record`` (its keys
are hashed into the digest committed on chain, so they keep the record's own format) and
the agent cards of a peer-to-peer team (the Agent2Agent wire format).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, RootModel

from sahara_cli.results import Address, Result, Sah, Timestamp, Transaction, Wei

__all__ = [
    "AgentAnswer",
    "AgentKeyMade",
    "AgentKeyResult",
    "AgentKeyRevocation",
    "AgentList",
    "AgentPublished",
    "AgentRemoved",
    "AgentServeStopped",
    "AgentSpecDocument",
    "AgentSummary",
    "AgentTemplate",
    "AgentTemplates",
    "AnswerSource",
    "FeedbackEntry",
    "FeedbackExport",
    "FeedbackList",
    "McpOwnerKey",
    "McpServeStopped",
    "McpTool",
    "McpTools",
    "TeamRun",
    "TeamSubtask",
    "TokenUsage",
    "ToolCallRecord",
]


class AgentSpecDocument(Result):
    """An agent's spec (``agent create``, ``agent show``)."""

    name: str
    path: str = Field(description="the spec's TOML file")
    spec: dict[str, Any] = Field(description="the spec, as in its TOML file")


class AgentTemplate(Result):
    template: str
    description: str


class AgentTemplates(Result):
    """The no-code agent templates (``agent templates``)."""

    templates: list[AgentTemplate]


class AgentSummary(Result):
    name: str
    description: str
    model: str = Field(description="the model's name in the store, or its path")
    runner: str | None = Field(description="llama or torch; null: chosen from the model")
    tools: list[str] = Field(description="built-in, entry-point and mcp:SERVER tools")
    asset_id: int | None = Field(description="the agent's asset once published")


class AgentList(Result):
    """This home's agents (``agent list``)."""

    agents: list[AgentSummary]


class AgentRemoved(Result):
    """``agent rm``: the agent removed, with its feedback and records."""

    removed: str = Field(description="the agent's name")


class AnswerSource(Result):
    """A piece of the vault (or of memory) an answer was made from."""

    cid: str
    name: str
    score: float
    text: str
    asset_id: int | None = None
    kind: Literal["vault", "memory", "feedback"] = "vault"
    private: bool = False


class ToolCallRecord(Result):
    """One call of a tool while answering."""

    tool: str
    arguments: dict[str, Any]
    ok: bool = True
    output: Any = None
    error: str | None = None
    seconds: float = Field(0.0, description="time the call took (fractions of a second)")


class TokenUsage(Result):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class AgentAnswer(Result):
    """An agent's answer to one message (``agent chat --message``, ``agent run``)."""

    agent: str
    answer: str
    sources: list[AnswerSource] = Field(default_factory=list)
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    record: dict[str, Any] = Field(
        default_factory=dict,
        description="the provenance record (its own hashed format, with its digest)",
    )
    usage: TokenUsage = TokenUsage()
    finish_reason: str | None = None
    tx: Transaction | None = Field(None, description="the record's commitment (--record)")


class FeedbackEntry(Result):
    feedback_id: int
    rated_at: Timestamp
    question: str
    answer: str
    rating: str
    correction: str | None = None


class FeedbackList(Result):
    """Rated answers and corrections (``agent feedback list``)."""

    feedback: list[FeedbackEntry]


class FeedbackExport(Result):
    """``agent feedback export``: the chat-format training set written."""

    agent: str
    out: str
    written: int
    skipped: int


class AgentPublished(Result):
    """``agent publish``: the agent as an asset with an API offer at a price per call."""

    agent: str
    owner: Address
    asset_id: int
    model_asset_id: int | None = Field(description="the model's asset it derives from")
    parents: list[int]
    upstream_bps: int
    meter: Address
    offer_id: int
    price_per_call_wei: Wei
    price_per_call_sah: Sah = ""
    register_tx: Transaction | None = Field(None, description="None when already registered")
    meter_tx: Transaction | None = Field(None, description="None when the meter was already set")
    offer_tx: Transaction


class AgentKeyMade(Result):
    """``agent key AGENT``: an API key for calling a served agent."""

    api_key: str
    key_id: str
    expires_at: Timestamp
    address: Address
    asset_id: int = Field(description="the agent's asset")
    agent: str = Field(description="the agent's asset name")
    chain_id: int
    ttl_s: int
    calls_left: int = Field(description="calls left on the caller's API licenses")
    owner: bool = Field(description="whether the caller owns the agent")


class AgentKeyRevocation(Result):
    """``agent key revoke KEY``: a key revoked at a server or in an agent of this home."""

    revoked: bool
    key_id: str
    already: bool = Field(description="whether it was revoked before")
    agent: str | None = Field(None, description="the agent of this home (--agent)")
    url: str | None = Field(None, description="the served agent's API (--url)")


class AgentKeyResult(RootModel[AgentKeyMade | AgentKeyRevocation]):
    """``agent key``: a key made, or (``agent key revoke``) a key revoked."""


class AgentServeStopped(Result):
    """``agent serve`` once it stops."""

    stopped: bool
    url: str
    agent: str
    asset_id: int


class TeamSubtask(Result):
    worker: str
    task: str
    answer: str = ""
    seconds: float = 0.0
    error: str | None = None
    asked_by: str | None = Field(None, description="p2p: the member that consulted this one")
    sources: list[dict[str, Any]] = Field(default_factory=list)
    record: dict[str, Any] = Field(default_factory=dict)


class TeamRun(Result):
    """``agent team run``: the merged answer and each member's part."""

    team: str
    mode: str
    task: str
    answer: str
    subtasks: list[TeamSubtask]
    records: dict[str, list[dict[str, Any]]] = Field(description="provenance per member")
    sources: list[dict[str, Any]]
    timings: dict[str, float] = Field(description="seconds per phase, and 'total'")
    members: dict[str, str] = Field(description="p2p: member name to its A2A URL")
    cards: list[dict[str, Any]] = Field(description="p2p: the agent cards discovered")


class McpServeStopped(Result):
    """``mcp serve --transport http`` once it stops (stdio prints no document)."""

    stopped: bool
    url: str


class McpOwnerKey(Result):
    """``mcp key``: an owner key for ``mcp serve --transport http``."""

    owner_key: str
    address: Address
    identity: str = Field(description="the ID's name")
    ttl_s: int
    expires_at: Timestamp


class McpTool(Result):
    name: str
    description: str
    input_schema: dict[str, Any]


class McpTools(Result):
    """The tools ``mcp serve`` offers (``mcp tools``)."""

    tools: list[McpTool]
