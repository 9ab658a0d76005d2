"""The node's transaction pool.

The pool keeps signed transactions that passed the state machine's ``check_tx`` until a
block includes them. It never reads chain state: the caller passes the sender's nonce
and balance with each :meth:`Mempool.add`, and a nonce lookup to :meth:`Mempool.on_block`.

Per sender, transactions are held by nonce. Those forming a contiguous run from the
account nonce are *pending* (executable now); those behind a nonce gap are *queued*.
:meth:`Mempool.ready` hands the block producer the pending runs of all senders merged by
effective tip, the way geth's price-and-nonce ordering does.

Rejections raise :class:`~sahara_cli.errors.MempoolError` subclasses whose ``message``
is the text geth uses, so Ethereum clients recognise them.

When the pool is full, a new transaction takes the place of the cheapest one that can go
without breaking a sender's pending run: the cheapest queued transaction, or else the
cheapest last transaction of a sender's pending run. "Cheapest" compares the priority fee,
then the max fee, and among equals the later arrival goes first. The new transaction is
refused with ``txpool is full`` when it would itself be that cheapest one (a queued
transaction never pushes out a pending one).

Costs per operation: ``add`` and ``remove`` are O(log n) in the pool size plus O(k) in
the sender's own transactions (k is at most ``max_per_sender``); ``ready`` is
O(s + m log s) for s senders and m returned transactions.

All public methods hold one re-entrant lock: the RPC server and the block producer call
them from different threads.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sahara_cli.errors import (
    AccountLimitExceeded,
    InsufficientFunds,
    NonceTooLow,
    OversizedData,
    ReplacementUnderpriced,
    TxAlreadyKnown,
    TxPoolFull,
)

if TYPE_CHECKING:
    from eth.abc import SignedTransactionAPI
    from eth_typing import Address

__all__ = ["AddResult", "Mempool", "PoolConfig", "PoolContent", "TxStatus"]

TxStatus = Literal["pending", "queued"]
#: ``{"pending": {sender: {nonce: tx}}, "queued": {...}}``, the shape of ``txpool_content``.
PoolContent = dict[str, dict["Address", dict[int, "SignedTransactionAPI"]]]

#: Every transaction pays at least this much intrinsic gas (``check_tx`` verified it), so
#: :meth:`Mempool.ready` stops packing once less than this is left.
_MIN_TX_GAS = 21_000

# Eviction classes: a queued transaction goes before any pending one.
_QUEUED = 0
_PENDING_TAIL = 1


@dataclass(frozen=True)
class PoolConfig:
    """Limits of the pool.

    Larger than geth's (5,120 slots, 16 per account beyond which it queues): a local node
    serves test suites and load generators that push thousands of transactions from one
    account before the next block, as they do against hardhat and anvil.
    """

    max_txs: int = 20_000
    max_per_sender: int = 5_000
    max_tx_bytes: int = 128 * 1024
    #: A replacement (same sender and nonce) must raise both the max fee and the priority
    #: fee by at least this many percent (geth's ``--txpool.pricebump``).
    price_bump_percent: int = 10

    def __post_init__(self) -> None:
        if self.max_txs < 1 or self.max_per_sender < 1 or self.max_tx_bytes < 1:
            raise ValueError("pool limits must be positive")
        if self.price_bump_percent < 0:
            raise ValueError("price_bump_percent must not be negative")


@dataclass(frozen=True)
class AddResult:
    """What :meth:`Mempool.add` did: the transaction's hash, where it went, and the hash of
    the transaction it replaced, if any."""

    hash: bytes
    status: TxStatus
    replaced: bytes | None = None


@dataclass(eq=False, slots=True)
class _Entry:
    """One pooled transaction with the fields the pool uses, read once at add time
    (a legacy transaction recomputes its hash on every access)."""

    tx: SignedTransactionAPI
    raw: bytes
    hash: bytes
    sender: Address
    nonce: int
    gas: int
    max_fee: int
    tip: int
    cost: int
    seq: int  # arrival order


@dataclass(eq=False, slots=True)
class _Account:
    """One sender's transactions. Pending are the nonces in ``[nonce, end)``, all present
    in ``txs``; every other entry of ``txs`` (all at or above ``end + 1``) is queued."""

    sender: Address
    nonce: int  # the account nonce the pool last heard of
    end: int  # first nonce after the pending run
    txs: dict[int, _Entry]


_HeapItem = tuple[int, int, int, int, bytes]  # (class, tip, max fee, -seq, hash)


class Mempool:
    """Pending and queued transactions by sender and nonce; see the module docstring."""

    def __init__(self, config: PoolConfig = PoolConfig()) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._by_hash: dict[bytes, _Entry] = {}
        self._accounts: dict[bytes, _Account] = {}
        self._pending = 0
        self._seq = 0
        # Eviction candidates, cheapest first. Entries go stale when a transaction leaves
        # the pool or changes class; they are checked when popped and the heap is rebuilt
        # when stale ones pile up.
        self._evict: list[_HeapItem] = []

    # -- adding -------------------------------------------------------------------------

    def add(
        self,
        tx: SignedTransactionAPI,
        raw: bytes,
        *,
        account_nonce: int,
        account_balance: int,
    ) -> AddResult:
        """Pool ``tx`` (whose signed encoding is ``raw``) for a sender whose current
        on-chain nonce and balance are given.

        Raises a :class:`~sahara_cli.errors.MempoolError` subclass when it is refused.
        """
        # Read the fields (and recover the sender, if check_tx has not) outside the lock.
        tx_hash, sender, nonce, gas = bytes(tx.hash), tx.sender, tx.nonce, tx.gas
        max_fee, tip = tx.max_fee_per_gas, tx.max_priority_fee_per_gas
        cost = gas * max_fee + tx.value
        with self._lock:
            if tx_hash in self._by_hash:
                raise TxAlreadyKnown("already known")
            if len(raw) > self.config.max_tx_bytes:
                raise OversizedData(
                    "oversized data",
                    hint=f"A transaction may take at most {self.config.max_tx_bytes} bytes.",
                    details={"size": len(raw), "limit": self.config.max_tx_bytes},
                )
            if nonce < account_nonce:
                raise NonceTooLow(
                    "nonce too low", details={"nonce": nonce, "account_nonce": account_nonce}
                )
            acc = self._accounts.get(sender)
            if acc is None:
                acc = _Account(sender=sender, nonce=account_nonce, end=account_nonce, txs={})
            else:
                self._sync(acc, account_nonce)
            self._seq += 1
            entry = _Entry(
                tx, bytes(raw), tx_hash, sender, nonce, gas, max_fee, tip, cost, self._seq
            )
            old = acc.txs.get(nonce)
            self._check_funds(acc, entry, replacing=old is not None, balance=account_balance)
            if old is not None:
                self._check_bump(old, entry)
            else:
                if len(acc.txs) >= self.config.max_per_sender:
                    raise AccountLimitExceeded(
                        "account limit exceeded",
                        details={"limit": self.config.max_per_sender},
                    )
                if len(self._by_hash) >= self.config.max_txs:
                    self._make_room(acc, entry)
            self._accounts[sender] = acc
            self._insert(acc, entry, old)
            status: TxStatus = "pending" if nonce < acc.end else "queued"
            return AddResult(tx_hash, status, old.hash if old is not None else None)

    def _check_funds(self, acc: _Account, entry: _Entry, *, replacing: bool, balance: int) -> None:
        # What runs before this transaction, plus itself. A replacement must also leave the
        # sender's later pending transactions affordable (geth checks the same).
        need = entry.cost
        for nonce, other in acc.txs.items():
            if nonce < entry.nonce or (replacing and entry.nonce < nonce < acc.end):
                need += other.cost
        if need > balance:
            raise InsufficientFunds(
                "insufficient funds for gas * price + value",
                details={"balance": balance, "cost": entry.cost, "needed": need},
            )

    def _check_bump(self, old: _Entry, new: _Entry) -> None:
        bump = 100 + self.config.price_bump_percent
        fee_ok = new.max_fee > old.max_fee and new.max_fee * 100 >= old.max_fee * bump
        tip_ok = new.tip > old.tip and new.tip * 100 >= old.tip * bump
        if not (fee_ok and tip_ok):
            raise ReplacementUnderpriced(
                "replacement transaction underpriced",
                hint=(
                    "To replace a pending transaction, raise both its max fee and its "
                    f"priority fee by at least {self.config.price_bump_percent}%."
                ),
            )

    def _make_room(self, acc: _Account, entry: _Entry) -> None:
        """Evict the cheapest evictable transaction for ``entry``, or refuse ``entry``."""
        appends = entry.nonce == acc.end
        incoming = (_PENDING_TAIL if appends else _QUEUED, entry.tip, entry.max_fee, -entry.seq)
        # The sender's current tail stops being a tail once ``entry`` is appended after it;
        # evicting it would leave ``entry`` behind a gap.
        keep = acc.txs[acc.end - 1].hash if appends and acc.end > acc.nonce else None
        held: list[_HeapItem] = []
        victim: _Entry | None = None
        while self._evict:
            item = heapq.heappop(self._evict)
            found = self._candidate(item)
            if found is None:
                continue
            if found.hash == keep:
                held.append(item)
                continue
            if incoming < item[:4]:
                held.append(item)
            else:
                victim = found
            break
        for item in held:
            heapq.heappush(self._evict, item)
        if victim is None:
            raise TxPoolFull("txpool is full", details={"limit": self.config.max_txs})
        self._drop(victim)

    # -- reading ------------------------------------------------------------------------

    def ready(
        self, base_fee: int, max_count: int | None = None, gas_limit: int | None = None
    ) -> list[SignedTransactionAPI]:
        """Executable transactions for the next block, best first.

        Per sender, the pending run in nonce order; across senders, by effective tip
        ``min(max_priority_fee, max_fee - base_fee)``, ties by arrival. A transaction whose
        max fee is below ``base_fee`` is skipped with the sender's later nonces; one that no
        longer fits ``gas_limit`` is skipped likewise while smaller ones still go in.
        """
        out: list[SignedTransactionAPI] = []
        if max_count is not None and max_count <= 0:
            return out
        with self._lock:
            heap: list[tuple[int, int, int, _Account]] = []
            for acc in self._accounts.values():
                if acc.end > acc.nonce:
                    head = acc.txs[acc.nonce]
                    if head.max_fee >= base_fee:
                        tip = min(head.tip, head.max_fee - base_fee)
                        heap.append((-tip, head.seq, head.nonce, acc))
            heapq.heapify(heap)
            gas_left = gas_limit
            while heap:
                _, _, nonce, acc = heapq.heappop(heap)
                entry = acc.txs[nonce]
                if gas_left is not None:
                    if entry.gas > gas_left:
                        continue  # drop this sender; later nonces cannot run without it
                    gas_left -= entry.gas
                out.append(entry.tx)
                if max_count is not None and len(out) >= max_count:
                    break
                if gas_left is not None and gas_left < _MIN_TX_GAS:
                    break
                if nonce + 1 < acc.end:
                    nxt = acc.txs[nonce + 1]
                    if nxt.max_fee >= base_fee:
                        tip = min(nxt.tip, nxt.max_fee - base_fee)
                        heapq.heappush(heap, (-tip, nxt.seq, nxt.nonce, acc))
            return out

    def get(self, tx_hash: bytes) -> SignedTransactionAPI | None:
        with self._lock:
            entry = self._by_hash.get(bytes(tx_hash))
            return entry.tx if entry is not None else None

    def raw(self, tx_hash: bytes) -> bytes | None:
        """The signed encoding the transaction arrived as."""
        with self._lock:
            entry = self._by_hash.get(bytes(tx_hash))
            return entry.raw if entry is not None else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        if not isinstance(tx_hash, bytes | bytearray):
            return False
        with self._lock:
            return bytes(tx_hash) in self._by_hash

    def pending_nonce(self, sender: bytes, account_nonce: int) -> int:
        """The nonce after the sender's pooled run starting at ``account_nonce``: what
        ``eth_getTransactionCount(sender, "pending")`` answers."""
        with self._lock:
            nonce = account_nonce
            acc = self._accounts.get(bytes(sender))
            if acc is not None:
                while nonce in acc.txs:
                    nonce += 1
            return nonce

    def status(self) -> dict[str, int]:
        """``{"pending": n, "queued": m}``, as ``txpool_status`` reports them."""
        with self._lock:
            return {"pending": self._pending, "queued": len(self._by_hash) - self._pending}

    def content(self) -> PoolContent:
        """Every pooled transaction as ``{"pending"|"queued": {sender: {nonce: tx}}}``,
        senders in first-seen order and nonces ascending (``txpool_content``'s shape)."""
        with self._lock:
            pending: dict[Address, dict[int, SignedTransactionAPI]] = {}
            queued: dict[Address, dict[int, SignedTransactionAPI]] = {}
            for acc in self._accounts.values():
                for nonce in sorted(acc.txs):
                    side = pending if nonce < acc.end else queued
                    side.setdefault(acc.sender, {})[nonce] = acc.txs[nonce].tx
            return {"pending": pending, "queued": queued}

    # -- removing -----------------------------------------------------------------------

    def on_block(
        self,
        included: Iterable[bytes],
        account_nonce: Callable[[Address], int],
        *,
        senders: Iterable[bytes] | None = None,
    ) -> None:
        """Catch up with a committed block (or a chain reverted to an older one).

        Drops the ``included`` transactions and every transaction below its sender's new
        nonce, ``account_nonce(sender)``; queued transactions that became contiguous are
        promoted to pending, and pending ones behind a lowered nonce become queued.

        By default every sender in the pool is looked up, like geth's pool reset: a block
        may hold transactions this pool never saw (another validator's, or after a
        revert). A caller that knows which accounts changed passes them as ``senders``;
        then only those and the senders of ``included`` are looked up.
        """
        hashes = [bytes(h) for h in included]
        with self._lock:
            touched: list[_Account]
            if senders is None:
                touched = list(self._accounts.values())
            else:
                found = {bytes(s): None for s in senders}
                for tx_hash in hashes:
                    entry = self._by_hash.get(tx_hash)
                    if entry is not None:
                        found[entry.sender] = None
                touched = [a for s in found if (a := self._accounts.get(s)) is not None]
            for acc in touched:
                self._sync(acc, account_nonce(acc.sender))
            for tx_hash in hashes:  # in case the nonce lookup lags behind the block
                entry = self._by_hash.get(tx_hash)
                if entry is not None:
                    self._drop(entry)

    def remove(self, tx_hash: bytes) -> bool:
        """Drop one transaction (say, one that failed when the block was built). The
        sender's later nonces stay, queued behind the new gap. False if it was not here."""
        with self._lock:
            entry = self._by_hash.get(bytes(tx_hash))
            if entry is None:
                return False
            self._drop(entry)
            return True

    # -- bookkeeping (lock held) ----------------------------------------------------------

    def _insert(self, acc: _Account, entry: _Entry, old: _Entry | None) -> None:
        if old is not None:
            del self._by_hash[old.hash]
        acc.txs[entry.nonce] = entry
        self._by_hash[entry.hash] = entry
        if entry.nonce == acc.end:
            end = acc.end + 1
            while end in acc.txs:
                end += 1
            self._pending += end - acc.end
            acc.end = end
            self._push_tail(acc)
        elif entry.nonce >= acc.end:
            self._push(_QUEUED, entry)
        elif entry.nonce == acc.end - 1:
            self._push(_PENDING_TAIL, entry)

    def _drop(self, entry: _Entry) -> None:
        """Remove one transaction; the sender's later pending ones become queued."""
        acc = self._accounts[entry.sender]
        del self._by_hash[entry.hash]
        del acc.txs[entry.nonce]
        old_end = acc.end
        if entry.nonce < old_end:
            self._pending -= old_end - entry.nonce
            acc.end = entry.nonce
        self._settle(acc, old_end)

    def _sync(self, acc: _Account, account_nonce: int) -> None:
        """Move the sender's view to a new account nonce: drop what is below it and
        recompute the pending run."""
        if account_nonce == acc.nonce:
            return
        old_end = acc.end
        self._pending -= acc.end - acc.nonce
        for nonce in [n for n in acc.txs if n < account_nonce]:
            del self._by_hash[acc.txs.pop(nonce).hash]
        end = account_nonce
        while end in acc.txs:
            end += 1
        acc.nonce, acc.end = account_nonce, end
        self._pending += end - account_nonce
        self._settle(acc, old_end)

    def _settle(self, acc: _Account, old_end: int) -> None:
        """After the pending run moved from ``old_end`` to ``acc.end``: register the new
        eviction candidates, and forget an account left with nothing (:meth:`add` puts
        it back when it succeeds)."""
        if not acc.txs:
            self._accounts.pop(acc.sender, None)
            return
        if acc.end == old_end:
            return
        self._push_tail(acc)
        for nonce, entry in acc.txs.items():
            if acc.end <= nonce < old_end:  # demoted from pending to queued
                self._push(_QUEUED, entry)

    def _push_tail(self, acc: _Account) -> None:
        if acc.end > acc.nonce:
            self._push(_PENDING_TAIL, acc.txs[acc.end - 1])

    def _push(self, cls: int, entry: _Entry) -> None:
        heapq.heappush(self._evict, (cls, entry.tip, entry.max_fee, -entry.seq, entry.hash))
        if len(self._evict) > 2 * len(self._by_hash) + 1024:
            self._rebuild_evict()

    def _rebuild_evict(self) -> None:
        items: list[_HeapItem] = []
        for acc in self._accounts.values():
            for nonce, e in acc.txs.items():
                if nonce >= acc.end:
                    items.append((_QUEUED, e.tip, e.max_fee, -e.seq, e.hash))
                elif nonce == acc.end - 1:
                    items.append((_PENDING_TAIL, e.tip, e.max_fee, -e.seq, e.hash))
        heapq.heapify(items)
        self._evict = items

    def _candidate(self, item: _HeapItem) -> _Entry | None:
        """The pooled transaction a heap item stands for, if the item is still current."""
        cls, _, _, neg_seq, tx_hash = item
        entry = self._by_hash.get(tx_hash)
        if entry is None or entry.seq != -neg_seq:
            return None
        acc = self._accounts[entry.sender]
        if cls == _QUEUED:
            return entry if entry.nonce >= acc.end else None
        return entry if entry.nonce == acc.end - 1 else None
