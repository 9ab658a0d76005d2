"""geth's struct-log tracer (``debug_traceTransaction``'s default) for py-evm.

py-evm has no tracing hook, so the tracer wraps the opcode table of a Computation
subclass made for one trace; only the VM instance that replays the traced block uses it
(:func:`tracing_vm_class`), and it records nothing until the traced transaction starts.
Each step is recorded before its opcode runs (pc, op, gas, depth, stack, and on request
memory and storage, as geth does); its gas cost is filled in when the opcode returns.
For CALL and CREATE family opcodes the cost includes the gas handed to the callee, like
geth's.

A trace runs within the request's :class:`~sahara_cli.node.rpc.budget.Budget` (the
replay of the transactions before it included), and the struct logs it collects are
capped at ``max_bytes`` of JSON (memory and stack capture grow them by the step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from sahara_cli.node.rpc.budget import Budget, budget_vm_class
from sahara_cli.node.rpc.errors import ExecutionError, InvalidParams, LimitExceeded
from sahara_cli.node.rpc.execute import _VM_ERRORS, within_budget

if TYPE_CHECKING:
    from eth.abc import ComputationAPI

    from sahara_cli.node.state import ChainView

SLOAD, SSTORE = 0x54, 0x55
#: JSON bytes of one step besides its stack, memory, storage and return data.
STEP_BYTES = 100


@dataclass(frozen=True)
class TraceConfig:
    stack: bool = True
    storage: bool = True
    memory: bool = False
    return_data: bool = False
    limit: int = 0  # 0: no limit

    @classmethod
    def from_json(cls, value: Any) -> TraceConfig:
        if not isinstance(value, dict):
            raise InvalidParams("tracer config must be an object")
        tracer = value.get("tracer")
        if tracer not in (None, "", "structLogger"):
            raise InvalidParams(f"tracer {tracer!r} is not supported: only the struct logger is")
        flags = {}
        for key in ("disableStack", "disableStorage", "enableMemory", "enableReturnData"):
            flag = value.get(key, False)
            if not isinstance(flag, bool):
                raise InvalidParams(f'field "{key}": expected a boolean')
            flags[key] = flag
        limit = value.get("limit", 0)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise InvalidParams('field "limit": expected a non-negative integer')
        return cls(
            stack=not flags["disableStack"],
            storage=not flags["disableStorage"],
            memory=flags["enableMemory"],
            return_data=flags["enableReturnData"],
            limit=limit,
        )


TraceOptions = Annotated[TraceConfig, TraceConfig.from_json]


def _word(value: int | bytes) -> int:
    return value if isinstance(value, int) else int.from_bytes(value, "big")


@dataclass
class StructLogger:
    config: TraceConfig
    #: The struct logs' size cap, in bytes of JSON (0: none).
    max_bytes: int = 0
    size: int = 0
    active: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    storage: dict[bytes, dict[str, str]] = field(default_factory=dict)
    #: Per running computation, its pc after its last opcode (to spot the implicit STOP).
    _pc_after: dict[int, int] = field(default_factory=dict)

    def before(self, computation: Any, op: int, name: str) -> dict[str, Any] | None:
        code = computation.code
        now = code.program_counter
        # py-evm runs off the end of the code as a STOP it fetched without moving the pc.
        implicit_stop = op == 0 and now == self._pc_after.get(id(computation), 0)
        if implicit_stop and len(code) == 0:
            return None  # geth does not run the interpreter on empty code at all
        if self.config.limit and len(self.steps) >= self.config.limit:
            return None
        step: dict[str, Any] = {
            "pc": now if implicit_stop else now - 1,
            "op": name,
            "gas": computation.get_gas_remaining(),
            "gasCost": 0,
            "depth": computation.msg.depth + 1,
        }
        values = computation._stack.values
        if self.config.memory:  # counted before it is copied out: it may be megabytes
            length = len(computation._memory._bytes)
            self._grow(length * 2 + length // 32 * 3)
            mem = bytes(computation._memory._bytes)
            step["memory"] = [mem[i : i + 32].hex() for i in range(0, len(mem), 32)]
        size = STEP_BYTES
        if self.config.stack:
            step["stack"] = [hex(_word(v)) for v in values]
            size += sum(len(word) + 3 for word in step["stack"])
        if self.config.return_data:
            step["returnData"] = "0x" + bytes(computation.return_data).hex()
            size += len(step["returnData"])
        refund = computation._gas_meter.gas_refunded
        if refund:
            step["refund"] = refund
        if self.config.storage and op in (SLOAD, SSTORE) and values:
            address = bytes(computation.msg.storage_address)
            slots = self.storage.setdefault(address, {})
            key = _word(values[-1])
            if op == SSTORE and len(values) >= 2:
                value = _word(values[-2])
            else:
                value = computation.state.get_storage(address, key)
            slots[f"{key:064x}"] = f"{value:064x}"
            step["storage"] = dict(slots)
            size += 136 * len(slots)
        self._grow(size)
        self.steps.append(step)
        return step

    def _grow(self, size: int) -> None:
        self.size += size
        if self.max_bytes and self.size > self.max_bytes:
            raise LimitExceeded(
                f'trace larger than {self.max_bytes} bytes: pass a smaller "limit", '
                "or disable memory and stack capture"
            )

    def wrap(self, op: int, fn: Callable[..., None], name: str) -> Callable[..., None]:
        from eth.exceptions import Halt, Revert, VMError

        def traced(computation: ComputationAPI) -> None:
            if not self.active:
                fn(computation=computation)
                return
            step = self.before(computation, op, name)
            gas = computation.get_gas_remaining()
            children = len(computation.children)
            try:
                fn(computation=computation)
            except Halt:
                self._cost(step, computation, gas, children)
                raise
            except VMError as exc:
                self._cost(step, computation, gas, children)
                if step is not None and not isinstance(exc, Revert):
                    step["error"] = _VM_ERRORS.get(type(exc).__name__, str(exc))
                raise
            self._cost(step, computation, gas, children)

        return traced

    def _cost(self, step: dict[str, Any] | None, computation: Any, gas: int, children: int) -> None:
        self._pc_after[id(computation)] = computation.code.program_counter
        if step is None:
            return
        cost = gas - computation.get_gas_remaining()
        if len(computation.children) > children:  # the callee's unused gas came back
            cost += computation.children[-1].get_gas_remaining()
        step["gasCost"] = cost


class _Opcodes(dict[int, Any]):
    """An opcode table that traces unknown opcodes too (py-evm makes them on the fly)."""

    logger: StructLogger

    def __missing__(self, op: int) -> Any:
        from eth.vm.logic.invalid import InvalidOpcode

        return self.logger.wrap(op, InvalidOpcode(op), "INVALID")


def tracing_vm_class(vm_class: Any, logger: StructLogger) -> Any:
    """``vm_class`` with a Computation whose opcodes report to ``logger``."""
    state_class = vm_class.get_state_class()
    base = state_class.computation_class
    table = _Opcodes()
    table.logger = logger
    for op, fn in base.opcodes.items():
        inner = getattr(fn, "__wrapped__", None)
        name = getattr(fn, "mnemonic", None) or getattr(inner, "mnemonic", None) or "INVALID"
        table[op] = logger.wrap(op, fn, name)
    computation = type("TracingComputation", (base,), {"opcodes": table})
    traced_state = state_class.configure(__name__="TracingState", computation_class=computation)
    return vm_class.configure(__name__="TracingVM", _state_class=traced_state)


def trace_transaction(
    view: ChainView,
    tx_hash: bytes,
    config: TraceConfig,
    *,
    budget: Budget | None = None,
    max_bytes: int = 0,
) -> dict[str, Any]:
    """Replay the block up to ``tx_hash`` on its parent's state and trace that one,
    within ``budget`` and ``max_bytes`` of struct logs."""
    from eth.vm.chain_context import ChainContext

    from sahara_cli.node.state import VM

    location = view.tx_location(tx_hash)
    if location is None:
        raise ExecutionError("transaction not found")
    number, index = location
    header = view.header_by_number(number)
    parent = view.header_by_number(number - 1) if number else None
    if header is None or parent is None:
        raise ExecutionError("genesis is not traceable")
    txs = view.transactions(header)
    logger = StructLogger(config, max_bytes)
    vm_class = tracing_vm_class(budget_vm_class(VM), logger)
    replay_header = header.copy(state_root=parent.state_root, gas_used=0)
    vm = vm_class(
        header=replay_header,
        chaindb=view.chaindb,
        chain_context=ChainContext(view.chain_id),
        consensus_context=view.chain.consensus_context,
    )
    with within_budget(budget):
        vm.block_preprocessing(vm.get_block())
        for tx in txs[:index]:
            vm.apply_transaction(replay_header, tx)
        logger.active = True
        receipt, computation = vm.apply_transaction(replay_header, txs[index])
        logger.active = False
    failed = computation.is_error
    output = bytes(computation.output)
    from eth.exceptions import Revert

    if failed and not isinstance(computation.error, Revert):
        output = b""
    return {
        "gas": int(receipt.gas_used),
        "failed": failed,
        "returnValue": "0x" + output.hex(),
        "structLogs": logger.steps,
    }
