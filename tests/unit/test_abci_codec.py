"""The ABCI socket framing and server, over real sockets (TCP and unix), without CometBFT;
and the generated protobuf classes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sahara_cli.node.abci.generated.tendermint.abci import types_pb2 as abci
from sahara_cli.node.abci.server import (
    Application,
    Decoder,
    FrameError,
    decode_uvarint,
    encode_frame,
    encode_uvarint,
    parse_address,
)
from tests.cometbft import serving

# --- the generated classes -------------------------------------------------------------


def test_generated_classes_import_and_round_trip() -> None:
    from sahara_cli.node.abci.generated.tendermint.crypto import keys_pb2, proof_pb2
    from sahara_cli.node.abci.generated.tendermint.types import params_pb2, validator_pb2

    assert abci.DESCRIPTOR.package == "tendermint.abci"
    assert {keys_pb2.PublicKey, proof_pb2.ProofOps, params_pb2.ConsensusParams}
    assert validator_pb2.DESCRIPTOR.name == "tendermint/types/validator.proto"

    req = abci.Request(
        info=abci.RequestInfo(
            version="0.38.25", block_version=11, p2p_version=8, abci_version="2.0.0"
        )
    )
    data = req.SerializeToString()
    back = abci.Request.FromString(data)
    assert back == req
    assert back.WhichOneof("value") == "info"
    assert back.info.version == "0.38.25"
    assert back.info.block_version == 11
    assert back.info.abci_version == "2.0.0"
    # Field 3 of Request (info), length-delimited: the oneof wrapper's wire layout.
    assert data[0] == (3 << 3) | 2


# --- varints and frames ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (16384, b"\x80\x80\x01"),
        (2**31 - 1, b"\xff\xff\xff\xff\x07"),
        (2**64 - 1, b"\xff" * 9 + b"\x01"),
    ],
)
def test_uvarint_matches_go_putuvarint(value: int, encoded: bytes) -> None:
    assert encode_uvarint(value) == encoded
    assert decode_uvarint(encoded) == (value, len(encoded))
    assert decode_uvarint(b"junk" + encoded + b"tail", 4) == (value, 4 + len(encoded))


def test_uvarint_truncated_and_overflow() -> None:
    assert decode_uvarint(b"") is None
    assert decode_uvarint(b"\x80\x80") is None  # more bytes to come
    with pytest.raises(FrameError):
        decode_uvarint(b"\xff" * 9 + b"\x02")  # 2**64: over 64 bits
    with pytest.raises(FrameError):
        decode_uvarint(b"\x80" * 11)
    with pytest.raises(ValueError):
        encode_uvarint(-1)


def test_frames_split_anywhere_and_several_in_one_read() -> None:
    msgs = [
        abci.Request(echo=abci.RequestEcho(message="hi")),
        abci.Request(flush=abci.RequestFlush()),  # a 2-byte body: field 2, length 0
        abci.Request(check_tx=abci.RequestCheckTx(tx=b"k=v" * 100)),
    ]
    stream = b"".join(encode_frame(m) for m in msgs)
    # All at once.
    assert [abci.Request.FromString(b) for b in Decoder().feed(stream)] == msgs
    # One byte at a time: each message comes out once its last byte is in.
    decoder = Decoder()
    out: list[bytes] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert [abci.Request.FromString(b) for b in out] == msgs
    assert decoder.pending == 0
    # Split inside the varint of the third (a 2-byte length).
    third = encode_frame(msgs[2])
    assert third[0] & 0x80
    decoder = Decoder()
    assert decoder.feed(third[:1]) == []
    assert decoder.pending == 1
    assert decoder.feed(third[1:]) == [msgs[2].SerializeToString()]


def test_large_message_frames() -> None:
    tx = bytes(range(256)) * (3 * 4096)  # 3 MiB: a 4-byte length prefix
    frame = encode_frame(abci.Request(check_tx=abci.RequestCheckTx(tx=tx)))
    size, start = decode_uvarint(frame) or (0, 0)
    assert start == 4
    assert size == len(frame) - 4
    decoder = Decoder()
    got: list[bytes] = []
    for i in range(0, len(frame), 65536):
        got += decoder.feed(frame[i : i + 65536])
    assert len(got) == 1
    assert abci.Request.FromString(got[0]).check_tx.tx == tx


def test_decoder_refuses_oversized_length() -> None:
    with pytest.raises(FrameError, match="over the 10 limit"):
        Decoder(max_size=10).feed(encode_uvarint(11))


def test_parse_address() -> None:
    assert parse_address("tcp://127.0.0.1:26658") == ("tcp", "127.0.0.1", 26658)
    assert parse_address("127.0.0.1:0") == ("tcp", "127.0.0.1", 0)
    assert parse_address("unix:///tmp/x.sock") == ("unix", "/tmp/x.sock", 0)
    for bad in ("grpc://127.0.0.1:1", "tcp://127.0.0.1", "unix://"):
        with pytest.raises(ValueError):
            parse_address(bad)


# --- the server over real sockets ------------------------------------------------------


class Client:
    """A blocking ABCI client: writes Request frames, reads Response frames."""

    def __init__(self, address: str) -> None:
        kind, where, port = parse_address(address)
        if kind == "unix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(where)
        else:
            self.sock = socket.create_connection((where, port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(10)
        self.decoder = Decoder()
        self.ready: list[abci.Response] = []

    def send(self, *requests: abci.Request) -> None:
        self.sock.sendall(b"".join(encode_frame(r) for r in requests))

    def recv(self, count: int) -> list[abci.Response]:
        while len(self.ready) < count:
            data = self.sock.recv(1 << 16)
            assert data, f"connection closed after {len(self.ready)} of {count} responses"
            self.ready += [abci.Response.FromString(b) for b in self.decoder.feed(data)]
        out, self.ready = self.ready[:count], self.ready[count:]
        return out

    def nothing_within(self, seconds: float) -> bool:
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(10)
        self.ready += [abci.Response.FromString(b) for b in self.decoder.feed(data)]
        return False

    def closed(self) -> bool:
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


FLUSH = abci.Request(flush=abci.RequestFlush())


def echo(message: str) -> abci.Request:
    return abci.Request(echo=abci.RequestEcho(message=message))


class RecordingApp(Application):
    """Answers CheckTx with the tx length in ``gas_wanted``; ``boom`` raises; records
    how many calls ever ran at once."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self.count = 0
        self._guard = threading.Lock()

    def check_tx(self, req: abci.RequestCheckTx) -> abci.ResponseCheckTx:
        with self._guard:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                time.sleep(self.delay)
            if req.tx == b"boom":
                raise ValueError("the app exploded")
            self.count += 1
            return abci.ResponseCheckTx(code=0, gas_wanted=len(req.tx))
        finally:
            with self._guard:
                self.active -= 1

    def info(self, req: abci.RequestInfo) -> abci.ResponseInfo:
        return abci.ResponseInfo(data=f"hello {req.version}", last_block_height=7)


