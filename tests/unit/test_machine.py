"""The deterministic machine and its Merkle trees: programs, traces, the one-step check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sahara_cli.identity.keys import keccak256
from sahara_cli.node.saps import machine, merkle
from sahara_cli.node.saps.machine import MachineError, Program, State


def regression(rows: int = 32) -> tuple[Program, State]:
    """y = 0.5 x0 - x1 + 2 x2 + 0.25, its inputs made of integers only (no float
    arithmetic that a BLAS could round differently)."""
    k = np.arange(rows * 3, dtype=np.int64).reshape(rows, 3)
    x = ((k * 7919) % 131 - 65) << 10  # fixed point: multiples of 1/64 in [-1.02, 1.02]
    y = (x[:, :1] >> 1) - x[:, 1:2] + 2 * x[:, 2:] + (1 << 14)
    program = Program("mlp-sgd", (3, 8, 1), batch=4, steps=16, rows=rows, lr_shift=3)
    data = np.hstack([x, y])
    return program, State.initial(program, {"data": data, **machine.init_weights(program, 1)})


def test_a_training_trace_is_bit_identical_to_its_recorded_root() -> None:
    # The root of this run, recorded once: any machine, numpy build or summation order
    # that computed a different bit anywhere in 128 operations would change it.
    program, first = regression()
    trace = machine.run(first)
    assert program.length == 16 * 8 == len(trace.roots) - 1
    assert trace.root == machine.run(first).root
    assert trace.root.hex() == GOLDEN_TRAINING_ROOT


def test_sgd_on_the_machine_learns() -> None:
    _, first = regression(64)
    longer = Program("mlp-sgd", (3, 8, 1), batch=4, steps=160, rows=64, lr_shift=3)
    first = State.initial(longer, first.tensors)
    final = machine.run(first).final
    data = first.tensors["data"] / 65536

    def loss(state: State) -> float:
        w = {k: v / 65536 for k, v in state.tensors.items()}
        hidden = np.maximum(data[:, :3] @ w["w0"] + w["b0"], 0)
        return float(np.mean((hidden @ w["w1"] + w["b1"] - data[:, 3:]) ** 2))

    assert loss(final) < loss(first) / 5


def test_every_operation_passes_its_one_step_check() -> None:
    program, first = regression()
    trace = machine.run(first)
    decoded = Program.decode(program.encode())
    state = first.copy()
    for index in range(program.length):
        leaves, reads = state.witness(index)
        step = machine.verify_step(decoded, index, leaves, reads)
        assert step.pre_root == trace.roots[index]
        state.apply(index)
        assert step.post_root == trace.roots[index + 1]
        assert step.work > 0


def test_a_corrupted_operation_shows_in_its_root_and_fails_the_check() -> None:
    program, first = regression()
    honest, bad = machine.run(first), machine.run(first, corrupt=37)
    differing = [i for i, (a, b) in enumerate(zip(honest.roots, bad.roots, strict=True)) if a != b]
    assert differing[0] == 38
    state = machine.state_at(first, 37, corrupt=37)
    assert state.root() == bad.roots[37] == honest.roots[37]
    step = machine.verify_step(program, 37, *state.witness(37))
    assert step.post_root == honest.roots[38] != bad.roots[38]


def test_the_check_refuses_a_witness_that_does_not_match_its_leaves() -> None:
    program, first = regression()
    leaves, reads = first.witness(0)
    forged = bytearray(reads[0])
    forged[-1] ^= 1
    with pytest.raises(MachineError, match="does not match its leaf"):
        machine.verify_step(program, 0, leaves, [bytes(forged)])
    with pytest.raises(MachineError, match="shape"):
        machine.verify_step(program, 0, leaves, [reads[0][:-8]])
    with pytest.raises(MachineError, match="slot leaves"):
        machine.verify_step(program, 0, leaves[:-1], reads)
    with pytest.raises(MachineError, match="reads 1 tensors"):
        machine.verify_step(program, 0, leaves, reads * 2)
    with pytest.raises(MachineError, match="outside the program"):
        machine.verify_step(program, program.length, leaves, reads)


def test_inference_is_a_linear_and_a_relu_per_layer() -> None:
    program = Program("mlp-infer", (4, 8, 8, 2), batch=1)
    assert [program.op(i).name for i in range(program.length)] == [
        "linear0", "relu0", "linear1", "relu1", "linear2",
    ]  # fmt: skip
    x = machine.quantize([[0.5, -1.0, 0.25, 2.0]])
    weights = machine.init_weights(program, 3)
    final = machine.run(State.initial(program, {"x": x, **weights})).final
    floats = {k: v / 65536 for k, v in weights.items()}
    expected = x / 65536
    for i in range(3):
        expected = expected @ floats[f"w{i}"] + floats[f"b{i}"]
        expected = np.maximum(expected, 0) if i < 2 else expected
    assert np.allclose(final.tensors["h2"] / 65536, expected, atol=1e-3)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"kind":"cnn","layers":[2,2],"batch":1}', "kind must be"),
        (b'{"batch":1,"kind":"mlp-infer","layers":[2,9999]}', "every width"),
        (b'{"batch":1,"kind":"mlp-infer","layers":[2]}', "layers"),
        (b'{"batch":1, "kind":"mlp-infer","layers":[2,2]}', "canonical"),
        (b'{"batch":1,"kind":"mlp-infer","layers":[2,2],"x":1}', "unknown key 'x'"),
        (b'{"batch":4,"kind":"mlp-sgd","layers":[2,2],"lr_shift":4,"rows":0,"steps":1}', "rows"),
        (b'{"batch":256,"kind":"mlp-infer","layers":[256,256]}', "over 4096 elements"),
        (b"{" + b" " * 5000 + b"}", "over 4096 bytes"),
    ],
)
def test_a_malformed_program_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(MachineError, match=match):
        Program.decode(data)


def test_a_program_round_trips_with_its_meta() -> None:
    program = Program("mlp-sgd", (2, 4, 1), batch=2, steps=3, rows=6, meta=(("data", "0xab"),))
    assert Program.decode(program.encode()) == program
    assert program.digest == keccak256(program.encode())


def test_initial_state_checks_its_tensors() -> None:
    program = Program("mlp-infer", (2, 2))
    with pytest.raises(MachineError, match="no slot 'q'"):
        State.initial(program, {"q": np.zeros(1, np.int64)})
    with pytest.raises(MachineError, match="shape"):
        State.initial(program, {"x": np.zeros((2, 2), np.int64)})
    assert (
        machine.decode_tensor(machine.encode_tensor(np.arange(4).reshape(2, 2)), (2, 2)).sum() == 6
    )


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 70), data=st.data())
def test_merkle_proofs_hold_for_every_leaf_and_nothing_else(
    count: int, data: st.DataObject
) -> None:
    leaves = [keccak256(i.to_bytes(4, "big")) for i in range(count)]
    top = merkle.root(leaves)
    index = data.draw(st.integers(0, count - 1))
    siblings = merkle.proof(leaves, index)
    assert len(siblings) == merkle.depth(count)
    assert merkle.verify(top, leaves[index], index, count, siblings)
    other = data.draw(st.integers(0, count - 1).filter(lambda i: leaves[i] != leaves[index]))
    if other != index:
        assert not merkle.verify(top, leaves[other], index, count, siblings)
        assert not merkle.verify(top, leaves[index], other, count, siblings)
    assert not merkle.verify(top, keccak256(b"forged"), index, count, siblings)
    assert not merkle.verify(top, leaves[index], index, count, [*siblings, merkle.ZERO])


GOLDEN_TRAINING_ROOT = "8ead8bbc710beccbd4007e89732193daa8b731b655f7566b9a3598fe58bdec8b"
