"""An asyncio ABCI 2.0 socket server, speaking CometBFT v0.38's socket protocol.

Wire format (``abci/types/messages.go`` and ``libs/protoio`` in CometBFT): each message
is an unsigned varint (``binary.PutUvarint``) holding the length, then that many bytes
of a protobuf ``tendermint.abci.Request`` (client to server) or ``Response`` (server to
client), the oneof wrappers around the per-method messages.

CometBFT opens four connections (consensus, mempool, query, snapshot) and pipelines
requests on each; it sends a ``Flush`` request when it wants the answers so far. So on
every connection the server answers requests in order, buffers the answers, and writes
them out when it answers a ``Flush``. Connections are served independently, but calls
into the :class:`Application` take one lock: the application sees one call at a time.
An exception raised by the application is answered with ``ResponseException`` (its
message), the buffered answers are written out, and the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from sahara_cli.node.abci.generated.tendermint.abci import types_pb2 as abci

__all__ = [
    "MAX_MESSAGE_SIZE",
    "ABCIServer",
    "Application",
    "Decoder",
    "FrameError",
    "decode_uvarint",
    "encode_frame",
    "encode_uvarint",
    "parse_address",
]

log = logging.getLogger(__name__)

#: The largest message CometBFT v0.38 accepts on the socket (``maxMsgSize``: MaxInt32).
MAX_MESSAGE_SIZE: Final = 2**31 - 1
_MAX_VARINT_BYTES: Final = 10  # binary.MaxVarintLen64
_READ_CHUNK: Final = 1 << 16


class FrameError(ValueError):
    """The byte stream is not a valid sequence of length-prefixed messages."""


def encode_uvarint(value: int) -> bytes:
    """``binary.PutUvarint``: 7 bits a byte, low groups first, high bit = more follows."""
    if value < 0:
        raise ValueError("uvarint of a negative number")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int] | None:
    """``(value, position after it)`` of the uvarint at ``pos``, or None when ``data``
    ends inside it. Raises :class:`FrameError` for one longer than 64 bits."""
    value = 0
    shift = 0
    for i in range(pos, min(len(data), pos + _MAX_VARINT_BYTES)):
        byte = data[i]
        if i - pos == _MAX_VARINT_BYTES - 1 and byte > 1:
            raise FrameError("varint overflows 64 bits")
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    if len(data) - pos >= _MAX_VARINT_BYTES:
        raise FrameError("varint overflows 64 bits")
    return None


def encode_frame(message: Any) -> bytes:
    """A protobuf message as it goes on the socket: uvarint length, then its bytes."""
    body: bytes = message.SerializeToString()
    return encode_uvarint(len(body)) + body


class Decoder:
    """Splits a byte stream into message bodies, whatever the read boundaries are:
    :meth:`feed` takes the bytes as they arrive and returns each complete body."""

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self._max_size = max_size

    @property
    def pending(self) -> int:
        """Bytes held back: the start of a message not complete yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        bodies: list[bytes] = []
        pos = 0
        while True:
            head = decode_uvarint(self._buf, pos)
            if head is None:
                break
            size, start = head
            if size > self._max_size:
                raise FrameError(f"message of {size} bytes is over the {self._max_size} limit")
            if len(self._buf) - start < size:
                break
            bodies.append(bytes(self._buf[start : start + size]))
            pos = start + size
        del self._buf[:pos]
        return bodies


