"""The Sahara chain's state machine on py-evm, with an ABCI-shaped interface.

A consensus driver (the solo producer, or CometBFT through the ABCI server) decides
which transactions go into a block; the state machine only checks, executes and
commits them:

- :meth:`StateMachine.info` - height and app hash (the state root) of the last commit
- :meth:`StateMachine.init_chain` - write block 0 from a :class:`Genesis` (once)
- :meth:`StateMachine.check_tx` - may this transaction enter the mempool?
- :meth:`StateMachine.finalize_block` - execute a block's transactions in one pass
- :meth:`StateMachine.commit` - make the block durable, atomically; returns the app hash

The whole block is executed on one py-evm state and its trie is written once at the end
(``persist``), not after each transaction: the cost per transaction stays flat however
many a block holds.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import rlp
from eth.abc import BlockAPI, BlockHeaderAPI, ComputationAPI, ReceiptAPI, SignedTransactionAPI
from eth.chains.base import Chain, MiningChain
from eth.db.chain import ChainDB
from eth.db.schema import SchemaV1
from eth.exceptions import HeaderNotFound
from eth.rlp.sedes import chain_gaps
from eth.vm.forks.prague.transactions import PragueTransactionBuilder
from eth_typing import BlockNumber
from eth_utils.exceptions import ValidationError

from sahara_cli.errors import (
    ChainNotInitialised,
    InsufficientFunds,
    NodeError,
    NonceTooLow,
    OversizedData,
    TxInvalid,
)
from sahara_cli.node.genesis import Genesis
from sahara_cli.node.saps.vm import SaharaVM
from sahara_cli.node.store import BlockStore, ReadOnlyDB

META_GENESIS = b"genesis"
META_HEAD = b"head"
META_TIME_OFFSET = b"time_offset"
SIG_PREFIX = b"sig:"
MAX_TX_BYTES = 128 * 1024


#: py-evm's newest fork with the SAPs (Sahara AI-native precompiles) added.
VM = SaharaVM
TX_BUILDER = PragueTransactionBuilder


@functools.lru_cache(maxsize=8)
def reader_class(chain_id: int) -> type[Chain]:
    """The same chain for readers: no pending header to build on every construction."""
    return Chain.configure(
        __name__="SaharaChainView", vm_configuration=((0, VM),), chain_id=chain_id
    )


@functools.lru_cache(maxsize=8)
def chain_class(chain_id: int) -> type[MiningChain]:
    """The py-evm chain class of a Sahara chain: one VM (the newest fork) from block 0."""
    return MiningChain.configure(
        __name__="SaharaChain", vm_configuration=((0, VM),), chain_id=chain_id
    )


@dataclass(frozen=True)
class Info:
    chain_id: int
    height: int
    app_hash: bytes
    head_hash: bytes
    timestamp: int


@dataclass(frozen=True)
class CheckedTx:
    tx: SignedTransactionAPI
    raw: bytes
    sender: bytes
    account_nonce: int
    account_balance: int


@dataclass
class TxResult:
    hash: bytes
    included: bool
    error: str | None = None
    receipt: ReceiptAPI | None = None
    computation: ComputationAPI | None = None


@dataclass
class BlockResult:
    """A built block: its header, per-transaction outcomes, and (when built in this
    process) the full block. Listeners should rely on ``header`` only."""

    header: BlockHeaderAPI
    results: list[TxResult] = field(default_factory=list)
    block: BlockAPI | None = None

    @property
    def included(self) -> list[TxResult]:
        return [r for r in self.results if r.included]


def decode_tx(raw: bytes) -> SignedTransactionAPI:
    """A signed transaction from its wire bytes; :class:`TxInvalid` when malformed."""
    if len(raw) > MAX_TX_BYTES:
        raise OversizedData("oversized data", details={"size": len(raw), "limit": MAX_TX_BYTES})
    try:
        tx = TX_BUILDER.decode(raw)
    except Exception as exc:  # rlp and py-evm raise many kinds for garbage
        raise TxInvalid(f"invalid transaction: {exc}") from exc
    return tx


def recover_sender(tx: SignedTransactionAPI) -> bytes:
    try:
        sender: bytes = tx.sender
    except Exception as exc:  # bad v/r/s, point not on the curve
        raise TxInvalid("invalid sender: signature does not recover") from exc
    return sender


class StateMachine:
    """The chain: checks, executes and commits blocks on py-evm over a :class:`BlockStore`."""

    def __init__(
        self, store: BlockStore, *, sign_block: Callable[[bytes], bytes] | None = None
    ) -> None:
        self.store = store
        self.sign_block = sign_block
        self._lock = threading.RLock()
        raw = store.get_meta(META_GENESIS)
        self.genesis: Genesis | None = Genesis.from_json(raw.decode()) if raw else None
        self._chain: MiningChain | None = None
        self._uncommitted: list[BlockResult] = []
        self._check_cache: tuple[int, ChainView, BlockHeaderAPI, Any] | None = None
        self._check_lock = threading.Lock()
        offset = store.get_meta(META_TIME_OFFSET)
        self.time_offset = int(offset) if offset else 0

    # -- ABCI-shaped interface ---------------------------------------------------------

    @property
    def chain_id(self) -> int:
        if self.genesis is None:
            raise ChainNotInitialised("the chain has no genesis block yet")
        return self.genesis.chain_id

    @property
    def chain(self) -> MiningChain:
        if self._chain is None:
            self._chain = chain_class(self.chain_id)(self.store.db)
        return self._chain

    def info(self) -> Info:
        head = self.head()
        return Info(self.chain_id, head.block_number, head.state_root, head.hash, head.timestamp)

    def init_chain(self, genesis: Genesis) -> bytes:
        """Write block 0 unless the store has a chain already; returns the app hash."""
        with self._lock:
            if self.genesis is not None:
                return self.head().state_root
            params: dict[str, Any] = {
                "difficulty": 0,
                "gas_limit": genesis.gas_limit,
                "timestamp": genesis.timestamp or int(time.time()),
                "extra_data": b"sahara",
                "nonce": b"\x00" * 8,
                "base_fee_per_gas": genesis.base_fee,
                "coinbase": bytes.fromhex(genesis.validator.removeprefix("0x")),
            }
            genesis.timestamp = params["timestamp"]
            chain = chain_class(genesis.chain_id).from_genesis(
                self.store.db,
                params,
                genesis.state_dict(),  # type: ignore[arg-type]  # Address is a NewType of bytes
            )
            head = chain.get_canonical_head()
            self.store.commit(
                {
                    META_GENESIS: genesis.to_json().encode(),
                    META_HEAD: str(head.block_number).encode(),
                }
            )
            self.genesis = genesis
            self._chain = None
            return head.state_root

    def head(self) -> BlockHeaderAPI:
        """The last committed block's header (what readers on any thread may see)."""
        return self.view().head()

    def check_tx(self, raw: bytes) -> CheckedTx:
        """Stateless and state checks against the last committed block, geth's texts."""
        tx = decode_tx(raw)
        return self.check_decoded(tx, raw)

    def check_decoded(self, tx: SignedTransactionAPI, raw: bytes) -> CheckedTx:
        if tx.chain_id is not None and tx.chain_id != self.chain_id:
            raise TxInvalid(f"invalid chain id for signer: have {tx.chain_id} want {self.chain_id}")
        # Pre-EIP-155 legacy transactions (no chain id) are accepted, as geth does with
        # --rpc.allow-unprotected-txs: deployers of some well-known contracts need them.
        sender = recover_sender(tx)
        try:
            tx.validate()
        except ValidationError as exc:
            raise TxInvalid(_geth_text(str(exc))) from exc
        head, nonce, balance = self._account(sender)
        if tx.gas > head.gas_limit:
            raise TxInvalid("exceeds block gas limit")
        intrinsic = tx.intrinsic_gas
        if tx.gas < intrinsic:
            raise TxInvalid(f"intrinsic gas too low: have {tx.gas}, want {intrinsic}")
        next_base_fee = self._next_base_fee(head)
        if tx.max_fee_per_gas < next_base_fee:
            raise TxInvalid(
                f"max fee per gas less than block base fee: address 0x{sender.hex()}, "
                f"maxFeePerGas: {tx.max_fee_per_gas}, baseFee: {next_base_fee}"
            )
        if tx.nonce < nonce:
            raise NonceTooLow(
                f"nonce too low: address 0x{sender.hex()}, tx: {tx.nonce} state: {nonce}"
            )
        cost = tx.gas * tx.max_fee_per_gas + tx.value
        if balance < cost:
            raise InsufficientFunds(
                f"insufficient funds for gas * price + value: address 0x{sender.hex()} "
                f"have {balance} want {cost}"
            )
        return CheckedTx(tx, raw, sender, nonce, balance)

    def _account(self, address: bytes) -> tuple[BlockHeaderAPI, int, int]:
        """Head, nonce and balance at the last commit; the state is cached until the next.

        The cached py-evm state is not thread-safe, so it is only used under the lock.
        """
        with self._check_lock:
            cached = self._check_cache
            if cached is None or cached[0] != self.store.generation:
                view = self.view()
                head = view.head()
                cached = (self.store.generation, view, head, view.state_at(head))
                self._check_cache = cached
            state = cached[3]
            return cached[2], int(state.get_nonce(address)), int(state.get_balance(address))

    def finalize_block(
        self,
        txs: Sequence[SignedTransactionAPI],
        *,
        timestamp: int | None = None,
        coinbase: bytes | None = None,
        pre_state: Callable[[Any], None] | None = None,
    ) -> BlockResult:
        """Execute ``txs`` in order as the next block. Invalid ones are left out, with a reason.

        Nothing is durable until :meth:`commit`.
        """
        with self._lock:
            chain = self.chain
            parent = self._pending_head()
            now = int(time.time()) + self.time_offset
            ts = max(timestamp if timestamp is not None else now, parent.timestamp + 1)
            assert self.genesis is not None
            header = chain.create_header_from_parent(
                parent,
                timestamp=ts,
                gas_limit=parent.gas_limit,
                coinbase=coinbase or bytes.fromhex(self.genesis.validator.removeprefix("0x")),
            )
            vm: Any = chain.get_vm(header)  # the fork's VM: pre/post-processing hooks
            block = vm.get_block()
            vm.block_preprocessing(block)
            if pre_state is not None:
                pre_state(vm.state)
            result_header = vm.get_header().copy(gas_used=0)
            included: list[SignedTransactionAPI] = []
            receipts: list[ReceiptAPI] = []
            results: list[TxResult] = []
            for tx in txs:
                if result_header.gas_used + tx.gas > result_header.gas_limit:
                    results.append(TxResult(tx.hash, False, "exceeds block gas limit"))
                    continue
                try:
                    # py-evm validates before it touches state: a rejected tx changed nothing.
                    receipt, computation = vm.apply_transaction(result_header, tx)
                except ValidationError as exc:
                    results.append(TxResult(tx.hash, False, _geth_text(str(exc))))
                    continue
                result_header = vm.add_receipt_to_header(result_header, receipt)
                included.append(tx)
                receipts.append(receipt)
                results.append(TxResult(tx.hash, True, None, receipt, computation))
            filled = vm.set_block_transactions_and_withdrawals(
                vm.get_block(), result_header, included, receipts, withdrawals=()
            )
            processed = vm.block_postprocessing(filled)
            mined = vm.mine_block(processed).block
            chain.persist_block(mined, perform_validation=False)
            block_result = BlockResult(mined.header, results, mined)
            self._uncommitted.append(block_result)
            return block_result

    def commit(self) -> bytes:
        """Write every block finalized since the last commit in one transaction."""
        with self._lock:
            head = self._pending_head()
            meta: dict[bytes, bytes | None] = {META_HEAD: str(head.block_number).encode()}
            if self.sign_block is not None:
                for result in self._uncommitted:
                    meta[SIG_PREFIX + result.header.hash] = self.sign_block(result.header.hash)
            meta[META_TIME_OFFSET] = str(self.time_offset).encode()
            self.store.commit(meta)
            self._uncommitted = []
            return head.state_root

    def abort(self) -> None:
        """Forget blocks finalized since the last commit."""
        with self._lock:
            self.store.discard()
            self._uncommitted = []
            self._chain = None

    def _pending_head(self) -> BlockHeaderAPI:
        return self.chain.chaindb.get_canonical_head()

    @staticmethod
    def _next_base_fee(parent: BlockHeaderAPI) -> int:
        from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas

        return int(calculate_expected_base_fee_per_gas(parent))

    def next_base_fee(self, parent: BlockHeaderAPI | None = None) -> int:
        """EIP-1559 base fee of the block after ``parent`` (default: the committed head)."""
        return self._next_base_fee(parent if parent is not None else self.head())

    # -- reads on committed data (thread-safe: a fresh view per call) --------------------

    def view(self) -> ChainView:
        return ChainView(self.chain_id, self.store.committed_view())

    def block_signature(self, block_hash: bytes) -> bytes | None:
        return self.store.get_meta(SIG_PREFIX + block_hash)

    # -- development chains ------------------------------------------------------------

    def revert_to(self, number: int) -> None:
        """Make block ``number`` the head again; later blocks and their txs disappear."""
        with self._lock:
            chaindb = self.chain.chaindb
            head = self._pending_head()
            if number > head.block_number:
                raise NodeError(f"cannot revert forward to block {number}")
            target = chaindb.get_canonical_block_header_by_number(BlockNumber(number))
            db = self.store.db
            for n in range(head.block_number, number, -1):
                header = chaindb.get_canonical_block_header_by_number(BlockNumber(n))
                for tx in chaindb.get_block_transactions(header, VM.get_transaction_builder()):
                    key = SchemaV1.make_transaction_hash_to_block_lookup_key(tx.hash)
                    if key in db:
                        del db[key]
                del db[SchemaV1.make_block_number_to_hash_lookup_key(BlockNumber(n))]
            db[SchemaV1.make_canonical_head_hash_lookup_key()] = target.hash
            # py-evm tracks which block numbers it holds ("gaps"); after the revert it
            # holds 0..number, exactly as when `number` was the head.
            gaps = rlp.encode(((), number + 1), sedes=chain_gaps)
            db[SchemaV1.make_header_chain_gaps_lookup_key()] = gaps
            db[SchemaV1.make_chain_gaps_lookup_key()] = gaps
            self._chain = None
            self.commit()


