"""The built-in tools: vault search, asset and license lookup, balance, a calculator.

Each is a plain function of a :class:`~sahara_cli.agent.tools.context.ToolContext` and its JSON
arguments; :func:`builtin_tool` binds one to a context as a
:class:`~sahara_cli.agent.tools.registry.Tool`. Vault search honours the agent's scopes (item
name globs) and license policy:

- ``owned-or-licensed``: items with no asset, items the agent's ID owns, and assets the
  chain says it holds a license to (``Licensing.hasAccess``, any kind); while no node
  answers only the first two;
- ``owned``: only items the agent's ID owns;
- ``any``: whatever the local index holds.
"""

from __future__ import annotations

import ast
import fnmatch
import math
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sahara_cli.agent.tools.context import ToolContext
from sahara_cli.agent.tools.registry import Tool
from sahara_cli.agent.types import Source
from sahara_cli.errors import AssetNotFound, ToolArgumentsInvalid, ToolNotFound

if TYPE_CHECKING:
    from sahara_cli.vault.db import Item
    from sahara_cli.vault.index import Hit

MAX_K = 32
KINDS = ("any", "api", "full", "long-term", "partnership")


# -- vault search ------------------------------------------------------------------------


def _in_scope(ctx: ToolContext, item: Item) -> bool:
    if not ctx.scopes:
        return True
    return any(fnmatch.fnmatchcase(item.name, pattern) for pattern in ctx.scopes)


def _owned(ctx: ToolContext, item: Item) -> bool:
    me = (ctx.address or "").lower()
    return bool(me) and item.owner.lower() == me


def _allowed(ctx: ToolContext, item: Item) -> bool:
    if ctx.policy == "any":
        return True
    if _owned(ctx, item):
        return True
    if ctx.policy == "owned":
        return False
    # owned-or-licensed
    if item.asset_id is None:
        return item.origin == "added"  # unregistered data of this vault's own
    if not ctx.address:
        return False
    return bool(ctx.has_access(item.asset_id, ctx.address))


def allowed_items(ctx: ToolContext) -> dict[str, Item]:
    """The vault items (by CID) the agent may retrieve from, per scopes and policy.

    Agents' memory notes are never data: each agent recalls its own through its memory.
    """
    from sahara_cli.agent.memory import MEMORY_ORIGIN

    items = ctx.vault().db.items()
    return {
        item.cid: item
        for item in items
        if item.origin != MEMORY_ORIGIN and _in_scope(ctx, item) and _allowed(ctx, item)
    }


def search_hits(
    ctx: ToolContext, query: str, k: int, *, private: bool = True
) -> list[tuple[Hit, Item]]:
    """The top ``k`` index hits among the allowed items, private texts opened when the
    context may and its signer holds the item's key. Without ``private``, or inside
    :func:`~sahara_cli.agent.tools.registry.public_only`, only items stored in clear are
    searched."""
    import dataclasses

    from sahara_cli.agent.tools.registry import is_public_only
    from sahara_cli.vault import crypto

    if not query.strip():
        raise ToolArgumentsInvalid("the query is empty")
    k = max(1, min(int(k), MAX_K))
    with ctx.lock:
        allowed = allowed_items(ctx)
        if not private or is_public_only():
            allowed = {cid: item for cid, item in allowed.items() if not item.encrypted}
        if not allowed:
            return []
        hits = ctx.index().search(query, k, items=list(allowed))
        out = []
        for hit in hits:
            item = allowed.get(hit.item)
            if item is None:
                continue
            if hit.text is None and hit.sealed is not None:
                key = _item_key(ctx, item)
                if key is not None:
                    hit = dataclasses.replace(hit, text=crypto.open_text(key, hit.sealed))  # noqa: PLW2901
            out.append((hit, item))
        return out


def _item_key(ctx: ToolContext, item: Item) -> bytes | None:
    from sahara_cli.agent.tools.registry import is_public_only

    signer = ctx.signer
    if not ctx.open_private or is_public_only() or signer is None or item.wrapped_key is None:
        return None
    if item.holder.lower() != signer.address.lower():
        return None
    if ctx.may_open is not None and not ctx.may_open(item):
        return None
    return ctx.vault().data_key(item, signer.private_key)


def vault_search(
    ctx: ToolContext, query: str, k: int = 4, *, private: bool = True
) -> dict[str, Any]:
    """The top ``k`` hits; without ``private``, encrypted items are left out altogether
    (not even their names, CIDs or scores are listed)."""
    hits = search_hits(ctx, query, k, private=private)
    return {
        "query": query,
        "hits": [
            {
                "cid": hit.cid,
                "name": hit.name,
                "asset_id": hit.asset_id,
                "score": round(hit.score, 4),
                "text": hit.text,
                **({"sealed": True} if hit.text is None else {}),
            }
            for hit, _ in hits
        ],
    }


