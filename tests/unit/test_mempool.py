"""The transaction pool, fed real signed transactions decoded by py-evm."""

from __future__ import annotations

import functools
import threading
from typing import Any

import pytest
from eth.vm.forks.prague.transactions import PragueTransactionBuilder
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from sahara_cli.errors import (
    AccountLimitExceeded,
    ConflictError,
    InsufficientFunds,
    InvalidDataError,
    MempoolError,
    NodeError,
    NonceTooLow,
    OversizedData,
    ReplacementUnderpriced,
    TxAlreadyKnown,
    TxPoolFull,
)
from sahara_cli.node.mempool import Mempool, PoolConfig

CHAIN_ID = 1337
GWEI = 10**9
RICH = 10**30
TO = "0x" + "42" * 20
KEYS = [Account.from_key(bytes([i + 1]) * 32) for i in range(6)]
A, B, C, D, E, F = KEYS


@functools.cache
def sign(
    acct_index: int,
    nonce: int,
    *,
    kind: int = 2,
    tip: int = GWEI,
    fee: int = 10 * GWEI,
    gas: int = 21_000,
    value: int = 0,
    data: bytes = b"",
) -> tuple[Any, bytes]:
    """A signed transaction of type ``kind`` as py-evm decodes it, and its raw bytes.
    Types 0 and 1 pay ``fee`` as gas price (``tip`` is ignored)."""
    fields: dict[str, Any] = {
        "nonce": nonce,
        "gas": gas,
        "to": TO,
        "value": value,
        "data": data,
        "chainId": CHAIN_ID,
    }
    if kind == 2:
        fields.update(type=2, maxFeePerGas=fee, maxPriorityFeePerGas=tip)
    else:
        fields["gasPrice"] = fee
        if kind == 1:
            fields.update(type=1, accessList=[])
    raw = bytes(KEYS[acct_index].sign_transaction(fields).raw_transaction)
    tx = PragueTransactionBuilder.decode(raw)
    tx.sender  # noqa: B018 - recover once, as check_tx does before the pool sees it
    return tx, raw


def tx_of(acct: Any, nonce: int, **kw: Any) -> tuple[Any, bytes]:
    return sign(KEYS.index(acct), nonce, **kw)


def add(
    pool: Mempool, acct: Any, nonce: int, *, account_nonce: int = 0, balance: int = RICH, **kw: Any
):
    tx, raw = tx_of(acct, nonce, **kw)
    return pool.add(tx, raw, account_nonce=account_nonce, account_balance=balance)


def addr(acct: Any) -> bytes:
    return bytes.fromhex(acct.address[2:])


def order(txs: list[Any]) -> list[tuple[str, int]]:
    names = {addr(k): "ABCDEF"[i] for i, k in enumerate(KEYS)}
    return [(names[bytes(t.sender)], t.nonce) for t in txs]


# -- the fields the pool relies on ---------------------------------------------------------


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_every_tx_type_exposes_the_fields_the_pool_reads(kind: int) -> None:
    tx, raw = tx_of(A, 3, kind=kind, tip=2 * GWEI, fee=7 * GWEI, gas=30_000, value=5)
    assert bytes(tx.sender) == addr(A)
    assert (tx.nonce, tx.gas, tx.value) == (3, 30_000, 5)
    assert tx.max_fee_per_gas == 7 * GWEI
    # Legacy and access-list transactions pay their gas price as both fee and tip.
    assert tx.max_priority_fee_per_gas == (2 * GWEI if kind == 2 else 7 * GWEI)
    pool = Mempool()
    result = pool.add(tx, raw, account_nonce=3, account_balance=RICH)
    assert result.hash == bytes(tx.hash) and result.status == "pending"
    assert pool.get(tx.hash) is tx and pool.raw(tx.hash) == raw
    assert tx.hash in pool and len(pool) == 1


# -- pending, queued, promotion ------------------------------------------------------------


def test_a_nonce_gap_queues_and_filling_it_promotes() -> None:
    pool = Mempool()
    assert add(pool, A, 0).status == "pending"
    assert add(pool, A, 2).status == "queued"
    assert pool.status() == {"pending": 1, "queued": 1}
    assert pool.pending_nonce(addr(A), 0) == 1
    content = pool.content()
    assert list(content["pending"][addr(A)]) == [0]
    assert list(content["queued"][addr(A)]) == [2]

    assert add(pool, A, 1).status == "pending"
    assert pool.status() == {"pending": 3, "queued": 0}
    assert pool.pending_nonce(addr(A), 0) == 3
    assert pool.pending_nonce(addr(B), 7) == 7  # unknown sender: its own nonce
    assert order(pool.ready(base_fee=GWEI)) == [("A", 0), ("A", 1), ("A", 2)]


