"""eth_call and eth_estimateGas on py-evm: a throwaway state at a header, with overrides.

A call runs as an unsigned transaction "spoofed" to come from ``from``, on a state
built from the header's state root with the header's block context, like geth. Without
fee fields it is free (gas price 0, base fee 0) and only the value must be affordable.
Nothing it writes reaches the disk: the state lives on the view's read-only database.
Every run counts against the request's :class:`~sahara_cli.node.rpc.budget.Budget`.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from eth_typing import Address

from sahara_cli.node.rpc.budget import Budget, budget_vm_class
from sahara_cli.node.rpc.errors import ExecutionError, ExecutionReverted, InvalidParams
from sahara_cli.node.rpc.params import AccountOverride, CallArgs

if TYPE_CHECKING:
    from eth.abc import BlockHeaderAPI, ComputationAPI, StateAPI

    from sahara_cli.node.state import ChainView

ZERO_ADDRESS = b"\x00" * 20
CALL_STIPEND = 2_300
ESTIMATE_ERROR_RATIO = 0.015  # geth stops when the bracket is within 1.5%

_PANICS = {
    0x00: "generic panic",
    0x01: "assert(false)",
    0x11: "arithmetic underflow or overflow",
    0x12: "division or modulo by zero",
    0x21: "enum overflow",
    0x22: "invalid encoded storage byte array accessed",
    0x31: "out-of-bounds array access; popping on an empty array",
    0x32: "out-of-bounds access of an array or bytesN",
    0x41: "out of memory",
    0x51: "uninitialized function",
}

_VM_ERRORS = {
    "OutOfGas": "out of gas",
    "InsufficientStack": "stack underflow",
    "FullStack": "stack limit reached 1024",
    "InvalidJumpDestination": "invalid jump destination",
    "InvalidInstruction": "invalid opcode",
    "WriteProtection": "write protection",
    "StackDepthLimit": "max call depth exceeded",
    "ContractCreationCollision": "contract address collision",
    "OutOfBoundsRead": "return data out of bounds",
    "ReservedBytesInCode": "invalid code: must not begin with 0xef",
    "InsufficientFunds": "insufficient balance for transfer",
}


def revert_reason(data: bytes) -> str | None:
    """The reason inside Error(string) or Panic(uint256) revert data, as geth words it."""
    if len(data) >= 4 + 64 and data[:4] == bytes.fromhex("08c379a0"):
        try:
            offset = int.from_bytes(data[4:36], "big")
            length = int.from_bytes(data[4 + offset : 36 + offset], "big")
            raw = data[36 + offset : 36 + offset + length]
            if len(raw) == length:
                return raw.decode("utf-8", errors="replace")
        except (ValueError, OverflowError):
            return None
    if len(data) == 36 and data[:4] == bytes.fromhex("4e487b71"):
        code = int.from_bytes(data[4:], "big")
        return _PANICS.get(code, f"unknown panic code: {code:#x}")
    return None


def raise_for_computation(computation: ComputationAPI) -> None:
    if computation.is_success:
        return
    from eth.exceptions import Revert

    error = computation.error
    if isinstance(error, Revert):
        data = bytes(computation.output)
        reason = revert_reason(data)
        message = f"execution reverted: {reason}" if reason else "execution reverted"
        raise ExecutionReverted(message, data="0x" + data.hex())
    text = _VM_ERRORS.get(type(error).__name__, str(error) or type(error).__name__)
    raise ExecutionError(text)


def geth_text(message: str) -> str:
    """py-evm's validation messages, reworded as geth's."""
    lowered = message.lower()
    if "balance" in lowered or "afford" in lowered:
        return f"insufficient funds for gas * price + value: {message}"
    if "max fee per gas" in lowered or "base fee" in lowered:
        return f"max fee per gas less than block base fee: {message}"
    if "intrinsic" in lowered or "insufficient gas" in lowered:
        return f"intrinsic gas too low: {message}"
    return message


def build_call_state(
    view: ChainView, header: BlockHeaderAPI, fee_given: bool
) -> tuple[Any, StateAPI]:
    """A fresh py-evm state at ``header`` (base fee 0 unless the call names fees), whose
    frames count against the running thread's budget."""
    vm: Any = view.chain.get_vm(header)
    exec_header = header if fee_given else header.copy(base_fee_per_gas=0)
    state: StateAPI = budget_vm_class(type(vm)).build_state(
        vm.chaindb.db, exec_header, vm.chain_context, vm.previous_hashes
    )
    return vm, state