class Application:
    """What CometBFT calls through ABCI 2.0, one method a request type.

    Each method takes the request message and returns the response message (the
    ``types_pb2`` classes, not the ``Request``/``Response`` wrappers). The defaults do
    what CometBFT's ``BaseApplication`` does, except that snapshots are refused rather
    than left unanswered: subclass and override what the application needs. The server
    never calls two methods at once. Raising an exception answers ``ResponseException``
    and closes that connection (CometBFT then stops).
    """

    def info(self, req: abci.RequestInfo) -> abci.ResponseInfo:  # noqa: ARG002
        return abci.ResponseInfo()

    def init_chain(self, req: abci.RequestInitChain) -> abci.ResponseInitChain:  # noqa: ARG002
        return abci.ResponseInitChain()

    def query(self, req: abci.RequestQuery) -> abci.ResponseQuery:  # noqa: ARG002
        return abci.ResponseQuery(code=0)

    def check_tx(self, req: abci.RequestCheckTx) -> abci.ResponseCheckTx:  # noqa: ARG002
        return abci.ResponseCheckTx(code=0)

    def prepare_proposal(self, req: abci.RequestPrepareProposal) -> abci.ResponsePrepareProposal:
        """The mempool's transactions in order, as many as fit in ``max_tx_bytes``."""
        txs: list[bytes] = []
        total = 0
        for tx in req.txs:
            total += len(tx)
            if total > req.max_tx_bytes:
                break
            txs.append(tx)
        return abci.ResponsePrepareProposal(txs=txs)

    def process_proposal(self, req: abci.RequestProcessProposal) -> abci.ResponseProcessProposal:  # noqa: ARG002
        return abci.ResponseProcessProposal(status=abci.ResponseProcessProposal.ACCEPT)

    def finalize_block(self, req: abci.RequestFinalizeBlock) -> abci.ResponseFinalizeBlock:
        return abci.ResponseFinalizeBlock(tx_results=[abci.ExecTxResult(code=0) for _ in req.txs])

    def commit(self, req: abci.RequestCommit) -> abci.ResponseCommit:  # noqa: ARG002
        return abci.ResponseCommit()

    def list_snapshots(self, req: abci.RequestListSnapshots) -> abci.ResponseListSnapshots:  # noqa: ARG002
        return abci.ResponseListSnapshots()

    def offer_snapshot(self, req: abci.RequestOfferSnapshot) -> abci.ResponseOfferSnapshot:  # noqa: ARG002
        return abci.ResponseOfferSnapshot(result=abci.ResponseOfferSnapshot.REJECT)

    def load_snapshot_chunk(
        self,
        req: abci.RequestLoadSnapshotChunk,  # noqa: ARG002
    ) -> abci.ResponseLoadSnapshotChunk:
        return abci.ResponseLoadSnapshotChunk()

    def apply_snapshot_chunk(
        self,
        req: abci.RequestApplySnapshotChunk,  # noqa: ARG002
    ) -> abci.ResponseApplySnapshotChunk:
        return abci.ResponseApplySnapshotChunk(result=abci.ResponseApplySnapshotChunk.ABORT)

    def extend_vote(self, req: abci.RequestExtendVote) -> abci.ResponseExtendVote:  # noqa: ARG002
        return abci.ResponseExtendVote()

    def verify_vote_extension(
        self,
        req: abci.RequestVerifyVoteExtension,  # noqa: ARG002
    ) -> abci.ResponseVerifyVoteExtension:
        return abci.ResponseVerifyVoteExtension(status=abci.ResponseVerifyVoteExtension.ACCEPT)


#: Request oneof field -> Application method; the Response field has the same name.
_METHODS: Final[dict[str, str]] = {
    "info": "info",
    "init_chain": "init_chain",
    "query": "query",
    "check_tx": "check_tx",
    "commit": "commit",
    "list_snapshots": "list_snapshots",
    "offer_snapshot": "offer_snapshot",
    "load_snapshot_chunk": "load_snapshot_chunk",
    "apply_snapshot_chunk": "apply_snapshot_chunk",
    "prepare_proposal": "prepare_proposal",
    "process_proposal": "process_proposal",
    "extend_vote": "extend_vote",
    "verify_vote_extension": "verify_vote_extension",
    "finalize_block": "finalize_block",
}


