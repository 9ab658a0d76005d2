"""Properties of the bisection rule the dispute game SAP plays (``next_interval``) and
of the Merkle proofs that bind a claimer to its committed trace."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sahara_cli.identity.keys import keccak256
from sahara_cli.node.saps import merkle
from sahara_cli.node.saps.dispute import next_interval


def bisect(n: int, first_wrong: int) -> tuple[int, int, int]:
    """Play the game over ``n`` operations (states 0..n) against a claimer whose states
    differ from the honest ones from ``first_wrong`` on: the challenger agrees with a
    revealed state exactly when it is before ``first_wrong``. The final interval and
    the rounds."""
    lo, hi, rounds = 0, n, 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = next_interval(lo, hi, agree=mid < first_wrong)
        rounds += 1
    return lo, hi, rounds


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_the_bisection_finds_the_first_wrong_state_in_ceil_log2_n_rounds(
    data: st.DataObject,
) -> None:
    n = data.draw(st.integers(1, 4096), label="n")
    first_wrong = data.draw(st.integers(1, n), label="first wrong state")
    lo, hi, rounds = bisect(n, first_wrong)
    # The one operation left is the one that produced the first wrong state.
    assert (lo, hi) == (first_wrong - 1, first_wrong)
    # ceil(log2 n) rounds; exactly that many when n is a power of two. (Otherwise the
    # halves are uneven and a position in the smaller one may take one round fewer.)
    assert math.floor(math.log2(n)) <= rounds <= math.ceil(math.log2(n))
    if n & (n - 1) == 0:
        assert rounds == math.ceil(math.log2(n))


@pytest.mark.parametrize("n", [1, 2, 3, 1000, 1024, 1025, 4096])
def test_no_position_takes_more_than_ceil_log2_n_rounds(n: int) -> None:
    worst = max(bisect(n, d)[2] for d in range(1, n + 1))
    assert worst == math.ceil(math.log2(n))


def test_an_interval_of_one_operation_is_not_bisected() -> None:
    with pytest.raises(ValueError, match="one operation"):
        next_interval(4, 5, agree=True)


def roots(count: int, seed: int) -> list[bytes]:
    return [keccak256(f"{seed}:{i}".encode()) for i in range(count)]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_claimer_cannot_prove_a_root_its_trace_does_not_have_there(
    data: st.DataObject,
) -> None:
    count = data.draw(st.integers(2, 200), label="states")
    committed = roots(count, data.draw(st.integers(0, 10**6), label="seed"))
    trace_root = merkle.root(committed)
    index = data.draw(st.integers(0, count - 1), label="revealed position")
    other = data.draw(st.integers(0, count - 1), label="proof's position")
    # Some root it did not commit to there: another position's, or any other word.
    lie = data.draw(
        st.one_of(
            st.sampled_from([r for r in committed if r != committed[index]]),
            st.binary(min_size=32, max_size=32),
        ),
        label="lie",
    )
    if lie == committed[index]:
        return
    # No proof it can build from its own trace (any position's) proves the lie...
    assert not merkle.verify(trace_root, lie, index, count, merkle.proof(committed, other))
    # ...and a trace that has the lie there has another root, which the claim did not name.
    forged = list(committed)
    forged[index] = lie
    assert merkle.root(forged) != trace_root
    assert not merkle.verify(trace_root, lie, index, count, merkle.proof(forged, index))
    # The truth proves.
    assert merkle.verify(trace_root, committed[index], index, count, merkle.proof(committed, index))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_claimer_that_lies_about_an_intermediate_root_always_loses(
    data: st.DataObject,
) -> None:
    """A claimer whose committed trace departs from the honest one anywhere is bisected
    to an operation whose agreed start is honest and whose claimed end is not: the one
    step, re-executed honestly, does not end on the claimed root."""
    n = data.draw(st.integers(1, 300), label="n")
    honest = roots(n + 1, 1)
    wrong = data.draw(st.sets(st.integers(1, n), min_size=1), label="wrong positions")
    claimed = [keccak256(b"lie" + r) if i in wrong else r for i, r in enumerate(honest)]
    trace_root = merkle.root(claimed)
    lo, hi = 0, n
    # The claim's output root is the claimed state n; the input (state 0) is agreed.
    if claimed[n] == honest[n]:
        return  # a right output: nothing for an honest challenger to dispute
    while hi - lo > 1:
        mid = (lo + hi) // 2
        proof = merkle.proof(claimed, mid)
        # Revealing the honest root instead of the committed one does not prove...
        if honest[mid] != claimed[mid]:
            assert not merkle.verify(trace_root, honest[mid], mid, n + 1, proof)
        assert merkle.verify(trace_root, claimed[mid], mid, n + 1, proof)
        lo, hi = next_interval(lo, hi, agree=claimed[mid] == honest[mid])
    # ...so the game ends on an operation from an agreed state to a wrong one.
    assert claimed[lo] == honest[lo]
    assert claimed[hi] != honest[hi]
