"""JSON-RPC 2.0 request processing, shared by HTTP and WebSocket.

The method table is built once from the namespace modules: every function marked with
``@method`` is the handler of the wire method of the same name. Parameters are bound
positionally and parsed by the parser each handler's annotation names; a parser's
failure becomes -32602 ``invalid argument N: ...`` as in geth.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from sahara_cli.node.rpc import debug, eth, net, sahara, txpool, web3
from sahara_cli.node.rpc.context import Context, MethodFlags
from sahara_cli.node.rpc.errors import (
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    PARSE_ERROR,
    ErrorReply,
    ExecutionError,
    InvalidParams,
    MethodNotFound,
    error_object,
    error_reply,
)

NAMESPACES = (eth, net, web3, txpool, debug, sahara)
REMOTE_REFUSED = "method not allowed on a remote interface"
MAX_DEPTH = 128  # JSON nesting; no Ethereum request comes near it
#: Bodies larger than this are decoded on a worker thread, not on the event loop.
BIG_BODY = 256 * 1024
_TOKENS = re.compile(rb'["\\\[\]{}]')
_NO_DEFAULT = inspect.Parameter.empty


@dataclass(frozen=True)
class Spec:
    name: str
    fn: Callable[..., Any]
    flags: MethodFlags
    parsers: tuple[Callable[[Any], Any] | None, ...]
    defaults: tuple[Any, ...]
    required: int


def _parser(hint: Any) -> Callable[[Any], Any] | None:
    if typing.get_origin(hint) is typing.Annotated:
        meta = hint.__metadata__
        return meta[0] if meta and callable(meta[0]) else None
    for arg in typing.get_args(hint):  # Optional[Annotated[...]]
        found = _parser(arg)
        if found is not None:
            return found
    return None


def _spec(name: str, fn: Callable[..., Any]) -> Spec:
    hints = typing.get_type_hints(fn, include_extras=True)
    params = list(inspect.signature(fn).parameters.values())[1:]  # after ctx
    return Spec(
        name=name,
        fn=fn,
        flags=fn.__rpc__,  # type: ignore[attr-defined]
        parsers=tuple(_parser(hints.get(p.name)) for p in params),
        defaults=tuple(p.default for p in params),
        required=sum(1 for p in params if p.default is _NO_DEFAULT),
    )


@functools.cache
def method_table() -> dict[str, Spec]:
    table: dict[str, Spec] = {}
    for module in NAMESPACES:
        for name, fn in vars(module).items():
            if callable(fn) and hasattr(fn, "__rpc__") and fn.__module__ == module.__name__:
                table[name] = _spec(name, fn)
    return table


def bind(spec: Spec, params: Any) -> list[Any]:
    """The handler's arguments from the request's ``params``, parsed and checked."""
    if params is None:
        params = []
    elif not isinstance(params, list):
        raise InvalidParams("non-array args")
    if len(params) > len(spec.parsers):
        raise InvalidParams(f"too many arguments, want at most {len(spec.parsers)}")
    args: list[Any] = []
    for i, parse in enumerate(spec.parsers):
        raw = params[i] if i < len(params) else None
        if raw is None:
            if i < spec.required:
                raise InvalidParams(f"missing value for required argument {i}")
            if i >= len(params):
                break  # the rest take the handler's defaults
            args.append(spec.defaults[i])
            continue
        if parse is None:
            args.append(raw)
            continue
        try:
            args.append(parse(raw))
        except InvalidParams as exc:
            raise InvalidParams(f"invalid argument {i}: {exc.message}") from None
    return args


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when arrays and objects nest deeper than ``limit``, outside strings.

    py-evm raises Python's recursion limit to 100,000 at import, so the C JSON decoder
    would overflow the C stack (a segfault, not a RecursionError) on a 100 KB body of
    ``[[[[...``: the depth is checked before decoding.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth, in_string, skip = 0, False, -1
    for token in _TOKENS.finditer(body):
        pos = token.start()
        if pos == skip:
            continue
        char = body[pos]
        if in_string:
            if char == 0x5C:  # backslash: the next byte is escaped
                skip = pos + 1
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif char in (0x5D, 0x7D):
            depth -= 1
    return False


def parse_json(body: bytes | str) -> Any:
    """A decoded request, or ValueError for anything that is not JSON (or nests absurdly)."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if too_deep(raw):
        raise ValueError(f"JSON nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None


def dumps(reply: Any) -> str:
    return json.dumps(reply, separators=(",", ":"))


class Dispatcher:
    """Runs requests against the method table; one per server."""

    def __init__(
        self,
        table: dict[str, Spec],
        executor: Executor,
        *,
        remote: bool,
        allow_remote_signing: bool,
        dev: bool,
        max_batch: int,
        max_batch_response: int = 25 * 1024 * 1024,
        execution_executor: Executor | None = None,
    ) -> None:
        self.table = table
        self.executor = executor
        #: Where the handlers that run the EVM go (see ``MethodFlags.execution``).
        self.execution_executor = execution_executor or executor
        self.remote_refused = remote and not allow_remote_signing
        self.dev = dev
        self.max_batch = max_batch
        self.max_batch_response = max_batch_response

    async def handle_payload(self, body: bytes | str, ctx: Context) -> str | None:
        """One HTTP body or WebSocket message in, the reply text out (None: no reply)."""
        try:
            if len(body) > BIG_BODY:
                loop = asyncio.get_running_loop()
                request = await loop.run_in_executor(self.executor, parse_json, body)
            else:
                request = parse_json(body)
        except ValueError:
            return dumps(error_reply(None, PARSE_ERROR, "parse error"))
        if isinstance(request, list):
            if not request:
                return dumps(error_reply(None, INVALID_REQUEST, "empty batch"))
            if len(request) > self.max_batch:
                message = f"batch too large: at most {self.max_batch} requests"
                return dumps(error_reply(None, INVALID_REQUEST, message))
            replies: list[str] = []
            size = 0
            for item in request:
                reply: dict[str, Any] | None
                if size > self.max_batch_response:  # like geth: the rest are not run
                    item_id = item.get("id") if isinstance(item, dict) else None
                    reply = error_reply(item_id, LIMIT_EXCEEDED, "response too large")
                else:
                    reply = await self.handle_request(item, ctx)
                if reply is not None:
                    replies.append(self._encode(reply))
                    size += len(replies[-1])
            return "[" + ",".join(replies) + "]" if replies else None
        single = await self.handle_request(request, ctx)
        return None if single is None else self._encode(single)

    @staticmethod
    def _encode(reply: dict[str, Any]) -> str:
        try:
            return dumps(reply)
        except (TypeError, ValueError) as exc:
            error = error_object(exc, method="encoding a reply")
            return dumps({"jsonrpc": "2.0", "id": reply.get("id"), "error": error})

    async def handle_request(self, request: Any, ctx: Context) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return error_reply(None, INVALID_REQUEST, "invalid request: not an object")
        has_id = "id" in request
        req_id = request.get("id")
        if req_id is not None and (
            isinstance(req_id, bool) or not isinstance(req_id, str | int | float)
        ):
            return error_reply(None, INVALID_REQUEST, "invalid request: bad id")
        if request.get("jsonrpc") != "2.0":
            return error_reply(req_id, INVALID_REQUEST, 'invalid request: jsonrpc must be "2.0"')
        name = request.get("method")
        if not isinstance(name, str):
            return error_reply(req_id, INVALID_REQUEST, "invalid request: method must be a string")
        try:
            result = await self.call(name, request.get("params"), ctx)
        except Exception as exc:
            error = error_object(exc, method=name)  # logs the unexpected ones
            return {"jsonrpc": "2.0", "id": req_id, "error": error} if has_id else None
        if not has_id:
            return None
        return {"jsonrpc": "2.0", "id": req_id, "result": result}

    async def call(self, name: str, params: Any, ctx: Context) -> Any:
        spec = self.table.get(name)
        if spec is None or (spec.flags.dev and not self.dev):
            raise MethodNotFound(name[:100])
        if spec.flags.signing and self.remote_refused:
            raise ExecutionError(REMOTE_REFUSED)
        if spec.flags.needs_conn and ctx.conn is None:
            raise ErrorReply("notifications not supported", rpc_code=-32601)
        args = bind(spec, params)
        if spec.flags.inline:
            return spec.fn(ctx, *args)
        loop = asyncio.get_running_loop()
        executor = self.execution_executor if spec.flags.execution else self.executor
        return await loop.run_in_executor(executor, functools.partial(spec.fn, ctx, *args))
