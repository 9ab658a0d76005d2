"""The deterministic machine: fixed-point tensor programs the chain can re-execute a step of.

A challengeable job runs here instead of on floats. Every value is an ``int64`` holding a
fixed-point number with :data:`FRAC` fraction bits; a product is shifted back with an
arithmetic shift (floor), sums are exact integer sums, and every written tensor is
clamped to ``±LIMIT``, so a result is the same bit for bit on any machine, in any
order of summation, with any numpy build (integer ``matmul`` never goes through BLAS).
The bounds (:data:`LIMIT`, :data:`MAX_DIM`) keep every intermediate sum inside ``int64``.

A :class:`Program` is a small canonical JSON document: a multilayer perceptron (ReLU
between layers) for inference (``mlp-infer``) or for training by SGD on mean squared
error (``mlp-sgd``). It lays out a **state**, a fixed list of named tensors (slots), and
a list of **operations**, each reading some slots and writing others. Inference is one
operation per layer and activation; a training step is ``load`` (the step's batch),
the forward pass, ``loss``, then ``back`` and ``update`` layer by layer down.

The state's root is the Merkle root (:mod:`.merkle`) of its slots' leaf hashes, and a
trace is the list of roots before the first operation and after each one. The dispute
game's one-step check is :func:`verify_step`: given the leaves of the agreed state and
the tensors the operation reads, it re-executes that one operation and returns the root
after it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sahara_cli.identity.keys import keccak256
from sahara_cli.node.saps import merkle

__all__ = [
    "FRAC",
    "LIMIT",
    "WORK_GAS",
    "MachineError",
    "Op",
    "Program",
    "State",
    "Step",
    "Trace",
    "decode_tensor",
    "encode_tensor",
    "init_weights",
    "quantize",
    "run",
    "state_at",
    "verify_step",
]

#: Fraction bits of every fixed-point value: 1.0 is ``1 << FRAC``.
FRAC = 16
#: Every written value is clamped to ±LIMIT (±128.0), so that a product of two values
#: summed over :data:`MAX_DIM` terms stays inside int64.
LIMIT = (1 << 23) - 1
MAX_DIM = 256
MAX_LAYERS = 5
#: Elements in one slot: the one-step check carries the tensors it reads as call data.
MAX_ELEMENTS = 4096
MAX_LENGTH = 1 << 20
MAX_PROGRAM = 4096
MAX_META = 8
#: Gas per unit of work (one multiply-add, or one element read or written): the EVM's
#: price of a MUL.
WORK_GAS = 5
KINDS = ("mlp-infer", "mlp-sgd")


class MachineError(ValueError):
    """A malformed program, tensor or witness."""


@dataclass(frozen=True)
class Op:
    """One operation of a program: which training step it belongs to, what it touches."""

    index: int
    name: str
    step: int
    reads: tuple[str, ...]
    writes: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    """What the one-step check found: the root before, the root after, the work done."""

    pre_root: bytes
    post_root: bytes
    work: int


def _int(doc: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = doc.get(key)
    if type(value) is not int or not low <= value <= high:
        raise MachineError(f"program: {key} must be an integer in [{low}, {high}]")
    return value


@dataclass(frozen=True)
class Program:
    """A fixed-point MLP program: its layer widths (input first), and for training the
    batch size, the number of SGD steps, the dataset's rows and the learning rate as a
    right shift (``lr = 2**-lr_shift``). ``meta`` binds it to its inputs (their hashes)."""

    kind: str
    layers: tuple[int, ...]
    batch: int = 1
    steps: int = 1
    rows: int = 0
    lr_shift: int = 4
    meta: tuple[tuple[str, str], ...] = ()
    _ops: list[Op] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check()
        object.__setattr__(self, "_ops", self._layout())

    # -- the document -------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "layers": list(self.layers), "batch": self.batch}
        if self.kind == "mlp-sgd":
            doc.update(steps=self.steps, rows=self.rows, lr_shift=self.lr_shift)
        if self.meta:
            doc["meta"] = dict(self.meta)
        return doc

    def encode(self) -> bytes:
        """The canonical bytes of the program (sorted keys, no spaces): one program, one
        hash."""
        return json.dumps(self.document(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> bytes:
        return keccak256(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> Program:
        if len(data) > MAX_PROGRAM:
            raise MachineError(f"program is over {MAX_PROGRAM} bytes")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MachineError(f"program is not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise MachineError("program is not a JSON object")
        unknown = set(doc) - {"kind", "layers", "batch", "steps", "rows", "lr_shift", "meta"}
        if unknown:
            raise MachineError(f"program: unknown key {sorted(unknown)[0]!r}")
        layers = doc.get("layers")
        if not isinstance(layers, list) or not all(type(n) is int for n in layers):
            raise MachineError("program: layers must be a list of integers")
        meta = doc.get("meta", {})
        if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
        ):
            raise MachineError("program: meta must map strings to strings")
        sgd = doc.get("kind") == "mlp-sgd"
        program = cls(
            kind=str(doc.get("kind")),
            layers=tuple(layers),
            batch=_int(doc, "batch", 1, MAX_DIM),
            steps=_int(doc, "steps", 1, MAX_LENGTH) if sgd else 1,
            rows=_int(doc, "rows", 1, MAX_ELEMENTS) if sgd else 0,
            lr_shift=_int(doc, "lr_shift", 0, 30) if sgd else 4,
            meta=tuple(sorted(meta.items())),
        )
        if program.encode() != data:
            raise MachineError("program is not in canonical form (sorted keys, no spaces)")
        return program

    def _check(self) -> None:
        if self.kind not in KINDS:
            raise MachineError(f"program: kind must be one of {', '.join(KINDS)}")
        if not 2 <= len(self.layers) <= MAX_LAYERS + 1:
            raise MachineError(f"program: 1 to {MAX_LAYERS} layers (2 to 6 widths)")
        if not all(1 <= n <= MAX_DIM for n in self.layers):
            raise MachineError(f"program: every width is in [1, {MAX_DIM}]")
        if not 1 <= self.batch <= MAX_DIM:
            raise MachineError(f"program: batch is in [1, {MAX_DIM}]")
        if len(self.meta) > MAX_META or any(len(k) > 64 or len(v) > 2048 for k, v in self.meta):
            raise MachineError(f"program: at most {MAX_META} meta entries, short ones")
        for name, shape in self.shapes.items():
            if int(np.prod(shape)) > MAX_ELEMENTS:
                raise MachineError(f"program: slot {name} is over {MAX_ELEMENTS} elements")
        if self.kind == "mlp-sgd" and self.steps * self.ops_per_step > MAX_LENGTH:
            raise MachineError(f"program: over {MAX_LENGTH} operations")

    # -- layout ---------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.layers) - 1

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every slot's shape, in the state's order."""
        out: dict[str, tuple[int, ...]] = {}
        widths, b = self.layers, self.batch
        if self.kind == "mlp-sgd":
            out["data"] = (self.rows, widths[0] + widths[-1])
            out["y"] = (b, widths[-1])
        out["x"] = (b, widths[0])
        for i in range(self.depth):
            out[f"w{i}"] = (widths[i], widths[i + 1])
            out[f"b{i}"] = (widths[i + 1],)
            out[f"h{i}"] = (b, widths[i + 1])
            if i < self.depth - 1:
                out[f"a{i}"] = (b, widths[i + 1])
            if self.kind == "mlp-sgd":
                out[f"g{i}"] = (b, widths[i + 1])
        return out

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(self.shapes)

    @property
    def ops_per_step(self) -> int:
        return 2 * self.depth - 1 if self.kind == "mlp-infer" else 4 * self.depth

    @property
    def length(self) -> int:
        """Operations in the program; its trace has ``length + 1`` roots."""
        return self.ops_per_step * (self.steps if self.kind == "mlp-sgd" else 1)

    def _input(self, layer: int) -> str:
        return "x" if layer == 0 else f"a{layer - 1}"

    def _layout(self) -> list[Op]:
        ops: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
        if self.kind == "mlp-sgd":
            ops.append(("load", ("data",), ("x", "y")))
        for i in range(self.depth):
            ops.append((f"linear{i}", (self._input(i), f"w{i}", f"b{i}"), (f"h{i}",)))
            if i < self.depth - 1:
                ops.append((f"relu{i}", (f"h{i}",), (f"a{i}",)))
        if self.kind == "mlp-sgd":
            last = self.depth - 1
            ops.append(("loss", (f"h{last}", "y"), (f"g{last}",)))
            for i in reversed(range(self.depth)):
                if i > 0:
                    ops.append((f"back{i}", (f"g{i}", f"w{i}", f"h{i - 1}"), (f"g{i - 1}",)))
                ops.append(
                    (f"update{i}", (f"w{i}", f"b{i}", f"g{i}", self._input(i)), (f"w{i}", f"b{i}"))
                )
        return [Op(k, name, 0, reads, writes) for k, (name, reads, writes) in enumerate(ops)]

    def op(self, index: int) -> Op:
        """Operation ``index`` of the whole program (a training step is a run of them)."""
        if not 0 <= index < self.length:
            raise MachineError(f"operation {index} is outside the program's {self.length}")
        step, k = divmod(index, self.ops_per_step)
        base = self._ops[k]
        return Op(index, base.name, step, base.reads, base.writes)


