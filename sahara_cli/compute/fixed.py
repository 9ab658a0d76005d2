"""The fixed-point runner: challengeable training and inference on licensed vault data.

The torch runner (LoRA, DP-SGD, merging) computes in floats, and floats differ between
machines, BLAS builds and summation orders: its jobs are recorded and paid, but not
challengeable. This runner computes on the node's deterministic machine
(:mod:`sahara_cli.node.saps.machine`): an MLP trained by SGD on a numeric table, or one
answering an input, with every value in fixed point, so that anyone holding the inputs
re-executes the job bit for bit, and the chain re-executes any one of its operations.

A job's program names its inputs (the datasets' SHA-256, the seed of its first weights,
or the model and input of an answer) in ``meta``, so the program's hash, committed on
chain, binds the claim to them. :func:`first_state` rebuilds the first state from those
inputs, through the vault and the chain's licence checks, for whoever verifies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sahara_cli.errors import ComputeSpecInvalid, NoTrainingData
from sahara_cli.node.saps.machine import MachineError, Program, State

if TYPE_CHECKING:
    from pathlib import Path

    from sahara_cli.compute.data import Plaintext
    from sahara_cli.compute.workflow import Context
    from sahara_cli.protocol.client import Protocol

MODEL_FILE = "model.safetensors"
FORMAT = "sahara-fixed-mlp"


def parse_table(data: bytes, label: str) -> np.ndarray:
    """The rows of a numeric table (CSV, TSV or space separated; a header line is
    skipped), as float64."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoTrainingData(f"{label} is not a UTF-8 table") from None
    rows: list[list[float]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cells = line.replace(",", " ").replace(";", " ").replace("\t", " ").split()
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            if rows:
                raise NoTrainingData(f"{label}, line {number}: not a row of numbers") from None
            continue  # the header, before the first row
    if not rows:
        raise NoTrainingData(f"{label} holds no rows of numbers")
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise NoTrainingData(f"{label}: every row needs the same number of columns")
    table = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(table).all():
        raise NoTrainingData(f"{label} holds a value that is not finite")
    return table


def table_of(plaintexts: Sequence[Plaintext]) -> np.ndarray:
    """The rows of every file of every dataset, in order."""
    tables = [
        parse_table(data, f"asset {p.asset_id} ({name})")
        for p in plaintexts
        for name, data in p.files
    ]
    if len({t.shape[1] for t in tables}) > 1:
        raise NoTrainingData("the datasets have different numbers of columns")
    return np.vstack(tables)


def lr_shift_of(learning_rate: float) -> int:
    """``lr = 2**-shift``: the machine's learning rates are powers of two."""
    shift = -math.log2(learning_rate) if learning_rate > 0 else -1.0
    if shift != int(shift) or not 0 <= shift <= 30:
        raise ComputeSpecInvalid(
            f"the fixed-point runner's learning rate is a power of two (1/16, 0.0625), "
            f"not {learning_rate}"
        )
    return int(shift)


def data_meta(plaintexts: Sequence[Plaintext]) -> str:
    return ",".join(f"{p.asset_id}:{p.sha256}" for p in plaintexts)


def training_program(
    table: np.ndarray,
    plaintexts: Sequence[Plaintext],
    *,
    hidden: Sequence[int],
    targets: int,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> tuple[Program, State]:
    """The SGD program of a job and its first state: the quantised table and seeded
    weights."""
    from sahara_cli.node.saps import machine

    if not 1 <= targets < table.shape[1]:
        raise ComputeSpecInvalid(
            f"--targets must leave at least one input column of {table.shape[1]}"
        )
    meta = (("data", data_meta(plaintexts)), ("init", f"seed:{seed}"))
    try:
        program = Program(
            "mlp-sgd",
            (table.shape[1] - targets, *hidden, targets),
            batch=batch_size,
            steps=steps,
            rows=table.shape[0],
            lr_shift=lr_shift_of(learning_rate),
            meta=meta,
        )
    except MachineError as exc:
        raise ComputeSpecInvalid(f"the fixed-point runner cannot run this job: {exc}") from None
    tensors = {"data": machine.quantize(table), **machine.init_weights(program, seed)}
    return program, State.initial(program, tensors)


def mse(state: State, table: np.ndarray) -> float:
    """The mean squared error of ``state``'s weights on ``table`` (in floats, for people:
    what the machine optimised)."""
    program = state.program
    scale = float(1 << 16)
    values = table[:, : program.layers[0]]
    for i in range(program.depth):
        values = values @ (state.tensors[f"w{i}"] / scale) + state.tensors[f"b{i}"] / scale
        if i < program.depth - 1:
            values = np.maximum(values, 0)
    return float(np.mean((values - table[:, program.layers[0] :]) ** 2))


def write_model(state: State, target: Path) -> Path:
    """The trained weights as ``model.safetensors`` (int64, fixed point) with the
    program beside it."""
    from safetensors.numpy import save_file

    from sahara_cli.fsutil import atomic_write

    program = state.program
    target.mkdir(parents=True, exist_ok=True)
    weights = {k: v for k, v in state.tensors.items() if k[0] in "wb" and k[1:].isdigit()}
    metadata = {
        "format": FORMAT,
        "frac": "16",
        "layers": ",".join(map(str, program.layers)),
    }
    save_file(weights, str(target / MODEL_FILE), metadata=metadata)
    atomic_write(target / "program.json", program.encode())
    return target


def read_model(data: bytes, label: str) -> dict[str, np.ndarray]:
    """A fixed-point model's weights from the bytes of its ``model.safetensors``."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as exc:
        raise NoTrainingData(f"{label} is not a fixed-point model ({exc})") from None
    if not tensors or any(t.dtype != np.int64 for t in tensors.values()):
        raise NoTrainingData(f"{label} is not a fixed-point model (int64 weights)")
    return dict(tensors)


def model_layers(weights: dict[str, np.ndarray], label: str) -> tuple[int, ...]:
    depth = sum(1 for k in weights if k.startswith("w"))
    try:
        layers = [weights["w0"].shape[0]] + [weights[f"w{i}"].shape[1] for i in range(depth)]
    except KeyError:
        raise NoTrainingData(f"{label}: weights w0..w{depth - 1} were expected") from None
    return tuple(layers)


def inference_program(
    weights: dict[str, np.ndarray], values: Sequence[float], model_meta: str, label: str
) -> tuple[Program, State]:
    """The program answering ``values`` with a fixed-point model, and its first state."""
    from sahara_cli.node.saps import machine

    layers = model_layers(weights, label)
    if len(values) != layers[0]:
        raise ComputeSpecInvalid(f"the model takes {layers[0]} inputs, not {len(values)}")
    x = machine.quantize([list(values)])
    meta = (("input", ",".join(str(int(v)) for v in x[0])), ("model", model_meta))
    try:
        program = Program("mlp-infer", layers, batch=1, meta=meta)
        return program, State.initial(program, {"x": x, **weights})
    except MachineError as exc:
        raise ComputeSpecInvalid(f"the fixed-point runner cannot answer: {exc}") from None


def first_state(ctx: Context, proto: Protocol, program: Program) -> State:
    """Rebuild a claim's first state from the inputs its program names, read through the
    vault under the chain's licence checks. A dataset or model whose plaintext hashes to
    something else than the program says raises :class:`~sahara_cli.errors.ClaimInputsMismatch`."""
    from sahara_cli.compute.data import read_plaintexts
    from sahara_cli.errors import ClaimInputsMismatch
    from sahara_cli.node.saps import machine

    meta = dict(program.meta)
    try:
        if program.kind == "mlp-sgd":
            wanted = [part.split(":", 1) for part in meta["data"].split(",")]
            ids = [int(asset) for asset, _ in wanted]
            seed = int(meta["init"].removeprefix("seed:"))
        else:
            _, asset, sha = meta["model"].split(":", 2)
            ids, wanted = [int(asset)], [[asset, sha]]
            x = np.asarray([[int(v) for v in meta["input"].split(",")]], dtype=np.int64)
    except (KeyError, ValueError):
        raise ClaimInputsMismatch("the claim's program does not name its inputs") from None
    plaintexts = read_plaintexts(ctx.vault, proto, ids, ctx.unlock)
    for plain, (_, sha) in zip(plaintexts, wanted, strict=True):
        if plain.sha256 != sha:
            raise ClaimInputsMismatch(
                f"asset {plain.asset_id} hashes to {plain.sha256}, the claim says {sha}",
                details={"asset_id": plain.asset_id, "sha256": plain.sha256, "claimed": sha},
            )
    if program.kind == "mlp-sgd":
        tensors = {
            "data": machine.quantize(table_of(plaintexts)),
            **machine.init_weights(program, seed),
        }
    else:
        files = dict(plaintexts[0].files)
        data = files.get(MODEL_FILE) or next(iter(files.values()))
        tensors = {"x": x, **read_model(data, f"asset {ids[0]}")}
    try:
        return State.initial(program, tensors)
    except MachineError as exc:
        raise ClaimInputsMismatch(f"the inputs do not fit the claim's program: {exc}") from None


@dataclass(frozen=True)
class FixedRun:
    """A run on the machine: its trace, and the loss of each training step."""

    program: Program
    first: State
    roots: list[bytes]
    final: State
    losses: list[float]
    seconds: float


def run_program(
    program: Program,
    first: State,
    *,
    corrupt: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> FixedRun:
    """Run ``first`` to the end, with a report after each training step's loss."""
    import time

    from sahara_cli.node.saps import machine

    losses: list[float] = []

    def after(index: int, state: State) -> None:
        op = program.op(index)
        if op.name == "loss":
            g = state.tensors[op.writes[0]] / float(1 << machine.FRAC)
            losses.append(round(float(np.mean(g * g)), 6))
            if on_step is not None:
                on_step(op.step, losses[-1])

    started = time.perf_counter()
    trace = machine.run(first, corrupt=corrupt, on_op=after)
    seconds = time.perf_counter() - started
    return FixedRun(program, first, trace.roots, trace.final, losses, seconds)
