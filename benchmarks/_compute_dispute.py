"""The verifiable-compute figures of ``benchmarks/compute.py``: whole dispute games on a
dev node, and the deterministic machine's step time against float SGD.

:func:`dispute_rows` starts a dev node with a provider whose CSV dataset the trainer and
the challenger hold Full licences of (fetched from the provider's key server), has the
trainer claim an ``mlp-sgd`` job of exactly :data:`TRACE_OPS` operations whose trace is
wrong at one operation (the ``corrupt_op`` drill of ``train_fixed``), and plays the game
to its end: the challenger with ``game.challenge``, the trainer's home with
``game.defend`` in a thread. Last, an honest claim is challenged with ``force``. Each
game's row holds its rounds, the gas of each move kind from ``ChallengeResult.moves``
and the wall time from the challenge transaction to the resolution.

:func:`step_rows` times one SGD step of the same MLP on the same data: on the machine
(``State.apply`` over a step's operations, then ``machine.run``, which also takes the
state root after every operation) and in float32 (numpy, and torch on one CPU thread).
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import ratio_table, say

SAH = 10**18
#: The claim of every game: (4, 16, 1), 8 operations a step, 128 steps of batch 8.
LAYERS = (4, 16, 1)
BATCH = 8
STEPS = 128
TRACE_OPS = 1024
LEARNING_RATE = 0.0625
#: ⌈log2 1024⌉ bisection rounds, then the one step the chain re-executes.
MAX_ROUNDS = 11
#: The step-time sizes: (layers, batch, dataset rows). A slot holds at most 4,096 values,
#: so the data slot has rows * (inputs + outputs) <= 4096 and w0 inputs * hidden <= 4096.
SIZES = {
    "tiny": ((4, 16, 1), 8, 64),
    "bigger": ((32, 128, 10), 32, 96),
}
SIDES = ("fixed", "fixed_trace", "numpy", "torch")


# -- the dispute games ----------------------------------------------------------------------
def table_text(rows: int = 64, seed: int = 5) -> str:
    """A CSV table of four inputs and one target (a noisy linear function)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(rows, 4))
    y = 0.5 * x[:, 0] - x[:, 1] + 2 * x[:, 2] - 0.75 * x[:, 3] + 0.25
    lines = ["a,b,c,d,y"] + [
        ",".join(f"{v:.4f}" for v in (*r, t)) for r, t in zip(x, y, strict=True)
    ]
    return "\n".join(lines) + "\n"


@dataclass
class GameWorld:
    trainer: Any  # Context
    challenger: Any  # Context
    dataset: int
    started: list[float]  # when each challenge transaction was sent


