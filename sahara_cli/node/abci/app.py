"""The Sahara state machine as a CometBFT v0.38 (ABCI 2.0) application.

CometBFT orders and commits blocks; :class:`SaharaApp` maps its calls onto
:class:`~sahara_cli.node.state.StateMachine`:

- ``Info``: height and app hash (the EVM state root) of the last commit.
- ``InitChain``: block 0 from the Sahara genesis, once. The genesis comes from the
  CometBFT genesis' ``app_state`` (a :class:`Genesis` JSON document) when it has one,
  else from the genesis the application was started with (``--dev``). Block 0's
  timestamp is CometBFT's genesis time unless the Sahara genesis fixes one, so every
  validator writes the same block 0. Its state root is returned as the app hash:
  CometBFT v0.38 puts it in the header of block 1.
- ``CheckTx``: the state machine's checks, plus the sender's transactions already in
  CometBFT's mempool: nonces must follow each other (CometBFT's mempool keeps arrival
  order and knows nothing of nonces) and the balance must cover all of them. That
  pending record is cleared on ``Commit``; CometBFT then rechecks what is left in its
  mempool (``RECHECK``), in order, against the new state, which rebuilds it.
- ``PrepareProposal``: the mempool's transactions in order, those that still pass the
  same checks, within ``max_tx_bytes`` and the block gas limit.
- ``ProcessProposal``: accept iff every transaction decodes.
- ``FinalizeBlock``: the block's transactions as EVM block ``height`` (CometBFT height H
  is EVM block number H: genesis is block 0, CometBFT's first block is block 1), at
  the block's time, one ``ExecTxResult`` each, and the new state root as app hash.
- ``Commit``: the state machine's atomic commit.
- ``Query``: ``/eth/balance`` and ``/eth/nonce`` of an address (``data``: 20 bytes, or
  ``0x``-hex text), ``/eth/height``, and ``/eth/block`` (a header summary, JSON); at
  the last commit, or at ``height`` when given.

Fees. A CometBFT validator address is the first 20 bytes of the SHA-256 of its
ed25519 key: no secp256k1 key stands behind it, so priority fees credited to it as an
EVM address could never be spent. The coinbase of a block is therefore the EVM address
``fee_recipients`` maps the proposer to, else the genesis ``validator`` (the Sahara ID
the chain was created for). Every validator computes the same coinbase either way.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from eth.abc import SignedTransactionAPI
from eth.vm.forks.byzantium.constants import EIP658_TRANSACTION_STATUS_CODE_SUCCESS

from sahara_cli import __version__
from sahara_cli.errors import (
    InsufficientFunds,
    NonceTooHigh,
    NonceTooLow,
    SaharaError,
    TxInvalid,
    TxUndecodable,
)
from sahara_cli.node.abci.generated.tendermint.abci import types_pb2 as abci
from sahara_cli.node.abci.server import Application, encode_uvarint
from sahara_cli.node.genesis import Genesis
from sahara_cli.node.state import (
    BlockResult,
    CheckedTx,
    StateMachine,
    TxResult,
    decode_tx,
    recover_sender,
)

__all__ = [
    "APP_VERSION",
    "CODESPACE",
    "CODE_BAD_SIGNATURE",
    "CODE_ENCODING",
    "CODE_INSUFFICIENT_FUNDS",
    "CODE_INVALID",
    "CODE_NONCE_TOO_HIGH",
    "CODE_NONCE_TOO_LOW",
    "CODE_NOT_FOUND",
    "CODE_OK",
    "CODE_REVERTED",
    "CODE_WRONG_CHAIN_ID",
    "CommitListener",
    "SaharaApp",
]

log = logging.getLogger("sahara.node.abci")

#: The application's protocol version (``ResponseInfo.app_version``, in block headers).
APP_VERSION: Final = 1
CODESPACE: Final = "sahara"

CODE_OK: Final = 0
#: Not a transaction: undecodable or oversized bytes.
CODE_ENCODING: Final = 1
#: The signature does not recover a sender.
CODE_BAD_SIGNATURE: Final = 2
#: Signed for another chain id.
CODE_WRONG_CHAIN_ID: Final = 3
CODE_NONCE_TOO_LOW: Final = 4
#: A gap after the sender's last known nonce (state, then mempool).
CODE_NONCE_TOO_HIGH: Final = 5
CODE_INSUFFICIENT_FUNDS: Final = 6
#: Any other invalid transaction: intrinsic gas, fee below the base fee, gas limit...
CODE_INVALID: Final = 7
#: Included in the block (nonce used, gas paid) but its execution failed.
CODE_REVERTED: Final = 8
#: A query for something that is not there (unknown path, block, malformed address).
CODE_NOT_FOUND: Final = 9

#: Called after each Commit with the committed block (its ``header``; ``results`` hold
#: the included transactions' hashes), on the thread that ran Commit.
CommitListener = Callable[[BlockResult], None]


def _code_of(exc: SaharaError) -> int:
    if isinstance(exc, NonceTooLow):
        return CODE_NONCE_TOO_LOW
    if isinstance(exc, NonceTooHigh):
        return CODE_NONCE_TOO_HIGH
    if isinstance(exc, InsufficientFunds):
        return CODE_INSUFFICIENT_FUNDS
    message = exc.message
    if message.startswith("invalid sender"):
        return CODE_BAD_SIGNATURE
    if message.startswith("invalid chain id"):
        return CODE_WRONG_CHAIN_ID
    return CODE_INVALID


@dataclass
class _Pending:
    """What a screen has accepted so far: per sender, the next nonce and the cost."""

    nonces: dict[bytes, int] = field(default_factory=dict)
    spent: dict[bytes, int] = field(default_factory=dict)
    gas: int = 0

    def clear(self) -> None:
        self.nonces.clear()
        self.spent.clear()
        self.gas = 0


def _proto_size(tx: bytes) -> int:
    """Bytes one transaction takes in a block's data (``ComputeProtoSizeForTxs``)."""
    return 1 + len(encode_uvarint(len(tx))) + len(tx)