def test_a_tx_above_the_account_nonce_waits_queued() -> None:
    pool = Mempool()
    assert add(pool, A, 5, account_nonce=4).status == "queued"
    assert pool.ready(base_fee=0) == []
    assert pool.status() == {"pending": 0, "queued": 1}


def test_on_block_drops_included_and_promotes_the_rest() -> None:
    pool = Mempool()
    included = [add(pool, A, n).hash for n in (0, 1)]
    add(pool, A, 3)  # queued behind 2, which reaches the chain from elsewhere
    add(pool, B, 0)
    assert pool.status() == {"pending": 3, "queued": 1}

    nonces = {addr(A): 3, addr(B): 0}
    pool.on_block(included, lambda a: nonces[bytes(a)])
    assert all(h not in pool for h in included)
    assert pool.status() == {"pending": 2, "queued": 0}
    assert order(pool.ready(base_fee=0)) == [("A", 3), ("B", 0)]
    assert pool.pending_nonce(addr(A), 3) == 4


def test_on_block_with_known_senders_only_looks_those_up() -> None:
    pool = Mempool()
    h = add(pool, A, 0).hash
    add(pool, B, 0)
    looked_up: list[bytes] = []

    def nonce(a: bytes) -> int:
        looked_up.append(bytes(a))
        return 1

    pool.on_block([h], nonce, senders=[])
    assert looked_up == [addr(A)]
    assert len(pool) == 1


def test_a_lowered_nonce_after_a_revert_queues_what_now_has_a_gap() -> None:
    pool = Mempool()
    add(pool, A, 5, account_nonce=5)
    add(pool, A, 6, account_nonce=5)
    assert pool.status() == {"pending": 2, "queued": 0}
    pool.on_block([], lambda a: 3)
    assert pool.status() == {"pending": 0, "queued": 2}
    assert pool.ready(base_fee=0) == []


def test_remove_leaves_later_nonces_queued_behind_the_gap() -> None:
    pool = Mempool()
    hashes = [add(pool, A, n).hash for n in range(3)]
    assert pool.remove(hashes[1]) is True
    assert pool.remove(hashes[1]) is False
    assert pool.status() == {"pending": 1, "queued": 1}
    assert order(pool.ready(base_fee=0)) == [("A", 0)]
    assert add(pool, A, 1).status == "pending"
    assert pool.status() == {"pending": 3, "queued": 0}


def test_removing_the_last_tx_forgets_the_sender() -> None:
    pool = Mempool()
    h = add(pool, A, 0).hash
    pool.remove(h)
    assert len(pool) == 0 and pool.content() == {"pending": {}, "queued": {}}
    assert pool.status() == {"pending": 0, "queued": 0}


# -- ready(): ordering, base fee, gas limit --------------------------------------------------


def test_ready_merges_senders_by_tip_keeping_each_senders_nonce_order() -> None:
    pool = Mempool()
    add(pool, A, 0, tip=1 * GWEI)
    add(pool, A, 1, tip=5 * GWEI)
    add(pool, A, 2, tip=5 * GWEI)
    add(pool, B, 0, tip=3 * GWEI)
    add(pool, C, 0, kind=0, fee=3 * GWEI)  # legacy: tip = gas price - base fee = 2 gwei
    assert order(pool.ready(base_fee=GWEI)) == [
        ("B", 0),
        ("C", 0),
        ("A", 0),
        ("A", 1),
        ("A", 2),
    ]
    assert order(pool.ready(base_fee=GWEI, max_count=2)) == [("B", 0), ("C", 0)]
    assert pool.ready(base_fee=GWEI, max_count=0) == []


def test_ready_breaks_tip_ties_by_arrival() -> None:
    pool = Mempool()
    add(pool, C, 0, tip=2 * GWEI)
    add(pool, A, 0, tip=2 * GWEI)
    add(pool, B, 0, tip=2 * GWEI)
    assert order(pool.ready(base_fee=GWEI)) == [("C", 0), ("A", 0), ("B", 0)]