class WarmStates:
    """States of recent blocks kept warm for calls without state overrides.

    Building a py-evm state costs little, but its first reads walk the trie from the
    root; a kept state has the accounts and code of earlier calls cached. Every call
    runs between ``snapshot`` and ``revert``, so the state never changes, and the
    journal reverts the EIP-2929 warm/cold sets too, and a run stopped by its budget
    unwinds to the same snapshot. One call at a time uses them; a call that finds them
    busy builds its own state rather than wait.
    """

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self.lock = threading.Lock()
        self._states: OrderedDict[tuple[bytes, bool], tuple[Any, StateAPI]] = OrderedDict()

    def get(self, view: ChainView, header: BlockHeaderAPI, fee_given: bool) -> tuple[Any, StateAPI]:
        """Call with :attr:`lock` held."""
        key = (bytes(header.hash), fee_given)
        warm = self._states.get(key)
        if warm is None:
            vm, state = build_call_state(view, header, fee_given)
            state.lock_changes()
            warm = (vm, state)
            self._states[key] = warm
            while len(self._states) > self.keep:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(key)
        return warm


class Executor:
    """One throwaway state at ``header`` on which calls run and are rolled back."""

    def __init__(
        self,
        view: ChainView,
        header: BlockHeaderAPI,
        args: CallArgs,
        overrides: dict[bytes, AccountOverride] | None,
        gas_cap: int,
        warm: tuple[Any, StateAPI] | None = None,
    ) -> None:
        if args.chain_id is not None and args.chain_id != view.chain_id:
            raise ExecutionError(
                f"chainId does not match node's (have={args.chain_id}, want={view.chain_id})"
            )
        self.base_fee = int(getattr(header, "base_fee_per_gas", 0) or 0)
        if warm is not None:  # a cached state at this header; runs roll back on it
            vm, self.state = warm
        else:
            vm, self.state = build_call_state(view, header, args.fee_given)
        self.vm = vm
        self.args = args
        self.chain_id = view.chain_id
        self.sender = Address(args.sender or ZERO_ADDRESS)
        self.block_gas_limit = int(header.gas_limit)
        self.gas_cap = gas_cap
        if warm is None:
            apply_overrides(self.state, overrides or {})
            self.state.lock_changes()

    def fee_cap(self) -> int:
        args = self.args
        if args.gas_price is not None:
            return args.gas_price
        if args.max_fee_per_gas is not None:
            return args.max_fee_per_gas
        return self.base_fee + (args.max_priority_fee_per_gas or 0) if args.fee_given else 0

    def gas_limit(self, default: int) -> int:
        """The call's gas: given or ``default``, within the cap and what the sender can pay."""
        gas = self.args.gas if self.args.gas is not None else default
        gas = min(gas, self.gas_cap)
        balance = self.state.get_balance(self.sender)
        if self.args.value > balance:
            raise ExecutionError("insufficient funds for transfer")
        price = self.fee_cap()
        if price:
            gas = min(gas, (balance - self.args.value) // price)
        return gas

    def transaction(self, gas: int) -> Any:
        from eth.vm.spoof import SpoofTransaction

        args = self.args
        fees = None
        if args.max_fee_per_gas is not None or args.max_priority_fee_per_gas is not None:
            fees = (args.max_priority_fee_per_gas or 0, self.fee_cap())
        nonce = self.state.get_nonce(self.sender)
        unsigned = unsigned_transaction(
            self.vm, self.chain_id, args, nonce=nonce, gas=gas, fees=fees
        )
        return SpoofTransaction(unsigned, from_=self.sender)

    def run(self, gas: int) -> ComputationAPI:
        """Execute with ``gas`` and roll the state back. ValidationError -> -32000."""
        from eth_utils.exceptions import ValidationError

        tx = self.transaction(gas)
        snapshot = self.state.snapshot()
        try:
            return self.state.apply_transaction(tx)
        except ValidationError as exc:
            raise ExecutionError(geth_text(str(exc))) from None
        finally:
            self.state.revert(snapshot)


def is_legacy(args: CallArgs, fees: tuple[int, int] | None) -> bool:
    return fees is None and not args.access_list and args.tx_type != 1


def unsigned_transaction(
    vm: Any, chain_id: int, args: CallArgs, *, nonce: int, gas: int, fees: tuple[int, int] | None
) -> Any:
    """The unsigned transaction ``args`` describe: EIP-1559 with ``fees`` = (tip, max fee),
    else EIP-2930 when it has an access list, else legacy, at ``args.gas_price`` or 0."""
    builder = vm.get_transaction_builder()
    to = Address(args.to or b"")
    if fees is not None:
        tip, max_fee = fees
        return builder.new_unsigned_dynamic_fee_transaction(
            chain_id, nonce, tip, max_fee, gas, to, args.value, args.data, args.access_list
        )
    price = args.gas_price or 0
    if not is_legacy(args, fees):
        return builder.new_unsigned_access_list_transaction(
            chain_id, nonce, price, gas, to, args.value, args.data, args.access_list
        )
    return vm.create_unsigned_transaction(
        nonce=nonce, gas_price=price, gas=gas, to=to, value=args.value, data=args.data
    )


def apply_overrides(state: StateAPI, overrides: dict[bytes, AccountOverride]) -> None:
    for raw_address, o in overrides.items():
        account = Address(raw_address)
        if o.balance is not None:
            state.set_balance(account, o.balance)
        if o.nonce is not None:
            state.set_nonce(account, o.nonce)
        if o.code is not None:
            state.set_code(account, o.code)
        if o.state is not None:
            state.delete_storage(account)
            for slot, value in o.state.items():
                state.set_storage(account, slot, value)
        for slot, value in (o.state_diff or {}).items():
            state.set_storage(account, slot, value)


def within_budget(budget: Budget | None) -> contextlib.AbstractContextManager[Any]:
    return budget if budget is not None else contextlib.nullcontext()


def call(
    view: ChainView,
    header: BlockHeaderAPI,
    args: CallArgs,
    overrides: dict[bytes, AccountOverride] | None,
    gas_cap: int,
    warm_states: WarmStates | None = None,
    *,
    budget: Budget | None = None,
) -> bytes:
    """eth_call: the output of ``args`` run at ``header``, within ``budget``."""
    with within_budget(budget):
        if warm_states is not None and not overrides and warm_states.lock.acquire(blocking=False):
            try:
                warm = warm_states.get(view, header, args.fee_given)
                executor = Executor(view, header, args, overrides, gas_cap, warm)
                computation = executor.run(executor.gas_limit(gas_cap))
            finally:
                warm_states.lock.release()
        else:
            executor = Executor(view, header, args, overrides, gas_cap)
            computation = executor.run(executor.gas_limit(gas_cap))
    raise_for_computation(computation)
    return bytes(computation.output)


def _gas_used(gas: int, computation: ComputationAPI) -> tuple[int, int]:
    """(gas the transaction used after refunds, the refund) for a finished computation."""
    used = gas - computation.get_gas_remaining()
    refund = min(computation.get_gas_refund(), used // 5)
    floor = int(getattr(computation, "data_floor_gas", 0) or 0)
    return used - refund + floor, refund


def estimate_gas(
    view: ChainView,
    header: BlockHeaderAPI,
    args: CallArgs,
    overrides: dict[bytes, AccountOverride] | None,
    gas_cap: int,
    *,
    budget: Budget | None = None,
) -> int:
    """geth's estimator: run at the cap, then bisect until within 1.5% of the minimum;
    every run counts against one ``budget``."""
    with within_budget(budget):
        return _estimate(view, header, args, overrides, gas_cap)


def _estimate(
    view: ChainView,
    header: BlockHeaderAPI,
    args: CallArgs,
    overrides: dict[bytes, AccountOverride] | None,
    gas_cap: int,
) -> int:
    executor = Executor(view, header, args, overrides, gas_cap)
    hi = executor.gas_limit(executor.block_gas_limit)
    if hi < 21_000:
        raise ExecutionError(f"gas required exceeds allowance ({hi})")
    state = executor.state
    plain_transfer = args.to is not None and not args.data and not state.get_code(Address(args.to))
    first = executor.run(hi)
    if not first.is_success:
        if type(first.error).__name__ == "OutOfGas":
            raise ExecutionError(f"gas required exceeds allowance ({hi})")
        raise_for_computation(first)
    if plain_transfer:
        return 21_000
    used, refund = _gas_used(hi, first)
    lo = used - 1

    def fails(gas: int) -> bool:
        try:
            return not executor.run(gas).is_success
        except ExecutionError:  # below the intrinsic gas or the data floor
            return True

    optimistic = (used + refund + CALL_STIPEND) * 64 // 63
    if optimistic < hi:
        if fails(optimistic):
            lo = optimistic
        else:
            hi = optimistic
    while lo + 1 < hi:
        if (hi - lo) / hi < ESTIMATE_ERROR_RATIO:
            break
        mid = (hi + lo) // 2
        mid = min(mid, lo * 2)  # most calls need far less than the cap: grow from below
        if fails(mid):
            lo = mid
        else:
            hi = mid
    return hi


def check_call_args(args: CallArgs) -> None:
    if args.tx_type is not None and args.tx_type not in (0, 1, 2):
        raise InvalidParams(f"transaction type {args.tx_type} is not supported here")
