"""The agent spec: one TOML file that says who an agent is and what it may use.

```toml
name = "researcher"
description = "Answers questions from the vault, with sources."
persona = "You are a careful research assistant..."

[model]           # a name in the model store, or a path; runner "llama" or "torch"
name = "default"
runner = "llama"

[tools]
builtin = ["vault_search", "calculator"]

[serve]           # what 'agent serve' callers get: private text only from these scopes
private_scopes = []
max_quote_words = 25

[adapter]         # a LoRA adapter on the model (torch runner), set by 'agent learn'
path = "adapters/<job>"

[[mcp]]           # tools of an MCP server
name = "files"
transport = "stdio"
command = ["python", "files_server.py"]
```

Agents live in ``<home>/agents/<name>/agent.toml``; their memory, feedback and records
sit beside it. Templates (``templates/agents/*.toml``) are specs with a placeholder name.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sahara_cli.errors import AgentExists, AgentNotFound, AgentSpecInvalid, SaharaError
from sahara_cli.fsutil import atomic_write

M = TypeVar("M", bound=BaseModel)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BUILTIN_TOOLS = (
    "vault_search",
    "asset_lookup",
    "license_check",
    "balance",
    "calculator",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    name: str = "default"  # model store name, "default", or a path to a model file / dir
    runner: Literal["llama", "torch"] | None = None  # None: what the model store says
    n_ctx: int = Field(2048, ge=128, le=1 << 20)
    n_gpu_layers: int = Field(0, ge=-1)
    threads: int | None = Field(None, ge=1)
    device: str | None = None
    mmproj: str | None = None  # multimodal projector (GGUF) for images


class GenerationSpec(_Strict):
    max_tokens: int = Field(256, ge=1, le=32768)
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    seed: int | None = None


class ToolsSpec(_Strict):
    builtin: list[str] = Field(default_factory=lambda: ["vault_search", "calculator"])
    entry_points: list[str] = Field(default_factory=list)  # names in group "sahara.tools"

    @field_validator("builtin")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in BUILTIN_TOOLS]
        if unknown:
            raise ValueError(
                f"unknown built-in tool(s) {', '.join(unknown)}; known: {', '.join(BUILTIN_TOOLS)}"
            )
        return value


class McpServerSpec(_Strict):
    name: str
    transport: Literal["stdio", "http"] = "stdio"
    command: list[str] = Field(default_factory=list)  # stdio: argv of the server
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None  # http: the streamable-HTTP endpoint
    tools: list[str] = Field(default_factory=list)  # empty: every tool the server lists

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("an MCP server name is letters, digits, '.', '_', '-'")
        return value

    def model_post_init(self, __context: Any) -> None:
        if self.transport == "stdio" and not self.command:
            raise ValueError(f"MCP server {self.name!r}: stdio needs a command")
        if self.transport == "http" and not self.url:
            raise ValueError(f"MCP server {self.name!r}: http needs a url")


class MemorySpec(_Strict):
    short_term_turns: int = Field(8, ge=0, le=1000)  # user/assistant pairs kept verbatim
    long_term: bool = True  # remember conversations in the vault, recall by search
    recall: int = Field(2, ge=0, le=32)  # long-term memories retrieved per message
    feedback_examples: int = Field(2, ge=0, le=32)  # corrected answers retrieved


class VaultSpec(_Strict):
    search: bool = True  # retrieve from the vault's index before answering
    top_k: int = Field(4, ge=0, le=64)
    scopes: list[str] = Field(default_factory=list)  # item names or globs; empty: all
    min_score: float = Field(0.0, ge=-1.0, le=1.0)


class LicenseSpec(_Strict):
    # "owned-or-licensed": retrieve only items the agent's ID owns or holds a license
    # for; "owned": only its own items; "any": whatever the local index holds.
    policy: Literal["owned-or-licensed", "owned", "any"] = "owned-or-licensed"
    price_per_call: str | None = None  # for 'agent publish', e.g. "0.01" (SAHARA)


class ServeSpec(_Strict):
    """What ``agent serve`` may give callers who pay per call."""

    # Item names or globs whose private (encrypted) text served answers may use; empty:
    # none. Third-party items also need a valid Partnership license of their asset.
    private_scopes: list[str] = Field(default_factory=list)
    # The longest run of consecutive words a served answer may copy from a private
    # passage; longer runs are redacted.
    max_quote_words: int = Field(25, ge=1, le=1000)


class LoopSpec(_Strict):
    max_steps: int = Field(3, ge=0, le=32)  # tool calls per message before answering
    # "auto": the model decides; "required": the first step must call a tool; "none":
    # never call tools (as OpenAI's tool_choice).
    tool_choice: Literal["auto", "required", "none"] = "auto"


class AdapterSpec(_Strict):
    """A LoRA adapter the torch runner loads on top of the model (set by ``agent learn``)."""

    path: str  # the peft adapter folder; relative: inside the agent's folder
    cid: str | None = None  # the adapter in the vault
    job: str | None = None  # the local compute job that trained it
    job_id: int | None = None  # its record in the training SAP, when recorded
    objective: Literal["sft", "dpo"] = "sft"


class AgentSpec(_Strict):
    name: str
    description: str = ""
    persona: str = "You are a helpful assistant."
    identity: str | None = None  # the Sahara ID that owns, signs and pays; None: default
    model: ModelSpec = Field(default_factory=ModelSpec)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    tools: ToolsSpec = Field(default_factory=ToolsSpec)
    mcp: list[McpServerSpec] = Field(default_factory=list)
    memory: MemorySpec = Field(default_factory=MemorySpec)
    vault: VaultSpec = Field(default_factory=VaultSpec)
    license: LicenseSpec = Field(default_factory=LicenseSpec)
    loop: LoopSpec = Field(default_factory=LoopSpec)
    serve: ServeSpec = Field(default_factory=ServeSpec)
    asset_id: int | None = None  # set by 'agent publish'
    adapter: AdapterSpec | None = None  # set by 'agent learn'

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        check_name(value)
        return value

    def to_toml(self) -> str:
        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise AgentSpecInvalid(
            f"bad agent name {name!r}",
            hint="Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return name


def validation_message(exc: ValidationError) -> str:
    """Every failed field of ``exc`` on one line: ``where: what; ...``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def validate_toml(data: dict[str, Any], model: type[M], *, source: str) -> M:
    """``model`` from parsed TOML; AgentSpecInvalid naming ``source`` and each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AgentSpecInvalid(f"{source}: {validation_message(exc)}") from exc


def parse_toml(text: str, model: type[M], *, source: str) -> M:
    """``model`` from TOML text; AgentSpecInvalid when it is not TOML or not valid."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AgentSpecInvalid(f"{source} is not valid TOML: {exc}") from exc
    return validate_toml(data, model, source=source)