def parse_address(address: str) -> tuple[str, str, int]:
    """``("tcp", host, port)`` or ``("unix", path, 0)`` from CometBFT's address forms:
    ``tcp://HOST:PORT``, ``unix://PATH``, or a bare ``HOST:PORT``."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme == "unix":
        if not rest:
            raise ValueError(f"no socket path in {address!r}")
        return ("unix", rest, 0)
    if scheme != "tcp":
        raise ValueError(f"unsupported ABCI address {address!r} (tcp:// or unix://)")
    host, colon, port = rest.rpartition(":")
    if not colon or not port.isdigit():
        raise ValueError(f"no port in ABCI address {address!r}")
    return ("tcp", host.strip("[]") or "127.0.0.1", int(port))


class ABCIServer:
    """Serves an :class:`Application` on ``tcp://HOST:PORT`` (port 0: the kernel picks
    one, see :attr:`address`) or ``unix://PATH``.

    Use as ``async with ABCIServer(app, addr) as server: await server.serve_forever()``,
    or call :meth:`start` and :meth:`stop`. With ``in_thread`` (the default) application
    calls run in a worker thread, so a slow block does not stall the other connections'
    Echo and Flush; either way they run one at a time.
    """

    def __init__(self, app: Application, address: str, *, in_thread: bool = True) -> None:
        self.app = app
        self._target = parse_address(address)
        self._in_thread = in_thread
        self._lock = asyncio.Lock()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.address = address

    async def start(self) -> None:
        if self._target[0] == "unix":
            path = Path(self._target[1])
            if path.is_socket():
                path.unlink()  # left behind by a server that did not stop cleanly
            self._server = await asyncio.start_unix_server(self._on_connect, path=path)
            self.address = f"unix://{path}"
        else:
            _, host, port = self._target
            self._server = await asyncio.start_server(self._on_connect, host, port)
            bound = self._server.sockets[0].getsockname()
            self.address = f"tcp://{host}:{bound[1]}"
        log.info("ABCI server listening on %s", self.address)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        with contextlib.suppress(asyncio.CancelledError):
            await self._server.serve_forever()

    async def stop(self) -> None:
        """Stops listening and closes every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._target[0] == "unix":
            with contextlib.suppress(FileNotFoundError):
                Path(self._target[1]).unlink()

    async def __aenter__(self) -> ABCIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.debug("ABCI connection lost: %s", exc)
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        decoder = Decoder()
        pending = bytearray()  # answers not written yet: they go out on Flush
        while True:
            data = await reader.read(_READ_CHUNK)
            if not data:
                return  # the client closed the connection
            try:
                bodies = decoder.feed(data)
            except FrameError as exc:
                pending += encode_frame(
                    abci.Response(exception=abci.ResponseException(error=str(exc)))
                )
                await _write(writer, pending)
                return
            for body in bodies:
                response, fatal = await self._answer(body)
                pending += encode_frame(response)
                if fatal or response.WhichOneof("value") == "flush":
                    await _write(writer, pending)
                    pending.clear()
                if fatal:
                    return

    async def _answer(self, body: bytes) -> tuple[abci.Response, bool]:
        """The Response to one Request, and whether it ends the connection."""
        try:
            request = abci.Request.FromString(body)
            kind = request.WhichOneof("value")
            if kind == "flush":
                return abci.Response(flush=abci.ResponseFlush()), False
            if kind == "echo":
                return abci.Response(echo=abci.ResponseEcho(message=request.echo.message)), False
            if kind not in _METHODS:
                raise ValueError(f"unknown ABCI request {kind!r}")
            method: Callable[[Any], Any] = getattr(self.app, _METHODS[kind])
            async with self._lock:
                if self._in_thread:
                    result = await asyncio.to_thread(method, getattr(request, kind))
                else:
                    result = method(getattr(request, kind))
            return abci.Response(**{kind: result}), False
        except Exception as exc:
            log.exception("ABCI request failed")
            message = str(exc) or type(exc).__name__
            return abci.Response(exception=abci.ResponseException(error=message)), True


async def _write(writer: asyncio.StreamWriter, data: bytes | bytearray) -> None:
    writer.write(bytes(data))
    await writer.drain()
