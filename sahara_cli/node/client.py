"""A small JSON-RPC client for a Sahara (or any Ethereum) node.

``NodeClient`` speaks HTTP over a keep-alive connection (the standard library's client for
plain HTTP, httpx for HTTPS and proxies); an in-process transport (any callable taking a
request dict and returning the reply dict) lets the library and tests use a node in the
same process without a socket.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import NodeError, NodeRPCError, NodeUnreachable, TxTimeout

if TYPE_CHECKING:
    import socket

Transport = Callable[[dict[str, Any]], dict[str, Any]]


_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


def _plain_http(url: str) -> bool:
    """Whether ``url`` is plain HTTP that no proxy setting applies to."""
    return url.startswith("http://") and not any(os.environ.get(v) for v in _PROXY_VARIABLES)


class HTTPTransport:
    """JSON-RPC over HTTP: httpx, or the standard library for plain HTTP without a proxy.

    A node is most often a plain ``http://`` URL on this machine, where the standard
    library's client does the same work as httpx without its import (a large part of a
    short command's start-up); HTTPS and proxied URLs go through httpx.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self._http: _StdlibHTTP | None = None
        self._client: Any = None
        if _plain_http(url):
            self._http = _StdlibHTTP(url, timeout)
        else:
            import httpx

            self._client = httpx.Client(
                timeout=timeout, headers={"Content-Type": "application/json"}
            )

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._http is not None:
            status, body = self._http.post(json.dumps(request).encode())
        else:
            status, body = self._post_httpx(request)
        if status != 200:
            text = body.decode("utf-8", "replace")
            raise NodeError(f"{self.url} answered HTTP {status}: {text[:200]}")
        try:
            reply: dict[str, Any] = json.loads(body)
        except ValueError as exc:
            raise NodeError(f"{self.url} did not answer with JSON") from exc
        return reply

    def _post_httpx(self, request: dict[str, Any]) -> tuple[int, bytes]:
        import httpx

        try:
            response = self._client.post(self.url, json=request)
        except httpx.TransportError as exc:
            raise NodeUnreachable(
                f"no node answers at {self.url} ({exc.__class__.__name__})"
            ) from exc
        return response.status_code, response.content

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._client is not None:
            self._client.close()


class _StdlibHTTP:
    """POSTs to one URL over a keep-alive connection per thread (``http.client``)."""

    def __init__(self, url: str, timeout: float) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.url = url
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self) -> Any:
        import http.client

        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and _peer_closed(conn.sock):
            conn.close()  # the node closed an idle connection: open a new one, as httpx does
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(
                self._host, self._port, timeout=self._timeout
            )
        return conn

    def post(self, body: bytes) -> tuple[int, bytes]:
        conn = self._connection()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        try:
            conn.request("POST", self._target, body=body, headers=headers)
        except OSError as exc:
            self.close()
            kind = "ConnectTimeout" if isinstance(exc, TimeoutError) else "ConnectError"
            raise NodeUnreachable(f"no node answers at {self.url} ({kind})") from exc
        try:
            response = conn.getresponse()
            data = response.read()
        except (OSError, ValueError) as exc:  # ValueError: http.client's malformed replies
            self.close()
            kind = "ReadTimeout" if isinstance(exc, TimeoutError) else "ReadError"
            raise NodeUnreachable(f"no node answers at {self.url} ({kind})") from exc
        if response.will_close:
            self.close()
        return response.status, data

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()


def _peer_closed(sock: socket.socket) -> bool:
    """Whether an idle connection's socket has become readable (closed by the peer)."""
    import select

    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class NodeClient:
    """Typed helpers over JSON-RPC. Quantities are returned as ints, data as bytes."""

    def __init__(self, transport: Transport | str, *, timeout: float = 10.0) -> None:
        self.transport: Transport = (
            HTTPTransport(transport, timeout) if isinstance(transport, str) else transport
        )
        self._ids = itertools.count(1)

    @property
    def url(self) -> str | None:
        return getattr(self.transport, "url", None)

    def call(self, method: str, *params: Any) -> Any:
        reply = self.transport(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        )
        if "error" in reply:
            error = reply["error"]
            raise NodeRPCError(
                str(error.get("message")),
                rpc_code=int(error.get("code", 0)),
                data=error.get("data"),
            )
        return reply.get("result")

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if callable(close):
            close()

    # -- typed helpers -----------------------------------------------------------------

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def balance(self, address: str, block: str = "latest") -> int:
        """Wei held by ``address`` (checked by :func:`sahara_cli.identity.keys.parse_address`)."""
        from sahara_cli.identity.keys import parse_address

        return int(self.call("eth_getBalance", parse_address(address), block), 16)

    def nonce(self, address: str, block: str = "pending") -> int:
        from sahara_cli.identity.keys import parse_address

        return int(self.call("eth_getTransactionCount", parse_address(address), block), 16)

    def base_fee(self) -> int:
        block = self.call("eth_getBlockByNumber", "latest", False)
        return int(block.get("baseFeePerGas", "0x0"), 16)

    def max_priority_fee(self) -> int:
        return int(self.call("eth_maxPriorityFeePerGas"), 16)

    def estimate_gas(self, tx: dict[str, Any]) -> int:
        return int(self.call("eth_estimateGas", tx), 16)

    def send_raw(self, raw: bytes) -> str:
        result: str = self.call("eth_sendRawTransaction", "0x" + raw.hex())
        return result

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.call("eth_getTransactionByHash", tx_hash)
        return result

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.call("eth_getTransactionReceipt", tx_hash)
        return result

    def wait_for_receipt(
        self, tx_hash: str, timeout: float = 60.0, poll: float = 0.005
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.receipt(tx_hash)
            if receipt is not None:
                return receipt
            if time.monotonic() > deadline:
                raise TxTimeout(f"transaction {tx_hash} has no receipt after {timeout:g} s")
            time.sleep(poll)
            poll = min(poll * 1.5, 0.5)

    def node_info(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("sahara_nodeInfo")
        return result


def parse_sah(text: str) -> int:
    """A decimal SAH amount ("1.5", "0.01", "2e-3" not allowed) in wei; exact, no floats."""
    from decimal import Decimal, InvalidOperation

    from sahara_cli.errors import UsageError

    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise UsageError(
            f"not an amount: {text!r}", hint="Write amounts like 1.5 or 0.001 (SAH)."
        ) from None
    if not value.is_finite() or value < 0:
        raise UsageError(f"amount must be a positive number: {text!r}")
    wei = value * 10**18
    if wei != wei.to_integral_value():
        raise UsageError(f"{text} SAH has more than 18 decimals")
    return int(wei)