def _timestamp(ts: Any) -> int:
    """Seconds of a ``google.protobuf.Timestamp``."""
    return int(ts.seconds)


class SaharaApp(Application):
    """Runs a :class:`StateMachine` under CometBFT. ``genesis`` is used by ``InitChain``
    when CometBFT's genesis has no ``app_state``; ``fee_recipients`` maps CometBFT
    validator addresses (20 bytes) to the EVM address that gets their blocks' fees."""

    def __init__(
        self,
        machine: StateMachine,
        genesis: Genesis | None = None,
        *,
        fee_recipients: Mapping[bytes, bytes] | None = None,
    ) -> None:
        self.machine = machine
        self.default_genesis = genesis
        self.fee_recipients = dict(fee_recipients or {})
        #: The mempool's view: transactions CheckTx accepted since the last Commit.
        self._mempool = _Pending()
        self._commit_listeners: list[CommitListener] = []
        self._listeners_lock = threading.Lock()
        #: Hashes of the transactions the last FinalizeBlock included (for listeners).
        self._finalized: list[bytes] = []

    # -- Info, InitChain -----------------------------------------------------------------

    def info(self, req: abci.RequestInfo) -> abci.ResponseInfo:  # noqa: ARG002
        response = abci.ResponseInfo(data="sahara", version=__version__, app_version=APP_VERSION)
        if self.machine.genesis is None:
            return response  # height 0, no app hash: CometBFT sends InitChain
        info = self.machine.info()
        response.last_block_height = info.height
        response.last_block_app_hash = info.app_hash
        return response

    def init_chain(self, req: abci.RequestInitChain) -> abci.ResponseInitChain:
        if req.initial_height > 1:
            raise ValueError(
                f"initial_height {req.initial_height} is not supported: CometBFT height H "
                "is EVM block H, so the chain starts at height 1"
            )
        if self.machine.genesis is not None:  # block 0 is written already (a restart)
            return abci.ResponseInitChain(app_hash=self.machine.head().state_root)
        if req.app_state_bytes:
            genesis = Genesis.from_json(req.app_state_bytes.decode())
        elif self.default_genesis is not None:
            genesis = Genesis.from_json(self.default_genesis.to_json())  # a private copy
        else:
            raise ValueError(
                "no Sahara genesis: put one in app_state of CometBFT's genesis.json, "
                "or start the application with a genesis (--dev)"
            )
        if not genesis.timestamp:
            genesis.timestamp = _timestamp(req.time)
        app_hash = self.machine.init_chain(genesis)
        log.info(
            "wrote block 0 of chain %d (CometBFT chain %s), app hash %s",
            genesis.chain_id,
            req.chain_id,
            app_hash.hex(),
        )
        return abci.ResponseInitChain(app_hash=app_hash)

    # -- the mempool -----------------------------------------------------------------------

    def _screen(self, raw: bytes, pending: _Pending, gas_limit: int | None = None) -> CheckedTx:
        """The state machine's checks on ``raw``, then its place after ``pending``'s
        transactions of the same sender; records it in ``pending`` when it passes."""
        try:
            tx = decode_tx(raw)
        except SaharaError as exc:  # TxInvalid, OversizedData
            raise TxUndecodable(exc.message) from exc
        checked = self.machine.check_decoded(tx, raw)
        sender = checked.sender
        expected = pending.nonces.get(sender, checked.account_nonce)
        if tx.nonce < expected:
            raise NonceTooLow(
                f"nonce too low: address 0x{sender.hex()}, tx: {tx.nonce} next: {expected} "
                "(a transaction with this nonce is already in the mempool)"
            )
        if tx.nonce > expected:
            raise NonceTooHigh(
                f"nonce too high: address 0x{sender.hex()}, tx: {tx.nonce} next: {expected} "
                "(send a sender's transactions in nonce order)"
            )
        cost = tx.gas * tx.max_fee_per_gas + tx.value
        spent = pending.spent.get(sender, 0)
        if checked.account_balance < spent + cost:
            raise InsufficientFunds(
                f"insufficient funds for gas * price + value: address 0x{sender.hex()} "
                f"have {checked.account_balance - spent} want {cost} "
                "(after the sender's transactions in the mempool)"
            )
        if gas_limit is not None and pending.gas + tx.gas > gas_limit:
            raise TxInvalid("exceeds block gas limit")
        pending.nonces[sender] = tx.nonce + 1
        pending.spent[sender] = spent + cost
        pending.gas += tx.gas
        return checked

    def mempool_nonce(self, sender: bytes) -> int | None:
        """The nonce after ``sender``'s transactions CheckTx accepted since the last
        Commit (None: it has none); a read-only look at the mempool record, from any
        thread."""
        return self._mempool.nonces.get(bytes(sender))

    def add_commit_listener(self, listener: CommitListener) -> Callable[[], None]:
        """Call ``listener`` after every Commit; returns the function that removes it."""
        with self._listeners_lock:
            self._commit_listeners.append(listener)

        def remove() -> None:
            with self._listeners_lock:
                if listener in self._commit_listeners:
                    self._commit_listeners.remove(listener)

        return remove

    def check_tx(self, req: abci.RequestCheckTx) -> abci.ResponseCheckTx:
        # RECHECK comes after Commit cleared the mempool record: the transactions left
        # are checked again, in mempool order, against the new state.
        try:
            checked = self._screen(req.tx, self._mempool)
        except TxUndecodable as exc:
            return abci.ResponseCheckTx(code=CODE_ENCODING, log=exc.message, codespace=CODESPACE)
        except SaharaError as exc:
            return abci.ResponseCheckTx(code=_code_of(exc), log=exc.message, codespace=CODESPACE)
        return abci.ResponseCheckTx(
            code=CODE_OK, data=bytes(checked.tx.hash), gas_wanted=checked.tx.gas
        )

    def prepare_proposal(self, req: abci.RequestPrepareProposal) -> abci.ResponsePrepareProposal:
        head = self.machine.head()
        pending = _Pending()
        txs: list[bytes] = []
        size = 0
        for raw in req.txs:
            if size + _proto_size(raw) > req.max_tx_bytes:
                break
            try:
                self._screen(raw, pending, gas_limit=head.gas_limit)
            except SaharaError as exc:
                log.info("left out of block %d: %s", req.height, exc.message)
                continue
            size += _proto_size(raw)
            txs.append(raw)
        return abci.ResponsePrepareProposal(txs=txs)

    def process_proposal(self, req: abci.RequestProcessProposal) -> abci.ResponseProcessProposal:
        for raw in req.txs:
            try:
                decode_tx(raw)
            except SaharaError as exc:
                log.warning("rejected proposal of block %d: %s", req.height, exc.message)
                return abci.ResponseProcessProposal(status=abci.ResponseProcessProposal.REJECT)
        return abci.ResponseProcessProposal(status=abci.ResponseProcessProposal.ACCEPT)

    # -- blocks --------------------------------------------------------------------------

    def coinbase(self, proposer: bytes) -> bytes:
        """The EVM address that receives the fees of a block ``proposer`` made."""
        recipient = self.fee_recipients.get(proposer)
        if recipient is not None:
            return recipient
        genesis = self.machine.genesis
        assert genesis is not None
        return bytes.fromhex(genesis.validator.removeprefix("0x"))

    def finalize_block(self, req: abci.RequestFinalizeBlock) -> abci.ResponseFinalizeBlock:
        machine = self.machine
        committed = machine.head().block_number
        if req.height != committed + 1:
            raise ValueError(
                f"FinalizeBlock of height {req.height}, but the last committed EVM block "
                f"is {committed}: CometBFT height H must be EVM block H"
            )
        if machine.chain.get_canonical_head().block_number != committed:
            machine.abort()  # a block finalized but never committed (CometBFT restarted)

        results: list[abci.ExecTxResult | None] = [None] * len(req.txs)
        runnable: list[tuple[int, SignedTransactionAPI]] = []
        for index, raw in enumerate(req.txs):
            # What the EVM does not check itself: the encoding, chain id and signature.
            try:
                tx = decode_tx(raw)
            except SaharaError as exc:
                results[index] = _refused(CODE_ENCODING, exc.message)
                continue
            try:
                if tx.chain_id is not None and tx.chain_id != machine.chain_id:
                    raise TxInvalid(
                        f"invalid chain id for signer: have {tx.chain_id} want {machine.chain_id}"
                    )
                recover_sender(tx)
            except SaharaError as exc:
                results[index] = _refused(_code_of(exc), exc.message, tx.gas)
                continue
            runnable.append((index, tx))

        try:
            block = machine.finalize_block(
                [tx for _, tx in runnable],
                timestamp=_timestamp(req.time),
                coinbase=self.coinbase(req.proposer_address),
            )
        except BaseException:
            machine.abort()  # no half-built block left in the overlay
            raise
        cumulative = 0
        self._finalized = []
        for (index, tx), outcome in zip(runnable, block.results, strict=True):
            if not outcome.included or outcome.receipt is None:
                code, error = _left_out(outcome.error or "not included")
                results[index] = _refused(code, error, tx.gas)
                continue
            self._finalized.append(bytes(tx.hash))
            gas_used = outcome.receipt.gas_used - cumulative
            cumulative = outcome.receipt.gas_used
            ok = outcome.receipt.state_root == EIP658_TRANSACTION_STATUS_CODE_SUCCESS
            computation = outcome.computation
            output = bytes(computation.output) if computation is not None else b""
            results[index] = abci.ExecTxResult(
                code=CODE_OK if ok else CODE_REVERTED,
                data=output,
                log="" if ok else _failure_text(computation),
                gas_wanted=tx.gas,
                gas_used=gas_used,
                codespace="" if ok else CODESPACE,
                events=[_tx_event(tx, ok)],
            )
        header = block.header
        return abci.ResponseFinalizeBlock(
            tx_results=[
                r if r is not None else abci.ExecTxResult(code=CODE_INVALID) for r in results
            ],
            app_hash=header.state_root,
            events=[
                abci.Event(
                    type="evm_block",
                    attributes=[
                        abci.EventAttribute(key="number", value=str(header.block_number)),
                        abci.EventAttribute(key="hash", value="0x" + header.hash.hex(), index=True),
                    ],
                )
            ],
        )

    def commit(self, req: abci.RequestCommit) -> abci.ResponseCommit:  # noqa: ARG002
        self.machine.commit()
        self._mempool.clear()  # CometBFT rechecks what is left in its mempool
        included, self._finalized = self._finalized, []
        with self._listeners_lock:
            listeners = list(self._commit_listeners)
        if listeners:
            result = BlockResult(self.machine.head(), [TxResult(h, True) for h in included])
            for listener in listeners:
                try:
                    listener(result)
                except Exception:  # a listener's bug must not stop the chain
                    log.exception("a commit listener failed")
        return abci.ResponseCommit(retain_height=0)

    # -- queries -------------------------------------------------------------------------

    def query(self, req: abci.RequestQuery) -> abci.ResponseQuery:
        if self.machine.genesis is None:
            return abci.ResponseQuery(code=CODE_NOT_FOUND, log="the chain has no block 0 yet")
        view = self.machine.view()
        header = view.head() if req.height == 0 else view.header_by_number(req.height)
        if header is None:
            return abci.ResponseQuery(
                code=CODE_NOT_FOUND, log=f"no block {req.height}", codespace=CODESPACE
            )
        height = int(header.block_number)
        path = req.path.rstrip("/")
        value: bytes
        if path in ("/eth/balance", "/eth/nonce"):
            address = _address(req.data)
            if address is None:
                return abci.ResponseQuery(
                    code=CODE_NOT_FOUND,
                    log="data must be an address: 20 bytes, or 0x and 40 hex digits",
                    height=height,
                    codespace=CODESPACE,
                )
            state = view.state_at(header)
            amount = (
                state.get_balance(address) if path == "/eth/balance" else state.get_nonce(address)
            )
            value = str(int(amount)).encode()
        elif path == "/eth/height":
            value = str(height).encode()
        elif path == "/eth/block":
            value = json.dumps(
                {
                    "number": height,
                    "hash": "0x" + header.hash.hex(),
                    "stateRoot": "0x" + header.state_root.hex(),
                    "timestamp": int(header.timestamp),
                    "gasUsed": int(header.gas_used),
                    "coinbase": "0x" + bytes(header.coinbase).hex(),
                },
                sort_keys=True,
            ).encode()
        else:
            return abci.ResponseQuery(
                code=CODE_NOT_FOUND,
                log=f"unknown query path {req.path!r}: /eth/balance, /eth/nonce, "
                "/eth/height or /eth/block",
                height=height,
                codespace=CODESPACE,
            )
        return abci.ResponseQuery(code=CODE_OK, key=req.data, value=value, height=height)