def retrieve(ctx: ToolContext, query: str, k: int) -> list[Source]:
    if k < 1 or not query.strip():
        return []
    return [
        Source(
            cid=hit.cid,
            name=hit.name,
            score=float(hit.score),
            text=hit.text,
            asset_id=hit.asset_id if hit.asset_id is not None else item.asset_id,
            private=item.encrypted,
        )
        for hit, item in search_hits(ctx, query, k)
        if hit.text
    ]


# -- chain lookups -----------------------------------------------------------------------


def _address(ctx: ToolContext, text: str | None) -> str:
    from sahara_cli.identity.keys import looks_like_address, parse_address

    if text is None or not text.strip():
        if not ctx.address:
            raise ToolArgumentsInvalid("no address given and the agent has no Sahara ID")
        return ctx.address
    value = text.strip()
    if looks_like_address(value):
        return parse_address(value)
    from sahara_cli.config import load_config
    from sahara_cli.errors import IdentityError
    from sahara_cli.home import Home
    from sahara_cli.identity.store import KeyStore

    home = Home(ctx.home_root)
    try:
        store = KeyStore(
            home.keystore_dir,
            config_path=home.config_file,
            default=load_config(home.config_file).config.identity.default,
        )
        return store.get(value).address
    except IdentityError:
        raise ToolArgumentsInvalid(
            f"{value!r} is neither a 0x address nor a Sahara ID of this home"
        ) from None


def asset_lookup(ctx: ToolContext, asset: str) -> dict[str, Any]:
    raw = str(asset).strip().removeprefix("asset:").removeprefix("#")
    proto = ctx.protocol()
    if raw.isdigit():
        asset_id = int(raw)
    else:
        found = proto.asset_by_cid(raw)
        if found is None:
            raise AssetNotFound(f"no asset with content id {raw} on this chain")
        asset_id = found
    out = proto.asset(asset_id).to_dict()
    with ctx.lock:
        item = ctx.vault().db.by_asset(asset_id)
    out["in_vault"] = item is not None
    return out


def license_check(
    ctx: ToolContext, asset: int, address: str | None = None, kind: str = "any"
) -> dict[str, Any]:
    from sahara_cli.protocol.client import LICENSE_TYPES

    if kind not in KINDS:
        raise ToolArgumentsInvalid(f"kind {kind!r} is not one of: {', '.join(KINDS)}")
    who = _address(ctx, address)
    proto = ctx.protocol()
    info = proto.asset(int(asset))
    owner = info.owner.lower() == who.lower()
    until = {name: proto.access_until(int(asset), who, name) for name in LICENSE_TYPES}
    has = owner or proto.has_access(int(asset), who, 0 if kind == "any" else kind)
    return {
        "asset": int(asset),
        "address": who,
        "kind": kind,
        "has_access": bool(has),
        "owner": info.owner,
        "is_owner": owner,
        "access_until": {name: value for name, value in until.items() if value},
    }


def balance(ctx: ToolContext, address: str | None = None) -> dict[str, Any]:
    from sahara_cli.units import format_sah

    who = _address(ctx, address)
    wei = ctx.node().balance(who)
    return {"address": who, "wei": str(wei), "sah": format_sah(wei)}


# -- calculator --------------------------------------------------------------------------

MAX_EXPRESSION = 500
MAX_NODES = 200
MAX_INT_BITS = 4096
MAX_EXPONENT = 10_000
#: The most digits ``round`` may keep or drop: ``round(1, -10**100)`` would build 10**10**100.
MAX_ROUND_DIGITS = 30

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _round(number: Any, ndigits: Any = None) -> Any:
    """``round``, with ``ndigits`` a whole number of at most :data:`MAX_ROUND_DIGITS`:
    Python rounds an int to ``-n`` digits by building ``10**n``."""
    if ndigits is None:
        return round(number)
    if not isinstance(ndigits, int):
        raise CalculatorError(f"round's digits must be a whole number, not {ndigits!r}")
    if abs(ndigits) > MAX_ROUND_DIGITS:
        raise CalculatorError(
            f"round's digits {ndigits} are out of range (at most {MAX_ROUND_DIGITS} either way)"
        )
    return round(number, ndigits)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "min": min,
    "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalculatorError(ValueError):
    """An expression the calculator refuses or cannot evaluate."""


