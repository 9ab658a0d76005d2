"""The execution budget of eth_call, eth_estimateGas and debug_traceTransaction.

A request that runs the EVM gets a :class:`Budget`: a wall-clock deadline and a cap on
the opcodes it may execute, across every frame and, for eth_estimateGas, every run of
the search. py-evm cannot be interrupted from outside the thread that runs it, so the
budget is checked inside the interpreter loop: the VM of :func:`budget_vm_class` gives
each frame a code stream that counts the opcodes it hands the interpreter and, every
:data:`CHECK_EVERY` of them, looks at the clock. Past either bound it raises
:class:`~sahara_cli.node.rpc.errors.BudgetExceeded`, which is not a py-evm ``VMError``:
no frame swallows it as a failure, the whole execution unwinds, the caller reverts its
throwaway state to its snapshot, and the worker thread is free again at once.

The count costs one attribute increment and one comparison per opcode (a few per cent of
py-evm's own cost per opcode; see ``docs/node.md``). Only RPC executions use this VM:
blocks are built and replayed on the plain one.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from typing import Any

from sahara_cli.node.rpc.errors import ExecutionTimeout, StepLimitExceeded

#: Opcodes between two looks at the clock (about a millisecond of py-evm).
CHECK_EVERY = 1_000

_active = threading.local()


class Budget:
    """A deadline ``timeout`` seconds from now and at most ``max_steps`` opcodes."""

    __slots__ = ("deadline", "max_steps", "next_check", "steps", "timeout")

    def __init__(self, timeout: float, max_steps: int) -> None:
        self.timeout = timeout
        self.max_steps = max_steps
        self.deadline = time.monotonic() + timeout
        self.steps = 0
        self.next_check = min(CHECK_EVERY, max_steps + 1)

    def check(self) -> None:
        """Raise when a bound is passed; else schedule the next check."""
        if self.steps > self.max_steps:
            raise StepLimitExceeded(f"execution step limit exceeded ({self.max_steps} steps)")
        if time.monotonic() > self.deadline:
            raise ExecutionTimeout(f"execution timeout ({self.timeout:g}s)")
        self.next_check = min(self.steps + CHECK_EVERY, self.max_steps + 1)

    def __enter__(self) -> Budget:
        """Executions started in this thread until the ``with`` ends count against it."""
        _active.budget = self
        self.check()
        return self

    def __exit__(self, *exc: object) -> None:
        _active.budget = None


def active() -> Budget | None:
    """The budget of the execution running in this thread, if any."""
    budget: Budget | None = getattr(_active, "budget", None)
    return budget


def _code_stream_class() -> type[Any]:
    from eth.vm.code_stream import CodeStream
    from eth.vm.opcode_values import STOP

    class BudgetCodeStream(CodeStream):
        """py-evm's code stream, counting every opcode against a :class:`Budget`."""

        __slots__ = ("budget",)

        def __init__(self, code_bytes: bytes, budget: Budget) -> None:
            super().__init__(code_bytes)
            self.budget = budget

        def __iter__(self) -> Iterator[int]:
            budget = self.budget
            raw = self._raw_code_bytes
            while True:
                try:
                    opcode = raw[self.program_counter]
                except IndexError:
                    break
                self.program_counter += 1
                budget.steps += 1
                if budget.steps >= budget.next_check:
                    budget.check()
                yield opcode
                # a PUSH or a JUMP may have moved the pc during the yield
            budget.steps += 1
            if budget.steps >= budget.next_check:
                budget.check()
            yield STOP

    return BudgetCodeStream


def budget_vm_class(vm_class: Any) -> Any:
    """``vm_class`` whose frames count their opcodes against the thread's :func:`active`
    budget (frames started with none run as on ``vm_class``); made once per class."""
    return _budget_vm_class(vm_class)


@functools.cache
def _budget_vm_class(vm_class: Any) -> Any:
    stream_class = _code_stream_class()
    state_class = vm_class.get_state_class()
    base = state_class.computation_class

    def __init__(self: Any, state: Any, message: Any, transaction_context: Any) -> None:
        base.__init__(self, state, message, transaction_context)
        budget = active()
        if budget is not None:
            self.code = stream_class(message.code, budget)

    computation = type("BudgetComputation", (base,), {"__init__": __init__})
    budget_state = state_class.configure(__name__="BudgetState", computation_class=computation)
    return vm_class.configure(__name__="BudgetVM", _state_class=budget_state)