def _address(data: bytes) -> bytes | None:
    if len(data) == 20:
        return data
    text = data.decode("ascii", errors="replace").strip()
    if len(text) == 42 and text[:2].lower() == "0x":
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            return None
    return None


def _refused(code: int, log: str, gas_wanted: int = 0) -> abci.ExecTxResult:
    return abci.ExecTxResult(code=code, log=log, gas_wanted=gas_wanted, codespace=CODESPACE)


_NONCE_MISMATCH: Final = re.compile(r"Expected (\d+), but got (\d+)")


def _left_out(error: str) -> tuple[int, str]:
    """Code and log of a transaction the EVM left out of a block, from its reason.

    The state machine words every nonce mismatch as "nonce too low"; a gap is told apart.
    """
    if error.startswith("nonce too low"):
        mismatch = _NONCE_MISMATCH.search(error)
        if mismatch and int(mismatch[2]) > int(mismatch[1]):
            return CODE_NONCE_TOO_HIGH, "nonce too high" + error.removeprefix("nonce too low")
        return CODE_NONCE_TOO_LOW, error
    if error.startswith("insufficient funds"):
        return CODE_INSUFFICIENT_FUNDS, error
    return CODE_INVALID, error


def _failure_text(computation: Any) -> str:
    error = getattr(computation, "error", None)
    if error is None:
        return "execution failed"
    if type(error).__name__ == "Revert":
        return "execution reverted"
    return f"execution failed: {type(error).__name__} {error}".rstrip()


def _tx_event(tx: SignedTransactionAPI, ok: bool) -> abci.Event:
    return abci.Event(
        type="ethereum_tx",
        attributes=[
            abci.EventAttribute(key="hash", value="0x" + bytes(tx.hash).hex(), index=True),
            abci.EventAttribute(key="from", value="0x" + bytes(tx.sender).hex(), index=True),
            abci.EventAttribute(key="status", value="1" if ok else "0"),
        ],
    )
