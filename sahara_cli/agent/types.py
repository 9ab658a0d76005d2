"""Plain data shared by the agent modules: messages, tool calls, sources, answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class Message:
    """One chat message. ``name`` is the tool's name for a ``tool`` message."""

    role: Role
    content: str
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass
class ToolCall:
    """One call the Actor made: the tool, its arguments, and what came back."""

    tool: str
    arguments: dict[str, Any]
    ok: bool = True
    output: Any = None
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Source:
    """A piece of the vault (or long-term memory) retrieved for an answer."""

    cid: str
    name: str
    score: float
    text: str
    asset_id: int | None = None
    kind: Literal["vault", "memory", "feedback"] = "vault"
    private: bool = False  # text of an encrypted item (or of memory): the owner's only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def asset_ids(sources: list[Source]) -> list[int]:
    """The distinct on-chain assets of ``sources``, in order."""
    seen: list[int] = []
    for source in sources:
        if source.asset_id is not None and source.asset_id not in seen:
            seen.append(source.asset_id)
    return seen


@dataclass
class Answer:
    """What an agent returns for one message.

    ``record`` is the provenance record (see :mod:`sahara_cli.agent.record`) as a dict,
    filled in by the Brain once the answer is complete.
    """

    text: str
    sources: list[Source] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"

    @property
    def asset_ids(self) -> list[int]:
        """The distinct on-chain assets the answer's sources came from, in order."""
        return asset_ids(self.sources)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "sources": [s.to_dict() for s in self.sources],
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "record": self.record,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            },
            "finish_reason": self.finish_reason,
        }