# -- tensors --------------------------------------------------------------------------------
def quantize(values: Any) -> np.ndarray:
    """Floats to fixed point: round to nearest (ties to even), clamped."""
    scaled = np.rint(np.asarray(values, dtype=np.float64) * (1 << FRAC))
    return np.clip(scaled, -LIMIT, LIMIT).astype(np.int64)


def encode_tensor(array: np.ndarray) -> bytes:
    """A tensor's bytes: its rank, each dimension (big-endian u32), then int64 LE values."""
    header = struct.pack(">B", array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.ascontiguousarray(array, dtype="<i8").tobytes()


def decode_tensor(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """The tensor of ``data``, which must have exactly ``shape``."""
    expected = encode_tensor(np.zeros(shape, dtype=np.int64))
    header = len(expected) - 8 * int(np.prod(shape))
    if len(data) != len(expected) or data[:header] != expected[:header]:
        raise MachineError(f"a tensor of shape {shape} was expected")
    return np.frombuffer(data, dtype="<i8", offset=header).reshape(shape).astype(np.int64)


def leaf(name: str, encoded: bytes) -> bytes:
    """A slot's leaf: the hash of its name and its encoded tensor."""
    return keccak256(b"sahara.tensor\0" + name.encode() + b"\0" + encoded)


def init_weights(program: Program, seed: int) -> dict[str, np.ndarray]:
    """Weights from a seed, the same on every machine: a keccak counter stream, uniform in
    ±1/sqrt(fan-in); biases zero."""
    out: dict[str, np.ndarray] = {}
    for i in range(program.depth):
        rows, cols = program.layers[i], program.layers[i + 1]
        count = rows * cols
        stream = b"".join(
            keccak256(b"sahara.init" + struct.pack(">QII", seed, i, k))
            for k in range((count * 4 + 31) // 32)
        )
        raw = np.frombuffer(stream[: count * 4], dtype=">u4").astype(np.int64)
        scale = int((1 << FRAC) / np.sqrt(rows))
        out[f"w{i}"] = ((raw % (2 * scale + 1)) - scale).reshape(rows, cols)
        out[f"b{i}"] = np.zeros(cols, dtype=np.int64)
    return out


# -- the operations -------------------------------------------------------------------------
def _clamp(array: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.clip(array, -LIMIT, LIMIT).astype(np.int64)
    return out


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.asarray(a @ b) >> FRAC
    return out


def _execute(
    program: Program, op: Op, t: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], int]:
    """The tensors ``op`` writes, from the tensors it reads, and the work it did."""
    name = op.name
    if name == "load":
        rows = (np.arange(program.batch) + op.step * program.batch) % program.rows
        batch = t["data"][rows]
        d_in = program.layers[0]
        return {"x": batch[:, :d_in].copy(), "y": batch[:, d_in:].copy()}, batch.size
    layer = int(name[-1]) if name[-1].isdigit() else 0
    if name.startswith("linear"):
        inp, w = t[op.reads[0]], t[op.reads[1]]
        out = _clamp(_matmul(inp, w) + t[op.reads[2]])
        return {op.writes[0]: out}, inp.shape[0] * w.shape[0] * w.shape[1]
    if name.startswith("relu"):
        h = t[op.reads[0]]
        return {op.writes[0]: np.maximum(h, 0)}, h.size
    if name == "loss":
        h, y = t[op.reads[0]], t["y"]
        return {op.writes[0]: _clamp(h - y)}, h.size
    if name.startswith("back"):
        g, w, h_prev = t[f"g{layer}"], t[f"w{layer}"], t[f"h{layer - 1}"]
        out = _clamp(_matmul(g, w.T) * (h_prev > 0))
        return {f"g{layer - 1}": out}, g.shape[0] * w.shape[0] * w.shape[1]
    if name.startswith("update"):
        w, bias, g, inp = (t[r] for r in op.reads)
        dw = np.floor_divide(_matmul(inp.T, g), program.batch) >> program.lr_shift
        db = np.floor_divide(g.sum(axis=0), program.batch) >> program.lr_shift
        work = inp.shape[0] * w.size + g.size
        return {f"w{layer}": _clamp(w - dw), f"b{layer}": _clamp(bias - db)}, work
    raise MachineError(f"unknown operation {name}")  # pragma: no cover - layout names only


# -- states and traces ----------------------------------------------------------------------
@dataclass
class State:
    """The machine's state under a program: every slot's tensor, and their leaves."""

    program: Program
    tensors: dict[str, np.ndarray]
    leaves: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def initial(cls, program: Program, tensors: Mapping[str, Any]) -> State:
        """A first state: the given tensors (weights, data or input), zeros elsewhere."""
        unknown = set(tensors) - set(program.slots)
        if unknown:
            raise MachineError(f"no slot {sorted(unknown)[0]!r} in this program")
        out: dict[str, np.ndarray] = {}
        for name, shape in program.shapes.items():
            value = tensors.get(name)
            array = np.zeros(shape, np.int64) if value is None else np.asarray(value)
            if array.shape != shape or array.dtype != np.int64:
                raise MachineError(f"slot {name}: an int64 tensor of shape {shape} was expected")
            out[name] = _clamp(array)
        return cls(program, out)

    def leaf(self, name: str) -> bytes:
        if name not in self.leaves:
            self.leaves[name] = leaf(name, encode_tensor(self.tensors[name]))
        return self.leaves[name]

    def leaf_list(self) -> list[bytes]:
        return [self.leaf(name) for name in self.program.slots]

    def root(self) -> bytes:
        return merkle.root(self.leaf_list())

    def copy(self) -> State:
        return State(
            self.program, {k: v.copy() for k, v in self.tensors.items()}, dict(self.leaves)
        )

    def apply(self, index: int, *, corrupt: bool = False) -> int:
        """Run operation ``index`` in place; ``corrupt`` adds 1.0 to the first value it
        writes (a dishonest runner, for tests and drills). Returns the work."""
        op = self.program.op(index)
        outputs, work = _execute(self.program, op, self.tensors)
        for i, (name, value) in enumerate(outputs.items()):
            written = value.copy() if corrupt and i == 0 else value
            if written is not value:
                written.flat[0] = min(LIMIT, int(written.flat[0]) + (1 << FRAC))
            self.tensors[name] = written
            self.leaves.pop(name, None)
        return work

    def witness(self, index: int) -> tuple[list[bytes], list[bytes]]:
        """What the one-step check of operation ``index`` needs from this state: every
        slot's leaf, and the encoded tensors the operation reads."""
        op = self.program.op(index)
        return self.leaf_list(), [encode_tensor(self.tensors[name]) for name in op.reads]


@dataclass(frozen=True)
class Trace:
    """A run's roots, ``roots[i]`` before operation ``i`` and ``roots[-1]`` after the last."""

    roots: list[bytes]
    final: State

    @property
    def root(self) -> bytes:
        """The trace commitment: the Merkle root of its state roots."""
        return merkle.root(self.roots)


def run(
    first: State,
    *,
    corrupt: int | None = None,
    on_op: Callable[[int, State], None] | None = None,
) -> Trace:
    """Run the whole program from ``first`` (left untouched); ``corrupt`` is the index of
    an operation to get wrong (a dishonest runner); ``on_op`` sees each operation's index
    and the state after it."""
    state = first.copy()
    roots = [state.root()]
    for index in range(state.program.length):
        state.apply(index, corrupt=index == corrupt)
        roots.append(state.root())
        if on_op is not None:
            on_op(index, state)
    return Trace(roots, state)


def state_at(first: State, index: int, *, corrupt: int | None = None) -> State:
    """The state before operation ``index`` (replayed from ``first``)."""
    state = first.copy()
    for k in range(index):
        state.apply(k, corrupt=k == corrupt)
    return state


def verify_step(
    program: Program, index: int, leaves: Sequence[bytes], reads: Sequence[bytes]
) -> Step:
    """Re-execute operation ``index`` from a state known by its slot ``leaves`` and the
    encoded tensors the operation ``reads``: the root before, the root after, the work."""
    op = program.op(index)
    slots = program.slots
    if len(leaves) != len(slots) or any(len(x) != 32 for x in leaves):
        raise MachineError(f"the witness needs {len(slots)} slot leaves of 32 bytes")
    if len(reads) != len(op.reads):
        raise MachineError(f"operation {op.name} reads {len(op.reads)} tensors")
    shapes = program.shapes
    position = {name: i for i, name in enumerate(slots)}
    tensors: dict[str, np.ndarray] = {}
    for name, data in zip(op.reads, reads, strict=True):
        tensors[name] = decode_tensor(bytes(data), shapes[name])
        if leaf(name, bytes(data)) != leaves[position[name]]:
            raise MachineError(f"tensor {name} does not match its leaf in the state")
    outputs, work = _execute(program, op, tensors)
    after = list(leaves)
    for name, value in outputs.items():
        after[position[name]] = leaf(name, encode_tensor(value))
    touched = sum(len(d) for d in reads) // 8 + sum(v.size for v in outputs.values())
    return Step(merkle.root(leaves), merkle.root(after), work + touched)
