"""The dev chain's unlocked accounts: eth_accounts, eth_sendTransaction, eth_sign*.

A dev chain funds the 10 accounts of the well-known test mnemonic; their keys are
:func:`sahara_cli.node.genesis.dev_keys`. Nothing else is ever unlocked here: on a
chain that is not a dev chain these methods know no account.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sahara_cli.node.rpc import execute
from sahara_cli.node.rpc import fees as fees_module
from sahara_cli.node.rpc.errors import ExecutionError
from sahara_cli.node.rpc.params import CallArgs

if TYPE_CHECKING:
    from sahara_cli.node.rpc.context import Context


def dev_accounts(ctx: Context) -> dict[bytes, bytes]:
    """``{address: private key}`` of the unlocked accounts (empty unless a dev chain)."""
    if not ctx.node.dev:
        return {}
    cached = ctx.shared.caches.get("dev_accounts")
    if cached is None:
        from sahara_cli.identity.keys import Signer
        from sahara_cli.node.genesis import dev_keys

        cached = {bytes.fromhex(Signer(k).address[2:]): k for k in dev_keys()}
        ctx.shared.caches["dev_accounts"] = cached
    return dict(cached)


def key_for(ctx: Context, address: bytes) -> bytes:
    key = dev_accounts(ctx).get(address)
    if key is None:
        raise ExecutionError("unknown account")
    return key


def send_transaction(ctx: Context, args: CallArgs) -> bytes:
    """Fill in nonce, gas and fees like geth, sign with the dev key, and submit."""
    from eth_keys.datatypes import PrivateKey

    if args.sender is None:
        raise ExecutionError('missing "from" field: which account should send')
    key = key_for(ctx, args.sender)
    execute.check_call_args(args)
    view = ctx.view()
    head = view.head()
    node = ctx.node
    with ctx.shared.send_lock:  # one nonce at a time per server
        nonce = args.nonce if args.nonce is not None else node.pending_nonce(args.sender)
        gas = args.gas
        if gas is None:
            estimate_args = CallArgs(**{**args.__dict__, "nonce": None})
            gas_cap = ctx.options.gas_cap
            gas = execute.estimate_gas(
                view, head, estimate_args, None, gas_cap, budget=ctx.budget()
            )
        fees = None
        if args.gas_price is None:
            tip = args.max_priority_fee_per_gas
            if tip is None:
                tip = fees_module.suggested_tip(ctx.shared, view)
            max_fee = args.max_fee_per_gas
            if max_fee is None:
                max_fee = 2 * fees_module.next_base_fee(head) + tip
            fees = (min(tip, max_fee), max_fee)
        vm = view.chain.get_vm(head)
        unsigned = execute.unsigned_transaction(
            vm, view.chain_id, args, nonce=nonce, gas=gas, fees=fees
        )
        private = PrivateKey(key)
        if execute.is_legacy(args, fees):  # EIP-155: the chain id goes into v
            signed = unsigned.as_signed_transaction(private, chain_id=view.chain_id)
        else:
            signed = unsigned.as_signed_transaction(private)
        raw = signed.encode()
        tx_hash = node.submit(raw)
    ctx.shared.announce_pending(tx_hash)
    return tx_hash


def sign_message(ctx: Context, address: bytes, message: bytes) -> bytes:
    from sahara_cli.identity.keys import Signer

    return Signer(key_for(ctx, address)).sign_message(message)


def sign_typed_data(ctx: Context, address: bytes, document: dict[str, object]) -> bytes:
    from sahara_cli.identity.keys import Signer

    return Signer(key_for(ctx, address)).sign_typed_data(dict(document))