def test_ready_ranks_by_effective_tip_at_the_base_fee() -> None:
    pool = Mempool()
    add(pool, A, 0, tip=5 * GWEI, fee=10 * GWEI)
    add(pool, B, 0, tip=3 * GWEI, fee=20 * GWEI)
    # At base fee 1: tips 5 and 3. At base fee 8: min(5, 2) = 2 against min(3, 12) = 3.
    assert order(pool.ready(base_fee=GWEI)) == [("A", 0), ("B", 0)]
    assert order(pool.ready(base_fee=8 * GWEI)) == [("B", 0), ("A", 0)]


def test_ready_skips_a_fee_cap_below_the_base_fee_and_that_senders_later_nonces() -> None:
    pool = Mempool()
    add(pool, A, 0, fee=10 * GWEI)
    add(pool, A, 1, fee=5 * GWEI)
    add(pool, A, 2, fee=10 * GWEI)
    add(pool, B, 0, fee=6 * GWEI, tip=GWEI // 2)
    add(pool, C, 0, fee=6 * GWEI)
    assert order(pool.ready(base_fee=7 * GWEI)) == [("A", 0)]
    # At 6 gwei B0 and C0 both tip min(tip, 6 - 6) = 0: arrival decides.
    assert order(pool.ready(base_fee=6 * GWEI)) == [("A", 0), ("B", 0), ("C", 0)]
    # At 5 gwei: A0 1, C0 1, B0 0.5, A1 0 (its fee cap just covers the base fee), A2 1.
    assert order(pool.ready(base_fee=5 * GWEI)) == [
        ("A", 0),
        ("C", 0),
        ("B", 0),
        ("A", 1),
        ("A", 2),
    ]
    assert len(pool) == 5  # skipped, not dropped


def test_ready_packs_what_fits_the_gas_limit() -> None:
    pool = Mempool()
    add(pool, A, 0, tip=9 * GWEI, gas=100_000)
    add(pool, A, 1, tip=9 * GWEI, gas=21_000)
    add(pool, B, 0, tip=5 * GWEI, gas=21_000)
    add(pool, C, 0, tip=3 * GWEI, gas=50_000)
    add(pool, D, 0, tip=2 * GWEI, gas=21_000)
    # A0 does not fit (and A1 cannot go without it); B0 and C0 do; D0 no longer does.
    assert order(pool.ready(base_fee=0, gas_limit=80_000)) == [("B", 0), ("C", 0)]
    assert order(pool.ready(base_fee=0, gas_limit=121_000)) == [("A", 0), ("A", 1)]
    assert len(pool.ready(base_fee=0, gas_limit=10**9)) == 5


# -- replacement ---------------------------------------------------------------------------


def test_replacement_needs_the_price_bump_on_both_fees() -> None:
    pool = Mempool()
    first = add(pool, A, 0, tip=10 * GWEI, fee=100 * GWEI)
    with pytest.raises(ReplacementUnderpriced) as caught:
        add(pool, A, 0, tip=11 * GWEI, fee=109 * GWEI)  # fee +9%
    assert caught.value.message == "replacement transaction underpriced"
    with pytest.raises(ReplacementUnderpriced):
        add(pool, A, 0, tip=10 * GWEI, fee=200 * GWEI)  # tip unchanged
    with pytest.raises(ReplacementUnderpriced):
        add(pool, A, 0, tip=10 * GWEI + 1, fee=200 * GWEI)  # tip +0.00000001%
    assert pool.get(first.hash) is not None

    second = add(pool, A, 0, tip=11 * GWEI, fee=110 * GWEI)  # exactly +10% on both
    assert second.replaced == first.hash and second.status == "pending"
    assert first.hash not in pool and pool.get(first.hash) is None
    assert len(pool) == 1 and pool.status() == {"pending": 1, "queued": 0}
    assert [t.hash for t in pool.ready(base_fee=0)] == [second.hash]


def test_replacing_a_queued_or_legacy_tx() -> None:
    pool = Mempool(PoolConfig(price_bump_percent=50))
    queued = add(pool, A, 4, kind=0, fee=10 * GWEI)
    with pytest.raises(ReplacementUnderpriced):
        add(pool, A, 4, kind=0, fee=14 * GWEI)
    again = add(pool, A, 4, kind=1, fee=15 * GWEI)
    assert again.replaced == queued.hash and again.status == "queued"
    assert pool.status() == {"pending": 0, "queued": 1}


# -- rejections ------------------------------------------------------------------------------


def test_rejections_carry_geths_texts() -> None:
    pool = Mempool(PoolConfig(max_tx_bytes=300))
    add(pool, A, 0)
    with pytest.raises(TxAlreadyKnown) as known:
        add(pool, A, 0)
    with pytest.raises(NonceTooLow) as low:
        add(pool, B, 2, account_nonce=3)
    with pytest.raises(OversizedData) as big:
        add(pool, B, 0, data=b"\x01" * 300, gas=100_000)
    assert known.value.message == "already known"
    assert low.value.message == "nonce too low"
    assert big.value.message == "oversized data"
    for err in (known.value, low.value, big.value):
        assert isinstance(err, MempoolError) and isinstance(err, NodeError)
        assert err.code.startswith("node.")
    assert isinstance(known.value, ConflictError)
    assert isinstance(big.value, InvalidDataError)
    assert len(pool) == 1 and pool.content()["pending"].keys() == {addr(A)}


def test_funds_are_checked_cumulatively_over_earlier_nonces() -> None:
    pool = Mempool()
    cost = 21_000 * 10 * GWEI + 7  # gas * max fee + value
    balance = 2 * cost
    add(pool, A, 0, value=7, balance=balance)
    add(pool, A, 1, value=7, balance=balance)
    with pytest.raises(InsufficientFunds) as caught:
        add(pool, A, 2, value=7, balance=balance)
    assert caught.value.message == "insufficient funds for gas * price + value"
    assert caught.value.details["needed"] == 3 * cost
    # A queued tx counts the pooled ones below it, too.
    with pytest.raises(InsufficientFunds):
        add(pool, A, 5, value=7, balance=balance)
    # A replacement may not leave the later pending ones unaffordable.
    with pytest.raises(InsufficientFunds):
        add(pool, A, 0, tip=2 * GWEI, fee=20 * GWEI, value=7, balance=balance)
    assert add(pool, A, 1, tip=2 * GWEI, fee=20 * GWEI, balance=3 * cost).replaced
    assert pool.status() == {"pending": 2, "queued": 0}


def test_a_sender_may_hold_only_max_per_sender() -> None:
    pool = Mempool(PoolConfig(max_per_sender=2))
    add(pool, A, 0)
    add(pool, A, 5)
    with pytest.raises(AccountLimitExceeded) as caught:
        add(pool, A, 1)
    assert caught.value.message == "account limit exceeded"
    assert add(pool, A, 0, tip=2 * GWEI, fee=20 * GWEI).replaced  # replacing is fine
    assert add(pool, B, 0).status == "pending"  # other senders are not limited by A


# -- a full pool -----------------------------------------------------------------------------


def test_a_full_pool_evicts_queued_before_pending() -> None:
    pool = Mempool(PoolConfig(max_txs=3))
    add(pool, A, 0, tip=5 * GWEI)
    add(pool, B, 0, tip=1 * GWEI)
    rich_but_queued = add(pool, C, 5, tip=9 * GWEI).hash
    result = add(pool, D, 0, tip=2 * GWEI)
    assert result.status == "pending" and rich_but_queued not in pool
    assert len(pool) == 3 and pool.status() == {"pending": 3, "queued": 0}


def test_a_full_pool_refuses_the_cheapest_and_evicts_for_a_better_one() -> None:
    pool = Mempool(PoolConfig(max_txs=3))
    add(pool, A, 0, tip=5 * GWEI)
    cheapest = add(pool, B, 0, tip=1 * GWEI).hash
    add(pool, D, 0, tip=2 * GWEI)
    with pytest.raises(TxPoolFull) as caught:
        add(pool, E, 0, tip=1 * GWEI)  # ties with B0 but came later
    assert caught.value.message == "txpool is full"
    with pytest.raises(TxPoolFull):
        add(pool, E, 1, tip=100 * GWEI)  # queued never pushes out pending
    assert add(pool, E, 0, tip=3 * GWEI).status == "pending"
    assert cheapest not in pool and len(pool) == 3


def test_eviction_takes_a_senders_last_nonce_never_one_inside_its_run() -> None:
    pool = Mempool(PoolConfig(max_txs=3))
    add(pool, A, 0, tip=1 * GWEI)  # cheapest, but A1 depends on it
    add(pool, A, 1, tip=9 * GWEI)
    add(pool, B, 0, tip=5 * GWEI)
    with pytest.raises(TxPoolFull):
        add(pool, C, 0, tip=3 * GWEI)  # cheaper than both tails (A1 at 9, B0 at 5)
    b0 = tx_of(B, 0, tip=5 * GWEI)[0].hash
    add(pool, C, 0, tip=6 * GWEI)
    assert b0 not in pool
    assert order(pool.ready(base_fee=0)) == [("C", 0), ("A", 0), ("A", 1)]


def test_a_tail_left_by_a_removal_can_be_evicted() -> None:
    pool = Mempool(PoolConfig(max_txs=3))
    a0 = add(pool, A, 0, tip=1 * GWEI).hash
    pool.remove(add(pool, A, 1, tip=9 * GWEI).hash)  # A0 is A's last pending tx again
    add(pool, B, 0, tip=5 * GWEI)
    add(pool, C, 0, tip=4 * GWEI)
    add(pool, D, 0, tip=3 * GWEI)
    assert a0 not in pool and len(pool) == 3


def test_a_tail_that_was_promoted_from_queued_can_be_evicted() -> None:
    pool = Mempool(PoolConfig(max_txs=4))
    add(pool, A, 1, tip=1 * GWEI)  # queued
    a2 = add(pool, A, 2, tip=9 * GWEI).hash  # queued
    add(pool, A, 0, tip=9 * GWEI)  # promotes both
    add(pool, B, 0, tip=5 * GWEI)
    pool.remove(a2)  # A1 is now A's last pending tx
    add(pool, C, 0, tip=3 * GWEI)
    add(pool, D, 0, tip=2 * GWEI)
    assert order(pool.ready(base_fee=0)) == [("A", 0), ("B", 0), ("C", 0), ("D", 0)]


def test_txs_demoted_to_queued_are_evicted_first() -> None:
    pool = Mempool(PoolConfig(max_txs=3))
    a0 = add(pool, A, 0, tip=9 * GWEI).hash
    a1 = add(pool, A, 1, tip=9 * GWEI).hash
    add(pool, B, 0, tip=1 * GWEI)
    pool.remove(a0)  # A1 now waits behind a gap
    add(pool, C, 0, tip=5 * GWEI)
    add(pool, D, 0, tip=2 * GWEI)
    assert a1 not in pool
    assert order(pool.ready(base_fee=0)) == [("C", 0), ("D", 0), ("B", 0)]


def test_a_replaced_tail_stays_evictable() -> None:
    pool = Mempool(PoolConfig(max_txs=3))
    add(pool, A, 0, tip=1 * GWEI)
    add(pool, B, 0, tip=5 * GWEI)
    add(pool, C, 0, tip=6 * GWEI)
    replacement = add(pool, A, 0, tip=2 * GWEI, fee=20 * GWEI).hash
    add(pool, D, 0, tip=3 * GWEI)
    assert replacement not in pool
    assert order(pool.ready(base_fee=0)) == [("C", 0), ("B", 0), ("D", 0)]


def test_appending_to_a_full_pool_does_not_evict_the_senders_own_tail() -> None:
    pool = Mempool(PoolConfig(max_txs=2))
    add(pool, A, 0, tip=1 * GWEI)
    add(pool, B, 0, tip=5 * GWEI)
    assert add(pool, A, 1, tip=9 * GWEI).status == "pending"
    assert order(pool.ready(base_fee=0)) == [("A", 0), ("A", 1)]


def test_eviction_stays_right_after_much_churn() -> None:
    pool = Mempool(PoolConfig(max_txs=3))
    for _ in range(1500):  # stale eviction entries pile up and get compacted
        pool.remove(add(pool, A, 0, tip=1 * GWEI).hash)
    add(pool, A, 0, tip=4 * GWEI)
    add(pool, B, 0, tip=2 * GWEI)
    add(pool, C, 0, tip=3 * GWEI)
    add(pool, D, 0, tip=5 * GWEI)
    assert order(pool.ready(base_fee=0)) == [("D", 0), ("A", 0), ("C", 0)]


def test_concurrent_adds_from_several_threads() -> None:
    pool = Mempool()
    batches = [[tx_of(acct, n) for n in range(20)] for acct in (A, B, C, D)]
    errors: list[BaseException] = []

    def run(batch: list[tuple[Any, bytes]]) -> None:
        try:
            for tx, raw in batch:
                pool.add(tx, raw, account_nonce=0, account_balance=RICH)
                pool.ready(base_fee=0, max_count=5)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert pool.status() == {"pending": 80, "queued": 0}
    ready = pool.ready(base_fee=0)
    assert len(ready) == 80
    assert len({(bytes(t.sender), t.nonce) for t in ready}) == 80


# -- properties ------------------------------------------------------------------------------

SENDERS = 4
NONCES = 6
TIPS = (1 * GWEI, 2 * GWEI, 4 * GWEI)  # each level is a valid replacement of the one before

_add = st.tuples(
    st.just("add"),
    st.integers(0, SENDERS - 1),
    st.integers(0, NONCES - 1),
    st.integers(0, len(TIPS) - 1),
    st.sampled_from([RICH, 3 * 21_000 * 9 * GWEI]),
)
_mine = st.tuples(st.just("mine"), st.integers(0, 6), st.sampled_from([0, 5 * GWEI, 8 * GWEI]))
_remove = st.tuples(st.just("remove"), st.integers(0, 50))
_ops = st.lists(st.one_of(_add, _add, _mine, _remove), max_size=40)


def _tx(sender: int, nonce: int, level: int) -> tuple[Any, bytes]:
    # Fee caps vary by sender and nonce so that base fees filter some of them.
    fee = (6 + (sender + nonce) % 4) * GWEI * (level + 1)
    return sign(sender, nonce, kind=2 if sender % 2 == 0 else 0, tip=TIPS[level], fee=fee)


def _check_ready(pool: Mempool, base_fee: int, chain: dict[bytes, int], txs: list[Any]) -> None:
    seen: dict[bytes, list[int]] = {}
    for tx in txs:
        seen.setdefault(bytes(tx.sender), []).append(tx.nonce)
        assert tx.max_fee_per_gas >= base_fee
    keys = [(bytes(t.sender), t.nonce) for t in txs]
    assert len(keys) == len(set(keys))
    for sender, nonces in seen.items():
        start = chain.get(sender, 0)
        assert nonces == list(range(start, start + len(nonces)))


def _check_pool(pool: Mempool, config: PoolConfig, chain: dict[bytes, int]) -> None:
    assert len(pool) <= config.max_txs
    content = pool.content()
    pending = sum(len(v) for v in content["pending"].values())
    queued = sum(len(v) for v in content["queued"].values())
    assert pool.status() == {"pending": pending, "queued": queued}
    assert pending + queued == len(pool)
    for sender, txs in content["pending"].items():
        start = chain.get(bytes(sender), 0)
        assert list(txs) == list(range(start, start + len(txs)))
        assert pool.pending_nonce(sender, start) == start + len(txs)
    for sender, txs in content["queued"].items():
        first_pending_gap = pool.pending_nonce(sender, chain.get(bytes(sender), 0))
        assert all(n > first_pending_gap for n in txs)
    for side in content.values():
        for txs in side.values():
            assert len(txs) <= config.max_per_sender


def _hashes(pool: Mempool) -> set[bytes]:
    content = pool.content()
    return {bytes(t.hash) for side in content.values() for m in side.values() for t in m.values()}


@settings(max_examples=300, deadline=None)
@given(ops=_ops)
def test_property_ready_and_pool_stay_consistent(ops: list[tuple[Any, ...]]) -> None:
    config = PoolConfig(max_txs=6, max_per_sender=4, price_bump_percent=10)
    pool = Mempool(config)
    chain: dict[bytes, int] = {}
    for op in ops:
        if op[0] == "add":
            _, s, nonce, level, balance = op
            tx, raw = _tx(s, nonce, level)
            before = _hashes(pool)
            try:
                result = pool.add(
                    tx, raw, account_nonce=chain.get(addr(KEYS[s]), 0), account_balance=balance
                )
            except MempoolError:
                assert _hashes(pool) == before  # a refused tx changes nothing
            else:
                assert result.hash in pool
                assert result.replaced is None or result.replaced not in pool
        elif op[0] == "mine":
            _, count, base_fee = op
            txs = pool.ready(base_fee, max_count=count)
            _check_ready(pool, base_fee, chain, txs)
            for tx in txs:
                chain[bytes(tx.sender)] = tx.nonce + 1
            pool.on_block([t.hash for t in txs], lambda a: chain.get(bytes(a), 0))
            assert all(t.hash not in pool for t in txs)
        else:
            hashes = sorted(_hashes(pool))
            if hashes:
                h = hashes[op[1] % len(hashes)]
                assert pool.remove(h) and h not in pool
        _check_pool(pool, config, chain)
        for base_fee in (0, 8 * GWEI):
            ready = pool.ready(base_fee)
            _check_ready(pool, base_fee, chain, ready)
            # Complete: every pending tx up to the first fee cap below the base fee.
            expected = 0
            for txs in pool.content()["pending"].values():
                for _nonce, tx in sorted(txs.items()):
                    if tx.max_fee_per_gas < base_fee:
                        break
                    expected += 1
            assert len(ready) == expected


_fill = st.lists(
    st.tuples(
        st.integers(0, SENDERS - 1),
        st.integers(0, NONCES - 1),
        st.integers(0, len(TIPS) - 1),
        st.sampled_from(["-", "mine", "remove"]),  # what to do after this add
    ),
    max_size=40,
)


def _eviction_model(
    pool: Mempool, sender: bytes, nonce: int, chain: dict[bytes, int]
) -> list[tuple[int, int, int, bytes]]:
    """What a full pool may evict for ``sender``'s ``nonce``, as (class, tip, fee, hash):
    every queued tx (class 0) and the last tx of each pending run (class 1), except the
    sender's own last one when the new tx appends to it."""
    content = pool.content()
    out = [
        (0, t.max_priority_fee_per_gas, t.max_fee_per_gas, bytes(t.hash))
        for m in content["queued"].values()
        for t in m.values()
    ]
    for s, txs in content["pending"].items():
        last = txs[max(txs)]
        appends = bytes(s) == sender and nonce == pool.pending_nonce(s, chain.get(sender, 0))
        if not appends:
            out.append((1, last.max_priority_fee_per_gas, last.max_fee_per_gas, bytes(last.hash)))
    return out


@settings(max_examples=300, deadline=None)
@given(max_txs=st.integers(1, 5), adds=_fill)
def test_property_the_pool_never_holds_more_than_max_txs(
    max_txs: int, adds: list[tuple[int, int, int, str]]
) -> None:
    config = PoolConfig(max_txs=max_txs)
    pool = Mempool(config)
    chain: dict[bytes, int] = {}
    for s, nonce, level, then in adds:
        tx, raw = _tx(s, nonce, level)
        sender = addr(KEYS[s])
        before = _hashes(pool)
        candidates = _eviction_model(pool, sender, nonce, chain)
        cheapest = min(candidates, default=None)
        own_end = pool.pending_nonce(sender, chain.get(sender, 0))
        incoming = (int(nonce == own_end), tx.max_priority_fee_per_gas, tx.max_fee_per_gas)
        try:
            result = pool.add(tx, raw, account_nonce=chain.get(sender, 0), account_balance=RICH)
        except TxPoolFull:
            assert len(before) == max_txs
            assert cheapest is None or incoming <= cheapest[:3]  # it was the cheapest
        except MempoolError:
            assert _hashes(pool) == before
        else:
            after = _hashes(pool)
            if result.replaced:
                assert after == before - {result.replaced} | {result.hash}
            elif len(before) < max_txs:
                assert after == before | {result.hash}
            else:  # exactly one other tx made room: the cheapest evictable one
                (evicted,) = before - after
                assert cheapest is not None and incoming > cheapest[:3]
                assert evicted in {c[3] for c in candidates if c[:3] == cheapest[:3]}
        assert len(pool) <= max_txs
        if then == "remove" and len(pool):
            pool.remove(sorted(_hashes(pool))[(nonce + level) % len(pool)])
        if then == "mine":
            txs = pool.ready(0, max_count=2)
            _check_ready(pool, 0, chain, txs)
            for t in txs:
                chain[bytes(t.sender)] = t.nonce + 1
            pool.on_block([t.hash for t in txs], lambda a: chain.get(bytes(a), 0))
        _check_pool(pool, config, chain)
