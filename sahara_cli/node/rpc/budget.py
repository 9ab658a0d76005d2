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

A precompile runs no opcodes, and one call to it can cost seconds of Python (blake2f with
many rounds, the bn128 and BLS12-381 pairings of py_ecc). So a precompile frame is charged
steps in proportion to the gas it consumes, at :data:`PRECOMPILE_STEPS_PER_GAS` (its
measured Python time per gas, in opcodes of py-evm's cheapest loop): the charge is made
when the precompile consumes its gas, before its work starts, and a charge that does not
fit under the cap is refused with the step-limit error. The clock is read after every
precompile and when the whole execution ends, so a result that arrives after the
deadline is never returned.

The count costs one attribute increment and one comparison per opcode (a few per cent of
py-evm's own cost per opcode; see ``docs/node.md``). Only RPC executions use this VM:
blocks are built and replayed on the plain one.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sahara_cli.node.rpc.errors import ExecutionTimeout, StepLimitExceeded
from sahara_cli.node.saps import ADDRESSES as SAP_ADDRESSES

#: Opcodes between two looks at the clock (about a millisecond of py-evm).
CHECK_EVERY = 1_000

#: Steps charged per gas a precompile consumes, by address: about twice its Python time
#: per gas over the time of one opcode, as measured with py-evm 0.12 (``docs/node.md``).
#: blake2f's gas is its rounds; the pairings are the slowest per gas.
PRECOMPILE_STEPS_PER_GAS: dict[int, float] = {
    0x01: 0.25,  # ecrecover (coincurve)
    0x02: 0.1,  # sha256
    0x03: 0.1,  # ripemd160
    0x04: 0.25,  # identity
    0x05: 0.1,  # modexp (Python's pow)
    0x06: 3.0,  # bn128 add (py_ecc)
    0x07: 4.0,  # bn128 mul
    0x08: 6.0,  # bn128 pairing
    0x09: 10.0,  # blake2f, per round
    0x0A: 0.25,  # KZG point evaluation (ckzg)
    0x0B: 1.0,  # BLS12-381 G1 add (py_ecc)
    0x0C: 2.0,  # G1 multi-scalar multiplication
    0x0D: 3.0,  # G2 add
    0x0E: 4.0,  # G2 multi-scalar multiplication
    0x0F: 18.0,  # pairing check
    0x10: 2.0,  # map field element to G1
    0x11: 7.0,  # map field element to G2
    # The SAPs: their gas is mostly storage (22,100 a word) and the gas they hand on to
    # the contracts they call, whose opcodes are counted in those frames.
    **{int.from_bytes(a, "big"): 0.01 for a in SAP_ADDRESSES.values()},
}
#: For a precompile of a later fork not in the table.
DEFAULT_STEPS_PER_GAS = 10.0

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

    def charge(self, steps: int) -> None:
        """Count ``steps`` of work about to start (a precompile's), refusing it with the
        step-limit error when it would not fit under the cap."""
        if self.steps + steps > self.max_steps:
            raise StepLimitExceeded(f"execution step limit exceeded ({self.max_steps} steps)")
        self.steps += steps
        self.check()

    def __enter__(self) -> Budget:
        """Executions started in this thread until the ``with`` ends count against it."""
        _active.budget = self
        self.check()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        _active.budget = None
        if exc_type is None:  # a result that comes after the deadline is not returned
            self.check()


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


def _charged(precompile: Callable[[Any], Any], steps_per_gas: float) -> Callable[[Any], Any]:
    """``precompile``, charging the frame's budget for the gas it consumes before its work
    starts, and reading the clock when it is done."""
    from eth.exceptions import VMError

    def run(computation: Any) -> Any:
        budget: Budget | None = computation.budget
        if budget is None:
            return precompile(computation)
        consume = computation.consume_gas

        def consume_and_charge(amount: int, reason: str) -> None:
            consume(amount, reason)  # one that cannot pay fails with out of gas, as before
            budget.charge(math.ceil(amount * steps_per_gas))

        computation.consume_gas = consume_and_charge
        try:
            result = precompile(computation)
        except VMError:
            budget.check()
            raise
        finally:
            del computation.consume_gas
        budget.check()
        return result

    return run


@functools.cache
def _budget_vm_class(vm_class: Any) -> Any:
    stream_class = _code_stream_class()
    state_class = vm_class.get_state_class()
    base = state_class.computation_class
    precompiles = {
        address: _charged(
            fn, PRECOMPILE_STEPS_PER_GAS.get(int.from_bytes(address), DEFAULT_STEPS_PER_GAS)
        )
        for address, fn in base.get_precompiles().items()
    }

    def __init__(self: Any, state: Any, message: Any, transaction_context: Any) -> None:
        base.__init__(self, state, message, transaction_context)
        budget = active()
        self.budget = budget
        if budget is not None:
            self.code = stream_class(message.code, budget)

    def charged_precompiles(_self: Any) -> dict[Any, Callable[[Any], Any]]:
        return precompiles

    computation = type(
        "BudgetComputation",
        (base,),
        {"__init__": __init__, "precompiles": property(charged_precompiles)},
    )
    budget_state = state_class.configure(__name__="BudgetState", computation_class=computation)
    return vm_class.configure(__name__="BudgetVM", _state_class=budget_state)