def read_toml(path: Path, missing: SaharaError) -> str:
    """The text of ``path``; raises ``missing`` when there is no such file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise missing from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentSpecInvalid(f"cannot read {path}: {exc}") from exc


def parse_spec(text: str, *, source: str = "agent spec") -> AgentSpec:
    """Parse and validate a spec from TOML text."""
    return parse_toml(text, AgentSpec, source=source)


def load_spec(path: Path) -> AgentSpec:
    text = read_toml(path, AgentNotFound(f"no agent spec at {path}"))
    return parse_spec(text, source=str(path))


# --- templates ----------------------------------------------------------------------


def templates_dir(kind: str = "agents") -> Path:
    """``templates/<kind>`` of a source checkout, or the copy inside the wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "templates" / kind, here.parent / "templates" / kind):
        if candidate.is_dir():
            return candidate
    return here.parent / "templates" / kind


def list_templates() -> list[str]:
    return sorted(p.stem for p in templates_dir().glob("*.toml"))


def template_spec(template: str, name: str) -> AgentSpec:
    path = templates_dir() / f"{template}.toml"
    if not path.is_file():
        raise AgentNotFound(
            f"no agent template {template!r}",
            hint=f"Templates: {', '.join(list_templates()) or '(none)'}.",
        )
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    data["name"] = name
    return validate_toml(data, AgentSpec, source=f"template {template}")


# --- the store of agents in a home ----------------------------------------------------


class AgentStore:
    """``<home>/agents/<name>/``: ``agent.toml`` plus the agent's own data."""

    def __init__(self, home_root: Path) -> None:
        self.root = home_root / "agents"

    def dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def spec_path(self, name: str) -> Path:
        return self.dir(name) / "agent.toml"

    def exists(self, name: str) -> bool:
        return self.spec_path(name).is_file()

    def load(self, name: str) -> AgentSpec:
        if not self.exists(name):
            raise AgentNotFound(f"no agent named {name!r}")
        return load_spec(self.spec_path(name))

    def save(self, spec: AgentSpec, *, overwrite: bool = False) -> Path:
        path = self.spec_path(spec.name)
        if path.exists() and not overwrite:
            raise AgentExists(
                f"an agent named {spec.name!r} exists already",
                hint="Pick another name, or remove it with 'sahara agent rm'.",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, spec.to_toml().encode())
        return path

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/agent.toml"))

    def __iter__(self) -> Iterator[AgentSpec]:
        for name in self.names():
            yield self.load(name)

    def remove(self, name: str) -> None:
        if not self.exists(name):
            raise AgentNotFound(f"no agent named {name!r}")
        shutil.rmtree(self.dir(name))