@dataclass(frozen=True)
class AccountProof:
    """An account and some of its storage slots with their Merkle proofs (EIP-1186):
    each proof is the RLP of the trie nodes from the root down."""

    nonce: int
    balance: int
    storage_root: bytes
    code_hash: bytes
    account_proof: list[bytes]
    #: Per slot asked for: (its value, its proof in the account's storage trie).
    storage: list[tuple[int, list[bytes]]]


class ChainView:
    """Read-only access to the committed chain, for RPC handlers on any thread."""

    def __init__(self, chain_id: int, db: ReadOnlyDB) -> None:
        self.chain_id = chain_id
        self.db = db
        self.chain = reader_class(chain_id)(db)
        self.chaindb: ChainDB = self.chain.chaindb  # type: ignore[assignment]

    def head(self) -> BlockHeaderAPI:
        return self.chaindb.get_canonical_head()

    def head_hash(self) -> bytes:
        """The canonical head's hash: one read, for callers that cache per head."""
        return bytes(self.db[SchemaV1.make_canonical_head_hash_lookup_key()])

    def account_proof(
        self, state_root: bytes, address: bytes, slots: Sequence[int]
    ) -> AccountProof:
        """``address`` and its ``slots`` at ``state_root``, with their proofs."""
        import rlp
        from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
        from eth.rlp.accounts import Account
        from eth_hash.auto import keccak
        from trie.hexary import HexaryTrie

        def prove(trie: Any, key: bytes) -> list[bytes]:
            return [rlp.encode(node) for node in trie.get_proof(key)]

        accounts = HexaryTrie(self.db, state_root)
        key = keccak(address)
        raw = accounts.get(key)
        if raw:
            account = rlp.decode(raw, sedes=Account)
            nonce, balance = int(account.nonce), int(account.balance)
            storage_root, code_hash = bytes(account.storage_root), bytes(account.code_hash)
        else:
            nonce, balance, storage_root, code_hash = 0, 0, BLANK_ROOT_HASH, EMPTY_SHA3
        storage_trie = HexaryTrie(self.db, storage_root)
        storage = []
        for slot in slots:
            slot_key = keccak(slot.to_bytes(32, "big"))
            value = storage_trie.get(slot_key)
            decoded = rlp.decode(value, sedes=rlp.sedes.big_endian_int) if value else 0
            storage.append((int(decoded), prove(storage_trie, slot_key)))
        return AccountProof(nonce, balance, storage_root, code_hash, prove(accounts, key), storage)

    def number_of(self, block_hash: bytes) -> int:
        """The number of the block with ``block_hash`` (canonical or not)."""
        return int(self.chaindb.get_block_header_by_hash(block_hash).block_number)  # type: ignore[arg-type]

    def header_by_number(self, number: int) -> BlockHeaderAPI | None:
        try:
            return self.chaindb.get_canonical_block_header_by_number(number)  # type: ignore[arg-type]
        except HeaderNotFound:
            return None

    def header_by_hash(self, block_hash: bytes) -> BlockHeaderAPI | None:
        try:
            header = self.chaindb.get_block_header_by_hash(block_hash)  # type: ignore[arg-type]
        except HeaderNotFound:
            return None
        canonical = self.header_by_number(header.block_number)
        return header if canonical is not None and canonical.hash == header.hash else None

    def block(self, header: BlockHeaderAPI) -> BlockAPI:
        return self.chain.get_block_by_header(header)

    def transactions(self, header: BlockHeaderAPI) -> tuple[SignedTransactionAPI, ...]:
        return tuple(self.chaindb.get_block_transactions(header, VM.get_transaction_builder()))

    def receipts(self, header: BlockHeaderAPI) -> tuple[ReceiptAPI, ...]:
        return tuple(self.chaindb.get_receipts(header, VM.get_receipt_builder()))

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        key = SchemaV1.make_transaction_hash_to_block_lookup_key(tx_hash)  # type: ignore[arg-type]
        try:
            encoded = self.db[key]
        except KeyError:
            return None
        from eth.db.chain import BlockDataKey

        location = rlp.decode(encoded, sedes=BlockDataKey)
        number, index = int(location.block_number), int(location.index)
        if self.header_by_number(number) is None:
            return None
        return number, index

    def state_at(self, header: BlockHeaderAPI) -> Any:
        return self.chain.get_vm(header).state


def _geth_text(message: str) -> str:
    """py-evm's validation messages, reworded as the texts Ethereum clients look for."""
    lowered = message.lower()
    if "nonce" in lowered and ("invalid" in lowered or "mismatch" in lowered):
        return f"nonce too low: {message}" if "expected" in lowered else message
    if "insufficient" in lowered or "sender balance" in lowered:
        return f"insufficient funds for gas * price + value: {message}"
    if "intrinsic" in lowered:
        return f"intrinsic gas too low: {message}"
    if "base fee" in lowered or "max fee per gas" in lowered:
        return f"max fee per gas less than block base fee: {message}"
    return message
