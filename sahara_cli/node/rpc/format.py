"""py-evm blocks, transactions, receipts and logs in the JSON shapes geth returns.

Quantities are hex without leading zeros, data is 0x-prefixed hex, addresses are
lowercase hex (as geth writes them), and absent values are ``null``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eth.abc import BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI

    from sahara_cli.node.state import ChainView

Json = dict[str, Any]


def q(value: int) -> str:
    return hex(value)


def d(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def addr(value: bytes | None) -> str | None:
    return None if not value else "0x" + bytes(value).hex()


def header(h: BlockHeaderAPI) -> Json:
    """A header as in ``newHeads`` notifications (and the head of a block object)."""
    out: Json = {
        "hash": d(h.hash),
        "parentHash": d(h.parent_hash),
        "sha3Uncles": d(h.uncles_hash),
        "miner": d(h.coinbase),
        "stateRoot": d(h.state_root),
        "transactionsRoot": d(h.transaction_root),
        "receiptsRoot": d(h.receipt_root),
        "logsBloom": word_bloom(h.bloom),
        "difficulty": q(h.difficulty),
        "number": q(h.block_number),
        "gasLimit": q(h.gas_limit),
        "gasUsed": q(h.gas_used),
        "timestamp": q(h.timestamp),
        "extraData": d(h.extra_data),
        "mixHash": d(h.mix_hash),
        "nonce": d(h.nonce),
    }
    optional = (
        ("baseFeePerGas", "base_fee_per_gas", q),
        ("withdrawalsRoot", "withdrawals_root", d),
        ("blobGasUsed", "blob_gas_used", q),
        ("excessBlobGas", "excess_blob_gas", q),
        ("parentBeaconBlockRoot", "parent_beacon_block_root", d),
        ("requestsHash", "requests_hash", d),
    )
    for key, attr, conv in optional:
        try:
            value = getattr(h, attr)
        except AttributeError:
            continue
        if value is not None:
            out[key] = conv(value)
    return out


def word_bloom(bloom: int) -> str:
    return "0x" + bloom.to_bytes(256, "big").hex()


def block(view: ChainView, h: BlockHeaderAPI, full: bool) -> Json:
    import rlp

    blk = view.block(h)
    out = header(h)
    out["size"] = q(len(rlp.encode(blk)))
    out["totalDifficulty"] = "0x0"
    out["uncles"] = []
    out["withdrawals"] = []
    txs = blk.transactions
    base_fee = getattr(h, "base_fee_per_gas", None)
    if full:
        out["transactions"] = [
            transaction(tx, block_hash=h.hash, number=h.block_number, index=i, base_fee=base_fee)
            for i, tx in enumerate(txs)
        ]
    else:
        out["transactions"] = [d(tx.hash) for tx in txs]
    return out


def effective_gas_price(tx: SignedTransactionAPI, base_fee: int | None) -> int:
    """What the sender pays per gas; for a pending EIP-1559 tx, its max fee (as geth)."""
    if tx.type_id is None or tx.type_id == 1:
        return int(tx.gas_price)
    if base_fee is None:
        return int(tx.max_fee_per_gas)
    return int(min(tx.max_fee_per_gas, base_fee + tx.max_priority_fee_per_gas))


def transaction(
    tx: SignedTransactionAPI,
    *,
    block_hash: bytes | None = None,
    number: int | None = None,
    index: int | None = None,
    base_fee: int | None = None,
) -> Json:
    """geth's RPCTransaction; pending ones have null block fields and gasPrice = maxFee."""
    type_id = tx.type_id or 0
    out: Json = {
        "blockHash": d(block_hash) if block_hash is not None else None,
        "blockNumber": q(number) if number is not None else None,
        "from": d(tx.sender),
        "gas": q(tx.gas),
        "gasPrice": q(effective_gas_price(tx, base_fee if number is not None else None)),
        "hash": d(tx.hash),
        "input": d(tx.data),
        "nonce": q(tx.nonce),
        "to": addr(tx.to),
        "transactionIndex": q(index) if index is not None else None,
        "value": q(tx.value),
        "type": q(type_id),
    }
    if type_id >= 2:
        out["maxFeePerGas"] = q(tx.max_fee_per_gas)
        out["maxPriorityFeePerGas"] = q(tx.max_priority_fee_per_gas)
    if type_id == 3:
        out["maxFeePerBlobGas"] = q(tx.max_fee_per_blob_gas)
        out["blobVersionedHashes"] = [d(v) for v in tx.blob_versioned_hashes]
    if type_id >= 1:
        out["accessList"] = [
            {"address": d(entry[0]), "storageKeys": [word(k) for k in entry[1]]}
            for entry in tx.access_list
        ]
        out["chainId"] = q(tx.chain_id or 0)
        out["v"] = q(tx.y_parity)
        out["yParity"] = q(tx.y_parity)
    else:
        if tx.chain_id is not None:
            out["chainId"] = q(tx.chain_id)
        out["v"] = q(tx.v)  # type: ignore[attr-defined]  # legacy transactions have v
    if type_id == 4:
        out["authorizationList"] = [
            {
                "chainId": q(a.chain_id),
                "address": d(a.address),
                "nonce": q(a.nonce),
                "yParity": q(a.y_parity),
                "r": q(a.r),
                "s": q(a.s),
            }
            for a in tx.authorization_list
        ]
    out["r"] = q(tx.r)
    out["s"] = q(tx.s)
    return out


def log(
    entry: Any,
    *,
    block_hash: bytes,
    number: int,
    timestamp: int,
    tx_hash: bytes,
    tx_index: int,
    log_index: int,
) -> Json:
    return {
        "address": d(entry.address),
        "topics": [word(t) for t in entry.topics],
        "data": d(entry.data),
        "blockNumber": q(number),
        "blockHash": d(block_hash),
        "blockTimestamp": q(timestamp),
        "transactionHash": d(tx_hash),
        "transactionIndex": q(tx_index),
        "logIndex": q(log_index),
        "removed": False,
    }


def receipt(
    h: BlockHeaderAPI,
    txs: Sequence[SignedTransactionAPI],
    receipts: Sequence[ReceiptAPI],
    index: int,
) -> Json:
    """The receipt of ``txs[index]``: per-tx gas and block-wide log indexes."""
    from eth._utils.address import generate_contract_address

    tx, rec = txs[index], receipts[index]
    previous = receipts[index - 1].gas_used if index else 0
    first_log = sum(len(r.logs) for r in receipts[:index])
    base_fee = getattr(h, "base_fee_per_gas", None)
    sender = tx.sender
    created = None if tx.to else d(generate_contract_address(sender, tx.nonce))
    return {
        "blockHash": d(h.hash),
        "blockNumber": q(h.block_number),
        "contractAddress": created,
        "cumulativeGasUsed": q(rec.gas_used),
        "effectiveGasPrice": q(effective_gas_price(tx, base_fee)),
        "from": d(sender),
        "gasUsed": q(rec.gas_used - previous),
        "logs": [
            log(
                entry,
                block_hash=h.hash,
                number=h.block_number,
                timestamp=h.timestamp,
                tx_hash=tx.hash,
                tx_index=index,
                log_index=first_log + i,
            )
            for i, entry in enumerate(rec.logs)
        ],
        "logsBloom": word_bloom(rec.bloom),
        "status": "0x1" if rec.state_root == b"\x01" else "0x0",
        "to": addr(tx.to),
        "transactionHash": d(tx.hash),
        "transactionIndex": q(index),
        "type": q(tx.type_id or 0),
    }