@contextmanager
def game_world() -> Iterator[GameWorld]:
    """A dev node, the provider's dataset served from its key server, and the homes of a
    trainer and a challenger that both bought a Full licence of it."""
    from sahara_cli.compute.workflow import Context
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.client import NodeClient
    from sahara_cli.node.rpc.testing import dev_node
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.local import LocalBlockstore
    from sahara_cli.vault.publish import AddOptions, Registration, add, holder_for
    from tests.e2e.nodes import free_port
    from tests.unit.test_vault_licensed import key_server

    with (
        tempfile.TemporaryDirectory(prefix="sahara-bench-dispute-") as tmp,
        dev_node(Path(tmp) / "node") as (_, rpc),
    ):
        root = Path(tmp)
        node = NodeClient(rpc.url)
        proto = Protocol(node)
        provider, trainer, challenger = (Signer(os.urandom(32)) for _ in range(3))
        for signer in (provider, trainer, challenger):
            node.call("sahara_dev_setBalance", signer.address, hex(100 * SAH))
        src = root / "table.csv"
        src.write_text(table_text())
        port = free_port()
        owned = root / "provider-vault"
        with Vault(owned, LocalBlockstore(owned)) as mine:
            [item] = add(
                mine,
                [src],
                holder_for(provider.address, None, provider),
                AddOptions(embedder=None),
                who=provider,
                proto=proto,
                registration=Registration(server_url=f"http://127.0.0.1:{port}"),
            ).items
        assert item.asset_id is not None
        offer, _ = proto.offer(provider, item.asset_id, "full", price=SAH // 100)
        for buyer in (trainer, challenger):
            proto.buy(buyer, offer)
        started: list[float] = []
        protos = [Protocol(NodeClient(rpc.url)) for _ in range(2)]
        send = protos[1].disputes.challenge

        def timed_challenge(*args: Any, **kw: Any) -> Any:
            started.append(time.perf_counter())
            return send(*args, **kw)

        protos[1].disputes.challenge = timed_challenge  # type: ignore[method-assign]
        vaults = [Vault(root / n, LocalBlockstore(root / n)) for n in ("t", "c")]
        try:
            with key_server(owned, provider, proto, node.chain_id(), port):
                homes = [
                    Context(root / f"home-{n}", v, lambda p=p: p, lambda s=s: s)
                    for n, v, p, s in zip("tc", vaults, protos, (trainer, challenger), strict=True)
                ]
                yield GameWorld(homes[0], homes[1], item.asset_id, started)
        finally:
            for vault in vaults:
                vault.close()
            node.close()


def play(world: GameWorld, corrupt: int | None, name: str) -> dict[str, Any]:
    """Claim a job (wrong at ``corrupt``, or honest) and play its game to the end."""
    from sahara_cli.compute.game import challenge, defend
    from sahara_cli.compute.verifiable import FixedTrainRequest, train_fixed

    job = train_fixed(
        world.trainer,
        FixedTrainRequest(
            data=[world.dataset],
            hidden=LAYERS[1:-1],
            steps=STEPS,
            batch_size=BATCH,
            learning_rate=LEARNING_RATE,
            name=name,
            server_url="http://127.0.0.1:1",
            corrupt_op=corrupt,
        ),
    )
    assert job.operations == TRACE_OPS, job.operations
    stop = threading.Event()
    defender = threading.Thread(target=defend, args=(world.trainer,), kwargs={"stop": stop})
    defender.start()
    try:
        result = challenge(world.challenger, str(job.job_id), force=corrupt is None)
        ended = time.perf_counter()
    finally:
        stop.set()
        defender.join(timeout=30)
    return game_row(result, corrupt, ended - world.started[-1])


def game_row(result: Any, corrupt: int | None, game_s: float) -> dict[str, Any]:
    """One game's figures: rounds, gas by move kind and by round, time, winner."""
    by_kind: dict[str, list[int]] = {}
    by_round: dict[int, int] = {}
    for move in result.moves:
        by_kind.setdefault(move.kind, []).append(move.gas_used)
        if move.kind in ("bisect", "respond"):
            by_round[move.round] = by_round.get(move.round, 0) + move.gas_used
    rounds = result.rounds + (1 if result.reason == "one-step" else 0)
    expected = "challenger" if corrupt is not None else "claimer"
    return {
        "corrupt_op": corrupt,
        "claim_id": result.claim_id,
        "dispute_id": result.dispute_id,
        "bisection_rounds": result.rounds,
        "rounds": rounds,
        "rounds_met": rounds <= MAX_ROUNDS,
        "reason": result.reason,
        "winner": result.winner,
        "expected_winner": expected,
        # The operation the chain re-executed (for an honest claim, the last one: the
        # challenger agreed at every midpoint, so no operation differs).
        "ended_on": result.ended_on,
        "found_corrupt_op": corrupt is None or result.first_difference == corrupt,
        "operation": result.operation,
        "training_step": result.training_step,
        "moves": {k: len(v) for k, v in by_kind.items()},
        "gas": {k: round(statistics.mean(v)) for k, v in by_kind.items()},
        "gas_min_max": {k: [min(v), max(v)] for k, v in by_kind.items()},
        "round_gas": round(statistics.mean(by_round.values())) if by_round else None,
        "round_gas_min_max": [min(by_round.values()), max(by_round.values())] if by_round else None,
        "total_gas": result.gas_used,
        "game_s": round(game_s, 3),
        "challenge_s": result.game_s,
        "payout_wei": result.payout_wei,
    }


def dispute_rows(seed: int = 7) -> dict[str, Any]:
    """Games over claims wrong at operations 1, 511, 1023 and a random one, then an
    honest claim challenged anyway."""
    rng = random.Random(seed)
    fixed = [1, 511, 1023]
    picked = rng.choice([i for i in range(TRACE_OPS) if i not in fixed])
    positions: list[int | None] = [*fixed, picked, None]
    games: list[dict[str, Any]] = []
    with game_world() as world:
        for n, corrupt in enumerate(positions):
            say(f"dispute game {n + 1}/{len(positions)}: wrong at {corrupt}")
            try:
                games.append(play(world, corrupt, f"bench-dispute-{n}"))
            except Exception as exc:  # a move or a claim that failed: the row says so
                games.append({"corrupt_op": corrupt, "error": f"{type(exc).__name__}: {exc}"})
    return {
        "program": {"kind": "mlp-sgd", "layers": list(LAYERS), "batch": BATCH, "steps": STEPS,
                    "operations": TRACE_OPS},
        "seed": seed,
        "random_op": picked,
        "target_rounds": MAX_ROUNDS,
        "games": games,
        "all_met": all(g.get("rounds_met") and g.get("winner") == g.get("expected_winner")
                       and g.get("found_corrupt_op") for g in games),
    }  # fmt: skip


def print_games(figures: dict[str, Any]) -> None:
    kinds = ("challenge", "bisect", "respond", "one-step")
    print(
        f"\nDispute games over a {TRACE_OPS}-operation mlp-sgd trace on the dev node "
        f"(gas a move, mean over the moves of its kind; target: rounds <= {MAX_ROUNDS})"
    )
    head = f"{'wrong op':>9}{'found':>7}{'rounds':>8}{'met':>5}"
    head += "".join(f"{k:>11}" for k in kinds)
    head += f"{'round':>9}{'total':>11}{'game s':>8}  winner"
    print(head)
    for g in figures["games"]:
        where = "honest" if g["corrupt_op"] is None else str(g["corrupt_op"])
        if "error" in g:
            print(f"{where:>9}  error: {g['error']}")
            continue
        found = "-" if g["corrupt_op"] is None else str(g["ended_on"])
        cells = "".join(f"{g['gas'][k]:>11,}" if k in g["gas"] else f"{'-':>11}" for k in kinds)
        print(
            f"{where:>9}{found:>7}{g['rounds']:>8}{'yes' if g['rounds_met'] else 'NO':>5}"
            f"{cells}{g['round_gas'] or 0:>9,}{g['total_gas']:>11,}{g['game_s']:>8.2f}"
            f"  {g['winner']} ({g['reason']})"
        )
    print(
        f"rounds = bisection rounds + the one step; a round's gas = its bisect + respond; "
        f"all games as expected: {'yes' if figures['all_met'] else 'NO'}"
    )


# -- step time: the machine against float SGD -----------------------------------------------
@dataclass
class Setup:
    layers: tuple[int, ...]
    batch: int
    rows: int
    first: Any  # machine.State
    data: np.ndarray  # float32, the quantised table as floats
    weights: dict[str, np.ndarray]  # float32, the first weights as floats


def setup(layers: tuple[int, ...], batch: int, rows: int, steps: int) -> Setup:
    from sahara_cli.node.saps import machine

    rng = np.random.default_rng(11)
    table = rng.uniform(-1, 1, size=(rows, layers[0] + layers[-1]))
    program = machine.Program("mlp-sgd", layers, batch=batch, steps=steps, rows=rows, lr_shift=4)
    tensors = {"data": machine.quantize(table), **machine.init_weights(program, 0)}
    first = machine.State.initial(program, tensors)
    scale = float(1 << machine.FRAC)
    floats = {k: (v / scale).astype(np.float32) for k, v in first.tensors.items()}
    return Setup(layers, batch, rows, first, floats["data"], floats)


def fixed_stamps(s: Setup, steps: int) -> list[float]:
    """``State.apply`` over each step's operations; the step end times."""
    state = s.first.copy()
    per = state.program.ops_per_step
    stamps = [time.perf_counter()]
    for step in range(steps):
        for k in range(per):
            state.apply(step * per + k)
        stamps.append(time.perf_counter())
    return stamps


def trace_stamps(s: Setup, steps: int) -> list[float]:
    """``machine.run``: every operation and the state root after it; the step end times."""
    from sahara_cli.node.saps import machine

    per = s.first.program.ops_per_step
    stamps = [time.perf_counter()]

    def on_op(index: int, _: machine.State) -> None:
        if (index + 1) % per == 0:
            stamps.append(time.perf_counter())

    machine.run(s.first, on_op=on_op)
    return stamps[: steps + 1]


def numpy_stamps(s: Setup, steps: int) -> list[float]:
    """The same SGD in float32 numpy: forward, the gradient of half the squared error,
    backward, the update (lr 1/16, averaged over the batch)."""
    depth = len(s.layers) - 1
    w = {k: v.copy() for k, v in s.weights.items() if k[0] in "wb"}
    lr, b, d_in = np.float32(1 / 16), s.batch, s.layers[0]
    stamps = [time.perf_counter()]
    for step in range(steps):
        batch = s.data[(np.arange(b) + step * b) % s.rows]
        x, y = batch[:, :d_in], batch[:, d_in:]
        inputs, hs = [x], []
        for i in range(depth):
            h = inputs[-1] @ w[f"w{i}"] + w[f"b{i}"]
            hs.append(h)
            if i < depth - 1:
                inputs.append(np.maximum(h, 0))
        g = hs[-1] - y
        for i in reversed(range(depth)):
            g_prev = (g @ w[f"w{i}"].T) * (hs[i - 1] > 0) if i > 0 else None
            w[f"w{i}"] -= lr * (inputs[i].T @ g) / b
            w[f"b{i}"] -= lr * g.sum(axis=0) / b
            if g_prev is not None:
                g = g_prev
        stamps.append(time.perf_counter())
    return stamps


def torch_stamps(s: Setup, steps: int) -> list[float]:
    """The same model in torch float32 (autograd, SGD), the loss half the squared error
    averaged over the batch."""
    import torch

    depth = len(s.layers) - 1
    layers: list[Any] = []
    for i in range(depth):
        linear = torch.nn.Linear(s.layers[i], s.layers[i + 1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(s.weights[f"w{i}"].T.copy()))
            linear.bias.copy_(torch.from_numpy(s.weights[f"b{i}"]))
        layers += [linear, torch.nn.ReLU()] if i < depth - 1 else [linear]
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=1 / 16)
    data = torch.from_numpy(s.data)
    d_in, b = s.layers[0], s.batch
    stamps = [time.perf_counter()]
    for step in range(steps):
        batch = data[(torch.arange(b) + step * b) % s.rows]
        out = model(batch[:, :d_in])
        loss = 0.5 * ((out - batch[:, d_in:]) ** 2).sum() / b
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    return stamps


def _one_thread() -> Any:
    """numpy's BLAS on one thread, as torch is (where threadpoolctl is installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(1)


def step_rows(runs: int, steps: int) -> dict[str, Any]:
    """Each size's median step time of each side, over alternating runs (the first step of
    a run, which warms up, only starts the clock)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    try:
        with _one_thread():
            for size, (layers, batch, rows) in SIZES.items():
                s = setup(layers, batch, rows, steps + 1)
                sides = {"fixed": fixed_stamps, "fixed_trace": trace_stamps,
                         "numpy": numpy_stamps, "torch": torch_stamps}  # fmt: skip
                times: dict[str, list[float]] = {side: [] for side in SIDES}
                for run in range(runs):
                    say(f"step time {size} run {run + 1}/{runs}")
                    for side in SIDES if run % 2 == 0 else SIDES[::-1]:
                        stamps = sides[side](s, steps + 1)[1:]
                        times[side] += [(b - a) * 1e6 for a, b in itertools.pairwise(stamps)]
                row: dict[str, Any] = {
                    "layers": list(layers),
                    "batch": batch,
                    "rows": rows,
                    "ops_per_step": s.first.program.ops_per_step,
                    "steps": len(times["fixed"]),
                }
                for side in SIDES:
                    row[side] = {"step_us": round(statistics.median(times[side]), 2)}
                out[size] = row
    finally:
        torch.set_num_threads(threads)
    return out


