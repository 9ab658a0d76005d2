"""Fee suggestions and history: eth_gasPrice, eth_maxPriorityFeePerGas, eth_feeHistory.

The tip oracle works like geth's: the lowest few effective tips of each of the last 20
blocks, the 60th percentile of those, capped at 500 gwei; 1 gwei when the chain has no
transactions to learn from. Results are cached per head block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from sahara_cli.node.rpc import format as fmt
from sahara_cli.node.rpc.errors import InvalidParams

if TYPE_CHECKING:
    from eth.abc import BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI

    from sahara_cli.node.rpc.context import Shared
    from sahara_cli.node.state import ChainView

GWEI = 10**9
DEFAULT_TIP = GWEI
MAX_TIP = 500 * GWEI
ORACLE_BLOCKS = 20
ORACLE_SAMPLES = 3
ORACLE_PERCENTILE = 60
MAX_HISTORY = 1_024
MAX_BLOB_GAS_PER_BLOCK = 1_179_648  # Prague: 9 blobs of 131,072
BLOB_FEE_FRACTION = 5_007_716  # Prague's BLOB_BASE_FEE_UPDATE_FRACTION


def next_base_fee(parent: BlockHeaderAPI) -> int:
    from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas

    return int(calculate_expected_base_fee_per_gas(parent))


def effective_tip(tx: SignedTransactionAPI, base_fee: int) -> int:
    if tx.type_id is None or tx.type_id == 1:
        return max(0, int(tx.gas_price) - base_fee)
    return max(0, int(min(tx.max_priority_fee_per_gas, tx.max_fee_per_gas - base_fee)))


def suggested_tip(shared: Shared, view: ChainView) -> int:
    head = view.head()
    cached = shared.caches.get("tip")
    if cached is not None and cached[0] == head.hash:
        return int(cached[1])
    samples: list[int] = []
    header: BlockHeaderAPI | None = head
    for _ in range(ORACLE_BLOCKS):
        if header is None:
            break
        base_fee = int(getattr(header, "base_fee_per_gas", 0) or 0)
        txs = view.transactions(header) if header.gas_used else ()
        # geth also leaves out the block producer's own transactions; that needs a
        # signature recovery per transaction, too dear here for what it changes.
        tips = sorted(effective_tip(tx, base_fee) for tx in txs)
        samples.extend(t for t in tips[:ORACLE_SAMPLES] if t >= 2)
        if header.block_number == 0:
            break
        header = view.header_by_number(header.block_number - 1)
    if samples:
        samples.sort()
        tip = min(samples[(len(samples) - 1) * ORACLE_PERCENTILE // 100], MAX_TIP)
    else:
        tip = DEFAULT_TIP
    shared.caches["tip"] = (head.hash, tip)
    return tip


def _blob_base_fee(header: BlockHeaderAPI) -> int:
    from eth._utils.calculations import fake_exponential

    excess = int(getattr(header, "excess_blob_gas", 0) or 0)
    return int(fake_exponential(1, excess, BLOB_FEE_FRACTION))


def _rewards(
    header: BlockHeaderAPI,
    txs: tuple[SignedTransactionAPI, ...],
    receipts: tuple[ReceiptAPI, ...],
    percentiles: list[float],
) -> list[str]:
    if not txs:
        return ["0x0"] * len(percentiles)
    base_fee = int(getattr(header, "base_fee_per_gas", 0) or 0)
    previous, used = 0, []
    for receipt in receipts:
        used.append(receipt.gas_used - previous)
        previous = receipt.gas_used
    ranked = sorted(zip((effective_tip(tx, base_fee) for tx in txs), used, strict=True))
    out, index, cumulative = [], 0, ranked[0][1]
    for p in percentiles:
        threshold = header.gas_used * p / 100
        while cumulative < threshold and index < len(ranked) - 1:
            index += 1
            cumulative += ranked[index][1]
        out.append(fmt.q(ranked[index][0]))
    return out


def check_percentiles(value: Any) -> list[float]:
    if not isinstance(value, list):
        raise InvalidParams("reward percentiles must be an array")
    out: list[float] = []
    for p in value:
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 100:
            raise InvalidParams(f"invalid reward percentile: {p!r}")
        if out and p < out[-1]:
            raise InvalidParams(f"invalid reward percentile: #{len(out)}:{p} < #{len(out) - 1}")
        out.append(float(p))
    return out


Percentiles = Annotated[list[float], check_percentiles]


def fee_history(
    view: ChainView, count: int, newest: BlockHeaderAPI, percentiles: list[float]
) -> dict[str, Any]:
    count = min(count, MAX_HISTORY, newest.block_number + 1)
    if count == 0:
        return {"oldestBlock": "0x0", "baseFeePerGas": [], "gasUsedRatio": []}
    oldest = newest.block_number - count + 1
    base_fees, ratios, blob_fees, blob_ratios, rewards = [], [], [], [], []
    last: BlockHeaderAPI = newest
    for number in range(oldest, newest.block_number + 1):
        header = newest if number == newest.block_number else view.header_by_number(number)
        if header is None:
            break
        last = header
        base_fees.append(fmt.q(int(getattr(header, "base_fee_per_gas", 0) or 0)))
        ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
        blob_fees.append(fmt.q(_blob_base_fee(header)))
        blob_ratios.append(int(getattr(header, "blob_gas_used", 0) or 0) / MAX_BLOB_GAS_PER_BLOCK)
        if percentiles:
            txs = view.transactions(header) if header.gas_used else ()
            receipts = view.receipts(header) if txs else ()
            rewards.append(_rewards(header, txs, receipts, percentiles))
    base_fees.append(fmt.q(next_base_fee(last)))
    blob_fees.append(fmt.q(_blob_base_fee(last)))
    out: dict[str, Any] = {
        "oldestBlock": fmt.q(oldest),
        "baseFeePerGas": base_fees,
        "gasUsedRatio": ratios,
        "baseFeePerBlobGas": blob_fees,
        "blobGasUsedRatio": blob_ratios,
    }
    if percentiles:
        out["reward"] = rewards
    return out