@contextmanager
def client_for(address: str) -> Iterator[Client]:
    client = Client(address)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(params=["tcp", "unix"])
def address(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "tcp://127.0.0.1:0" if request.param == "tcp" else f"unix://{tmp_path / 'abci.sock'}"


def test_echo_and_responses_wait_for_flush(address: str) -> None:
    with serving(RecordingApp(), address) as bound, client_for(bound) as client:
        client.send(echo("one"), abci.Request(info=abci.RequestInfo(version="x")))
        assert client.nothing_within(0.2), "answers must stay buffered until a Flush"
        client.send(FLUSH)
        first, info, flush = client.recv(3)
        assert first.echo.message == "one"
        assert info.info.data == "hello x"
        assert info.info.last_block_height == 7
        assert flush.WhichOneof("value") == "flush"


def test_several_requests_in_one_write_answered_in_order(address: str) -> None:
    with serving(RecordingApp(), address) as bound, client_for(bound) as client:
        txs = [b"a" * n for n in (1, 200, 3)]
        client.send(
            *[abci.Request(check_tx=abci.RequestCheckTx(tx=tx)) for tx in txs],
            echo("mid"),
            abci.Request(query=abci.RequestQuery(data=b"k")),
            FLUSH,
        )
        got = client.recv(6)
        assert [r.WhichOneof("value") for r in got] == [
            "check_tx",
            "check_tx",
            "check_tx",
            "echo",
            "query",
            "flush",
        ]
        assert [r.check_tx.gas_wanted for r in got[:3]] == [1, 200, 3]
        assert got[3].echo.message == "mid"


def test_split_writes_and_a_large_request() -> None:
    tx = b"x" * (2 * 1024 * 1024 + 5)
    with serving(RecordingApp()) as bound, client_for(bound) as client:
        data = encode_frame(abci.Request(check_tx=abci.RequestCheckTx(tx=tx))) + encode_frame(FLUSH)
        for cut in (1, 2, 3, 1000, 70000, len(data)):  # inside the varint, the body, ...
            client.sock.sendall(data[:cut])
            data = data[cut:]
            time.sleep(0.01)
        client.sock.sendall(data)
        check, flush = client.recv(2)
        assert check.check_tx.gas_wanted == len(tx)
        assert flush.HasField("flush")


def test_application_exception_answers_and_closes(address: str) -> None:
    app = RecordingApp()
    with serving(app, address) as bound:
        with client_for(bound) as client:
            client.send(
                echo("before"),
                abci.Request(check_tx=abci.RequestCheckTx(tx=b"boom")),
                echo("after"),  # never answered: the connection ends at the exception
                FLUSH,
            )
            before, exc = client.recv(2)
            assert before.echo.message == "before"
            assert exc.WhichOneof("value") == "exception"
            assert exc.exception.error == "the app exploded"
            assert client.closed()
        # The server goes on serving other connections.
        with client_for(bound) as client:
            client.send(abci.Request(check_tx=abci.RequestCheckTx(tx=b"ok")), FLUSH)
            assert client.recv(2)[0].check_tx.gas_wanted == 2


def test_empty_request_is_an_exception() -> None:
    with serving(RecordingApp()) as bound, client_for(bound) as client:
        client.sock.sendall(b"\x00")  # a Request with no oneof set
        (exc,) = client.recv(1)
        assert "unknown ABCI request" in exc.exception.error
        assert client.closed()


def test_application_calls_are_serialised_across_connections() -> None:
    app = RecordingApp(delay=0.02)
    with serving(app) as bound:
        clients = [Client(bound) for _ in range(4)]
        try:
            for i, client in enumerate(clients):
                client.send(
                    *[abci.Request(check_tx=abci.RequestCheckTx(tx=b"t" * (i + 1)))] * 3,
                    echo(f"c{i}"),
                    FLUSH,
                )
            for i, client in enumerate(clients):
                got = client.recv(5)
                assert [r.check_tx.gas_wanted for r in got[:3]] == [i + 1] * 3
                assert got[3].echo.message == f"c{i}"
        finally:
            for client in clients:
                client.close()
    assert app.count == 12
    assert app.max_active == 1


def test_default_application_answers_every_request() -> None:
    with serving(Application()) as bound, client_for(bound) as client:
        client.send(
            abci.Request(info=abci.RequestInfo()),
            abci.Request(init_chain=abci.RequestInitChain(chain_id="c")),
            abci.Request(
                prepare_proposal=abci.RequestPrepareProposal(
                    max_tx_bytes=5, txs=[b"abc", b"de", b"f"]
                )
            ),
            abci.Request(process_proposal=abci.RequestProcessProposal()),
            abci.Request(finalize_block=abci.RequestFinalizeBlock(txs=[b"1", b"2"])),
            abci.Request(commit=abci.RequestCommit()),
            abci.Request(list_snapshots=abci.RequestListSnapshots()),
            abci.Request(offer_snapshot=abci.RequestOfferSnapshot()),
            abci.Request(load_snapshot_chunk=abci.RequestLoadSnapshotChunk()),
            abci.Request(apply_snapshot_chunk=abci.RequestApplySnapshotChunk()),
            abci.Request(extend_vote=abci.RequestExtendVote()),
            abci.Request(verify_vote_extension=abci.RequestVerifyVoteExtension()),
            FLUSH,
        )
        got = client.recv(13)
        assert [r.WhichOneof("value") for r in got[:-1]] == [
            "info",
            "init_chain",
            "prepare_proposal",
            "process_proposal",
            "finalize_block",
            "commit",
            "list_snapshots",
            "offer_snapshot",
            "load_snapshot_chunk",
            "apply_snapshot_chunk",
            "extend_vote",
            "verify_vote_extension",
        ]
        assert list(got[2].prepare_proposal.txs) == [b"abc", b"de"]  # 5 bytes fit
        assert got[3].process_proposal.status == abci.ResponseProcessProposal.ACCEPT
        assert len(got[4].finalize_block.tx_results) == 2
        assert got[7].offer_snapshot.result == abci.ResponseOfferSnapshot.REJECT
        assert got[11].verify_vote_extension.status == abci.ResponseVerifyVoteExtension.ACCEPT