def _check(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError(f"result too large (more than {MAX_INT_BITS} bits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is not a finite number")
    return value


def _pow(base: Any, exponent: Any) -> Any:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent {exponent} is too large (at most {MAX_EXPONENT})")
    # A lower bound of the result's size: refuse before computing it.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and (base.bit_length() - 1) * exponent > MAX_INT_BITS
    ):
        raise CalculatorError(f"result too large (more than {MAX_INT_BITS} bits)")
    result = base**exponent
    if isinstance(result, complex):
        raise CalculatorError("result is not a real number")
    return result


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise CalculatorError(f"only numbers are allowed, not {node.value!r}")
        return _check(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _check(_pow(left, right))
        return _check(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculatorError(f"unknown name {node.id!r}; constants: {', '.join(_CONSTANTS)}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise CalculatorError(
                f"only these functions may be called: {', '.join(sorted(_FUNCTIONS))}"
            )
        if node.keywords:
            raise CalculatorError("functions take positional arguments only")
        args = [_eval(arg) for arg in node.args]
        return _check(_FUNCTIONS[node.func.id](*args))
    if isinstance(node, ast.BinOp):
        raise CalculatorError(f"operator {type(node.op).__name__} is not allowed")
    raise CalculatorError(f"{type(node).__name__} is not allowed in an expression")


def evaluate(expression: str) -> int | float:
    """Evaluate arithmetic safely: numbers, + - * / // % **, parentheses, pi/e/tau and
    a few math functions. Raises :class:`CalculatorError` with a one-line reason."""
    text = expression.strip()
    if not text:
        raise CalculatorError("the expression is empty")
    if len(text) > MAX_EXPRESSION:
        raise CalculatorError(f"the expression is longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"not an arithmetic expression: {exc.msg}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalculatorError(f"the expression has more than {MAX_NODES} parts")
    try:
        result = _eval(tree)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("result too large") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, CalculatorError):
            raise
        raise CalculatorError(f"math error: {exc}") from None
    if not isinstance(result, int | float):
        raise CalculatorError("the expression does not give a number")
    return result


def calculator(expression: str) -> dict[str, Any]:
    return {"expression": expression, "result": evaluate(expression)}


# -- binding to a context ----------------------------------------------------------------


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


QUERY = {"type": "string", "minLength": 1, "maxLength": 1000, "description": "What to look for."}
K = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_K,
    "default": 4,
    "description": "How many hits.",
}
ASSET_ID = {"type": "integer", "minimum": 1, "description": "The asset id."}
ADDRESS = {
    "type": ["string", "null"],
    "description": "A 0x address or a Sahara ID name (default: the agent's own ID).",
}

SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "vault_search": (
        "Search the vault's text; each hit gives its CID, asset id, score and text.",
        _object({"query": QUERY, "k": K}, ["query"]),
    ),
    "asset_lookup": (
        "Look up an on-chain asset by id or content id (CID): owner, kind, name, parents.",
        _object(
            {"asset": {"type": "string", "minLength": 1, "description": "Asset id or CID."}},
            ["asset"],
        ),
    ),
    "license_check": (
        "Check whether an address may use an asset (owner or a license of a kind).",
        _object(
            {
                "asset": ASSET_ID,
                "address": ADDRESS,
                "kind": {"type": "string", "enum": list(KINDS), "default": "any"},
            },
            ["asset"],
        ),
    ),
    "balance": (
        "The SAH balance of an address, in wei and in SAH.",
        _object({"address": ADDRESS}, []),
    ),
    "calculator": (
        "Evaluate arithmetic: numbers, + - * / // % **, parentheses, pi, e, sqrt, log, "
        "exp, sin, cos, tan, abs, round, floor, ceil, min, max.",
        _object(
            {
                "expression": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_EXPRESSION,
                    "description": "e.g. (2 + 3) * 4 / sqrt(2)",
                }
            },
            ["expression"],
        ),
    ),
}


def builtin_tool(name: str, ctx: ToolContext) -> Tool:
    """The built-in tool ``name`` bound to ``ctx``."""
    if name not in SPECS:
        raise ToolNotFound(f"no built-in tool {name!r}; built-ins: {', '.join(SPECS)}")
    description, parameters = SPECS[name]
    func: Callable[..., Any]
    if name == "calculator":
        func = calculator
    else:
        impls: dict[str, Callable[..., Any]] = {
            "vault_search": vault_search,
            "asset_lookup": asset_lookup,
            "license_check": license_check,
            "balance": balance,
        }
        impl = impls[name]

        def func(**arguments: Any) -> Any:
            return impl(ctx, **arguments)

    return Tool(name, description, parameters, func, "builtin")
