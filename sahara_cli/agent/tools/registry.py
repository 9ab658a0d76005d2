"""The Actor's tools: Python callables with JSON schemas, called by name with JSON.

A :class:`Tool` is a name, a description, the JSON schema of its arguments object and a
function. A :class:`ToolBox` holds the tools of one agent and calls them by name:

- arguments may come as a dict or as JSON text, and are checked against the tool's
  schema (``jsonschema``) before the function runs;
- an unknown tool, malformed arguments or a tool that raises never raise out of
  :meth:`ToolBox.call`: they come back as a :class:`~sahara_cli.agent.types.ToolCall`
  with ``ok`` false and a one-line ``error`` (``ToolNotFound: ...``,
  ``ToolArgumentsInvalid: ...``, ``ToolFailed: ...``), which the Brain shows the model
  as an observation, so a chat survives a broken tool.

Tools come from three places (:func:`build_toolbox`): the built-ins named in
``spec.tools.builtin`` (:mod:`sahara_cli.agent.tools.builtin`), functions published by
installed packages under the entry-point group ``sahara.tools`` and named in
``spec.tools.entry_points``, and every tool of the MCP servers in ``spec.mcp``
(:mod:`sahara_cli.agent.tools.mcp_client`, named ``<server>.<tool>``).

For grammar-constrained calls there are three schemas: :meth:`ToolBox.call_schema`
(one object ``{"tool", "arguments"}`` for any tool), and for a choose-then-fill loop
:meth:`ToolBox.tool_choice_schema` (``{"tool": name or "answer"}``) followed by
:meth:`ToolBox.arguments_schema` of the chosen tool.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import logging
import re
import time
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from sahara_cli.agent.types import Source, ToolCall
from sahara_cli.errors import (
    SaharaError,
    ToolArgumentsInvalid,
    ToolFailed,
    ToolNotFound,
)

if TYPE_CHECKING:
    from sahara_cli.agent.spec import AgentSpec
    from sahara_cli.agent.tools.context import ToolContext
    from sahara_cli.agent.tools.mcp_client import McpTools

log = logging.getLogger("sahara.agent")

ENTRY_POINT_GROUP = "sahara.tools"
ANSWER = "answer"  # the choice that ends the act loop in tool_choice_schema
TOOL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")

_PUBLIC_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "sahara_public_only", default=False
)


@contextlib.contextmanager
def public_only() -> Iterator[None]:
    """Within this block (this thread or task and what it starts), vault search and
    retrieval leave encrypted items out altogether, whatever ID the context holds:
    an agent answering someone other than its owner sees only what is stored in clear,
    so its answer cannot quote private text."""
    token = _PUBLIC_ONLY.set(True)
    try:
        yield
    finally:
        _PUBLIC_ONLY.reset(token)


def is_public_only() -> bool:
    """Whether the code runs inside :func:`public_only`."""
    return _PUBLIC_ONLY.get()


@dataclass
class Tool:
    """One tool: its arguments object is described by the JSON schema ``parameters``."""

    name: str
    description: str
    parameters: dict[str, Any]
    func: Callable[..., Any]
    source: str = "builtin"  # "builtin" | "entry_point" | "mcp:<server>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "source": self.source,
        }


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SaharaError):
        text = exc.message
    else:
        text = str(exc).strip() or type(exc).__name__
        if type(exc).__name__ not in text and not isinstance(exc, ValueError | ArithmeticError):
            text = f"{type(exc).__name__}: {text}"
    lines = text.splitlines()
    return lines[0] if lines else type(exc).__name__


def _error(exc: SaharaError) -> str:
    return f"{type(exc).__name__}: {exc.message}"


class ToolBox:
    """The tools of one agent, called by name; see the module docstring."""

    def __init__(self, tools: Iterable[Tool] = (), *, closers: Sequence[Callable[[], None]] = ()):
        self.tools: dict[str, Tool] = {}
        self._closers = list(closers)
        self._validators: dict[str, Any] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        """Add a tool; its name must be new and its schema a valid JSON schema."""
        import jsonschema  # type: ignore[import-untyped]

        if not TOOL_NAME_RE.match(tool.name):
            raise ToolArgumentsInvalid(
                f"bad tool name {tool.name!r}",
                hint="Tool names are letters, digits, '_', '.' or '-', starting with a letter.",
            )
        if tool.name in self.tools:
            raise ToolArgumentsInvalid(
                f"two tools are named {tool.name!r} ({self.tools[tool.name].source} and "
                f"{tool.source})"
            )
        try:
            validator_cls = jsonschema.validators.validator_for(tool.parameters)
            validator_cls.check_schema(tool.parameters)
        except jsonschema.SchemaError as exc:
            raise ToolArgumentsInvalid(
                f"tool {tool.name!r} has an invalid parameters schema: {exc.message}"
            ) from None
        self.tools[tool.name] = tool
        self._validators[tool.name] = validator_cls(tool.parameters)

    def on_close(self, close: Callable[[], None]) -> None:
        """Run ``close`` when the box is closed (after those added before it)."""
        self._closers.append(close)

    def __contains__(self, name: object) -> bool:
        return name in self.tools

    def __len__(self) -> int:
        return len(self.tools)

    # -- calling ---------------------------------------------------------------------

    def parse_arguments(self, name: str, arguments: dict[str, Any] | str | None) -> dict[str, Any]:
        """The arguments as a dict, checked against the tool's schema.

        Raises :class:`ToolNotFound` or :class:`ToolArgumentsInvalid`.
        """
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "(none)"
            raise ToolNotFound(f"no tool named {name!r}; this agent has: {known}")
        if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
            arguments = {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as exc:
                raise ToolArgumentsInvalid(
                    f"arguments of {name} are not JSON: {exc.msg} at character {exc.pos}"
                ) from None
        if not isinstance(arguments, dict):
            raise ToolArgumentsInvalid(
                f"arguments of {name} must be a JSON object, not {type(arguments).__name__}"
            )
        errors = sorted(
            self._validators[name].iter_errors(arguments), key=lambda e: list(e.absolute_path)
        )
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.absolute_path)
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ToolArgumentsInvalid(
                f"arguments of {name}{' at ' + where if where else ''}: {first.message}{more}"
            )
        return arguments

    def call(self, name: str, arguments: dict[str, Any] | str | None = None) -> ToolCall:
        """Call a tool; never raises for an unknown tool, bad arguments or a failing tool."""
        started = time.perf_counter()
        shown: dict[str, Any] = arguments if isinstance(arguments, dict) else {}
        try:
            parsed = self.parse_arguments(name, arguments)
        except (ToolNotFound, ToolArgumentsInvalid) as exc:
            return ToolCall(
                name, shown, ok=False, error=_error(exc), seconds=time.perf_counter() - started
            )
        try:
            output = self.tools[name].func(**parsed)
        except Exception as exc:
            log.info("tool %s failed: %s", name, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            failed = ToolFailed(_one_line(exc))
            return ToolCall(
                name, parsed, ok=False, error=_error(failed), seconds=time.perf_counter() - started
            )
        return ToolCall(name, parsed, ok=True, output=output, seconds=time.perf_counter() - started)

    def run(self, name: str, arguments: dict[str, Any] | str | None = None) -> Any:
        """Call a tool and return its output, raising ToolNotFound, ToolArgumentsInvalid
        or ToolFailed (for code that wants exceptions rather than a ToolCall)."""
        call = self.call(name, arguments)
        if call.ok:
            return call.output
        kind, _, message = (call.error or "ToolFailed: failed").partition(": ")
        cls = {"ToolNotFound": ToolNotFound, "ToolArgumentsInvalid": ToolArgumentsInvalid}
        raise cls.get(kind, ToolFailed)(message)

    # -- describing ------------------------------------------------------------------

    def describe(self) -> str:
        """One line per tool, for the system prompt: ``- name(arg: type, ...): what it does``."""
        return "\n".join(_describe(self.tools[name]) for name in sorted(self.tools))

    def to_list(self) -> list[dict[str, Any]]:
        return [self.tools[name].to_dict() for name in sorted(self.tools)]

    def call_schema(self) -> dict[str, Any]:
        """JSON schema of one call of any tool: ``{"tool": NAME, "arguments": {...}}``.

        One alternative per tool (``anyOf``), so the arguments always fit the tool named.
        Raises :class:`ToolNotFound` when the box is empty (no schema matches nothing).
        """
        if not self.tools:
            raise ToolNotFound("this agent has no tools")
        return {
            "type": "object",
            "anyOf": [
                {
                    "type": "object",
                    "properties": {
                        "tool": {"type": "string", "enum": [name]},
                        "arguments": self.tools[name].parameters,
                    },
                    "required": ["tool", "arguments"],
                    "additionalProperties": False,
                }
                for name in sorted(self.tools)
            ],
        }

    def tool_choice_schema(self, *, thought: bool = True) -> dict[str, Any]:
        """JSON schema of the first step of choose-then-fill: a tool's name or ``answer``.

        With ``thought`` the object also carries a short plan (``thought``, a string).
        """
        properties: dict[str, Any] = {}
        required = ["tool"]
        if thought:
            properties["thought"] = {"type": "string", "maxLength": 400}
            required.insert(0, "thought")
        properties["tool"] = {"type": "string", "enum": [*sorted(self.tools), ANSWER]}
        return {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }

    def arguments_schema(self, name: str) -> dict[str, Any]:
        """The parameters schema of one tool (raises :class:`ToolNotFound`)."""
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "(none)"
            raise ToolNotFound(f"no tool named {name!r}; this agent has: {known}")
        return tool.parameters

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Stop what the tools hold open (MCP servers); safe to call twice."""
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            try:
                close()
            except Exception as exc:
                log.warning("closing tools: %s", exc)

    def __enter__(self) -> ToolBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(tool: Tool) -> str:
    props = tool.parameters.get("properties") or {}
    required = set(tool.parameters.get("required") or [])
    args = []
    for arg, schema in props.items():
        kind = _type_label(schema)
        if arg in required:
            args.append(f"{arg}: {kind}")
        elif "default" in schema:
            args.append(f"{arg}: {kind} = {json.dumps(schema['default'])}")
        else:
            args.append(f"{arg}?: {kind}")
    description = " ".join(tool.description.split())
    return f"- {tool.name}({', '.join(args)}): {description}"


