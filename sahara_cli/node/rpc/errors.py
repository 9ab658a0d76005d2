"""JSON-RPC errors: the codes and texts Ethereum clients expect.

Every error a handler raises on purpose is an :class:`ErrorReply` (a
:class:`~sahara_cli.errors.NodeError`) carrying the JSON-RPC ``rpc_code`` and optional
``data``. :func:`error_object` turns any exception into the ``error`` member of a reply:
errors of the node (``TxInvalid``, mempool refusals) keep their geth text under -32000,
anything unexpected becomes -32603 without a traceback (the server logs it).
"""

from __future__ import annotations

import logging
from typing import Any

from sahara_cli.errors import InvalidDataError, NodeError, SaharaError

log = logging.getLogger("sahara.rpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
LIMIT_EXCEEDED = -32005
EXECUTION_REVERTED = 3

#: Every code a reply of this server may carry.
SPEC_CODES = frozenset(
    {
        PARSE_ERROR,
        INVALID_REQUEST,
        METHOD_NOT_FOUND,
        INVALID_PARAMS,
        INTERNAL_ERROR,
        SERVER_ERROR,
        LIMIT_EXCEEDED,
        EXECUTION_REVERTED,
    }
)


class ErrorReply(NodeError):
    """An error reply: ``rpc_code`` and ``message`` as the client sees them."""

    code = "node.rpc"
    rpc_code: int = SERVER_ERROR

    def __init__(self, message: str, *, data: Any = None, rpc_code: int | None = None) -> None:
        super().__init__(message)
        self.data = data
        if rpc_code is not None:
            self.rpc_code = rpc_code


class ParseError(ErrorReply, InvalidDataError):
    code = "node.rpc.parse_error"
    rpc_code = PARSE_ERROR


class InvalidRequest(ErrorReply, InvalidDataError):
    code = "node.rpc.invalid_request"
    rpc_code = INVALID_REQUEST


class MethodNotFound(ErrorReply):
    code = "node.rpc.method_not_found"
    rpc_code = METHOD_NOT_FOUND

    def __init__(self, method: str) -> None:
        super().__init__(f"the method {method} does not exist/is not available")


class InvalidParams(ErrorReply, InvalidDataError):
    code = "node.rpc.invalid_params"
    rpc_code = INVALID_PARAMS


class ExecutionError(ErrorReply):
    """geth's -32000: the request was well formed but could not be carried out."""

    code = "node.rpc.execution"
    rpc_code = SERVER_ERROR


class LimitExceeded(ErrorReply):
    """A query asked for more than the server hands out in one reply."""

    code = "node.rpc.limit_exceeded"
    rpc_code = LIMIT_EXCEEDED


class BudgetExceeded(ErrorReply):
    """An execution ran past its budget (:mod:`sahara_cli.node.rpc.budget`) and was
    stopped: -32000 as geth answers a call it aborts. Deliberately not an
    :class:`ExecutionError`, so nothing that tolerates a failed run (eth_estimateGas's
    search) mistakes it for one."""

    code = "node.rpc.budget_exceeded"
    rpc_code = SERVER_ERROR


class ExecutionTimeout(BudgetExceeded):
    code = "node.rpc.execution_timeout"


class StepLimitExceeded(BudgetExceeded):
    code = "node.rpc.step_limit"


class ExecutionReverted(ErrorReply):
    """eth_call / eth_estimateGas hit REVERT: code 3, the revert data as ``data``."""

    code = "node.rpc.reverted"
    rpc_code = EXECUTION_REVERTED


def error_object(exc: BaseException, *, method: str | None = None) -> dict[str, Any]:
    """The JSON-RPC ``error`` member for ``exc``; unexpected errors are logged, not leaked."""
    if isinstance(exc, ErrorReply):
        out: dict[str, Any] = {"code": exc.rpc_code, "message": exc.message}
        if exc.data is not None:
            out["data"] = exc.data
        return out
    if isinstance(exc, SaharaError):  # TxInvalid, mempool refusals: geth's text is .message
        return {"code": SERVER_ERROR, "message": exc.message}
    log.error("internal error in %s", method or "a request", exc_info=exc)
    return {"code": INTERNAL_ERROR, "message": "internal error"}


def error_reply(req_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}