def print_steps(figures: dict[str, Any]) -> dict[str, Any]:
    """The tables: the machine (apply; run with roots) against each float peer."""
    ratios: dict[str, Any] = {}
    for size, row in figures.items():
        rows = [("apply step us", ("fixed", "step_us"), "lower"),
                ("run step us", ("fixed_trace", "step_us"), "lower")]  # fmt: skip
        layers = ",".join(map(str, row["layers"]))
        for peer in ("numpy", "torch"):
            print(
                f"\n{size} ({layers}) batch {row['batch']}: median SGD step time in us, "
                f"fixed point vs {peer} float32 (one thread)"
            )
            got = ratio_table(
                {"fixed": row[peer], "fixed_trace": row[peer]},
                row,
                rows,
                (f"{peer} f32", "fixed"),
                16,
            )
            ratios[f"{size}_{peer}"] = {
                "fixed_over_float": got["fixed_step_us"],
                "fixed_trace_over_float": got["fixed_trace_step_us"],
            }
    return ratios


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--dispute-only",
        action="store_true",
        help="only the dispute games and the fixed-point step times",
    )
    parser.add_argument(
        "--step-runs",
        type=int,
        default=4,
        help="alternating runs a side of the fixed-point step times",
    )
    parser.add_argument("--step-count", type=int, default=64,
                        help="timed SGD steps a run of the fixed-point step times")  # fmt: skip


def figures(args: Any) -> dict[str, Any]:
    """Play the games, time the steps, print both; the figures for the JSON document."""
    games = dispute_rows()
    steps = step_rows(args.step_runs, args.step_count)
    print_games(games)
    ratios = print_steps(steps)
    return {"dispute": games, "step_time": {**steps, "ratios": ratios}}