def _type_label(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind == "array":
        return f"array of {_type_label(schema.get('items') or {})}"
    if "anyOf" in schema:
        return " | ".join(_type_label(s) for s in schema["anyOf"])
    return str(kind or "any")


# -- schemas from functions ----------------------------------------------------------


_SIMPLE: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
    Path: "string",
}


def schema_of_type(hint: Any) -> dict[str, Any]:
    """The JSON schema of a type hint (str, int, float, bool, list[X], dict, Literal,
    X | None); anything else is accepted as any JSON value."""
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = (
            schema_of_type(rest[0])
            if len(rest) == 1
            else {"anyOf": [schema_of_type(a) for a in rest]}
        )
        if len(rest) < len(args) and "type" in inner and isinstance(inner["type"], str):
            inner = {**inner, "type": [inner["type"], "null"]}
        return inner
    if origin in (list, tuple, set, frozenset, Sequence, typing.Sequence):
        item = schema_of_type(args[0]) if args else {}
        return {"type": "array", "items": item} if item else {"type": "array"}
    if origin is dict:
        return {"type": "object"}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    return {}


_PARAM_LINE = re.compile(r"^\s*(?::param\s+)?\*{0,2}([A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The summary (first paragraph) and per-parameter descriptions of a docstring
    (Google-style ``Args:`` sections or reST ``:param x:`` lines)."""
    text = inspect.cleandoc(doc or "")
    if not text:
        return "", {}
    paragraphs = re.split(r"\n\s*\n", text)
    summary = " ".join(paragraphs[0].split())
    if summary.lower().startswith(("args:", "arguments:", "parameters:", ":param")):
        summary = ""
    params: dict[str, str] = {}
    in_args = False
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            in_args, current = True, None
            continue
        if stripped.lower() in ("returns:", "raises:", "yields:", "example:", "examples:"):
            in_args, current = False, None
            continue
        if stripped.startswith(":param") or (in_args and stripped):
            match = _PARAM_LINE.match(stripped)
            if match and (stripped.startswith(":param") or line.startswith(("    ", "\t"))):
                current = match.group(1)
                params[current] = match.group(2).strip()
                continue
            if current is not None and in_args:
                params[current] = f"{params[current]} {stripped}".strip()
        elif not stripped:
            current = None
    return summary, params


def tool_from_function(
    fn: Callable[..., Any],
    name: str | None = None,
    description: str | None = None,
    *,
    source: str = "builtin",
    skip: Sequence[str] = (),
) -> Tool:
    """A :class:`Tool` whose schema comes from ``fn``'s signature, type hints and docstring.

    Parameters without a default are required; ``*args``/``**kwargs`` and the names in
    ``skip`` are left out. The schema forbids unknown arguments.
    """
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    summary, docs = _parse_docstring(inspect.getdoc(fn))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name in skip:
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolArgumentsInvalid(
                f"tool function {getattr(fn, '__name__', fn)!r} has a positional-only "
                f"parameter {param.name!r}; tools are called with keyword arguments"
            )
        schema = schema_of_type(hints.get(param.name, param.annotation))
        if param.name in docs:
            schema = {**schema, "description": docs[param.name]}
        if param.default is param.empty:
            required.append(param.name)
        elif _json_value(param.default):
            schema = {**schema, "default": param.default}
        properties[param.name] = schema
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    tool_name = name or getattr(fn, "__name__", None) or "tool"
    return Tool(
        name=tool_name,
        description=description or summary or tool_name,
        parameters=parameters,
        func=fn,
        source=source,
    )


def _json_value(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# -- entry points ----------------------------------------------------------------------


def entry_point_tools(names: Iterable[str]) -> list[Tool]:
    """The tools of installed packages (group ``sahara.tools``) with these names.

    An entry point may give a :class:`Tool` or a plain callable (its schema is derived).
    """
    from importlib.metadata import entry_points

    wanted = list(names)
    if not wanted:
        return []
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    tools = []
    for name in wanted:
        ep = found.get(name)
        if ep is None:
            known = ", ".join(sorted(found)) or "none is installed"
            raise ToolNotFound(
                f"no tool entry point {name!r} in group {ENTRY_POINT_GROUP} ({known})",
                hint=f"Install the package that provides it, or remove {name!r} from "
                "tools.entry_points.",
            )
        try:
            obj = ep.load()
        except Exception as exc:
            raise ToolFailed(
                f"tool entry point {name!r} ({ep.value}) failed to load: {_one_line(exc)}"
            ) from exc
        if isinstance(obj, Tool):
            tool = Tool(obj.name, obj.description, obj.parameters, obj.func, "entry_point")
        elif callable(obj):
            tool = tool_from_function(obj, name=name, source="entry_point")
        else:
            raise ToolFailed(
                f"tool entry point {name!r} ({ep.value}) is neither a Tool nor a callable"
            )
        tools.append(tool)
    return tools


def retrieve(ctx: ToolContext, query: str, k: int) -> list[Source]:
    """The ``k`` best passages of the vault for ``query`` that the agent may use.

    Honours the context's scopes and license policy; passages whose text stays sealed
    (private items the agent's ID cannot open) are left out.
    """
    from sahara_cli.agent.tools.builtin import retrieve as _retrieve

    return _retrieve(ctx, query, k)


def build_toolbox(
    spec: AgentSpec, ctx: ToolContext, *, mcp_start_timeout: float | None = None
) -> ToolBox:
    """The built-ins, entry-point tools and MCP tools the spec names."""
    from sahara_cli.agent.tools.builtin import builtin_tool

    tools = [builtin_tool(name, ctx) for name in spec.tools.builtin]
    tools.extend(entry_point_tools(spec.tools.entry_points))
    box = ToolBox(tools)
    if spec.mcp:
        from sahara_cli.agent.tools.mcp_client import McpTools

        options: dict[str, Any] = {}
        if mcp_start_timeout is not None:
            options["start_timeout"] = mcp_start_timeout
        mcp: McpTools = McpTools(spec.mcp, **options)
        box.on_close(mcp.close)
        try:
            for tool in mcp.tools():
                box.add(tool)
        except BaseException:
            box.close()
            raise
    return box
