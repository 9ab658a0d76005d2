# pragma version ~=0.4.3
"""
@title Counter
@notice The contract of the node's end-to-end tests and benchmark: a counter that
        logs, a payable deposit, a read-only call and a call that always reverts.
        Recompile with `python tests/e2e/contracts/build.py` after a change.
"""

event Incremented:
    caller: indexed(address)
    new_count: uint256

event Deposited:
    sender: indexed(address)
    amount: uint256

count: public(uint256)


@external
def increment():
    self.count += 1
    log Incremented(caller=msg.sender, new_count=self.count)


@external
def set(v: uint256):
    self.count = v


@external
def fail():
    assert False, "counter: nope"


@external
@payable
def deposit():
    log Deposited(sender=msg.sender, amount=msg.value)


@external
@view
def double(x: uint256) -> uint256:
    return x * 2
