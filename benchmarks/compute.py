"""Training step time: ``train_lora`` against a bare peft loop and a bare opacus loop.

    python benchmarks/compute.py [--hidden 128] [--layers 2] [--seq-len 64] [--batch 8]
                                 [--steps 24] [--runs 2] [--device cpu|cuda ...]
                                 [--threads N] [--json-out FILE]
                                 [--dispute-only] [--step-runs 4] [--step-count 64]

Both sides train the same random Llama (written on the spot by
``sahara_cli.compute.tiny.make_tiny_causal_lm``, with a tokenizer trained on this
repository's docs, so nothing downloads) on the same token blocks of those docs, with the
same LoRA, batch size, learning rate and number of steps, in alternating runs:

  bare peft    get_peft_model, AdamW, a shuffled DataLoader, forward with the block as
               labels, backward, step, zero_grad, loss.item(): the peer
  bare opacus  the same loop after PrivacyEngine.make_private_with_epsilon (Poisson
               sampling, the PRV accountant): the DP peer
  train_lora   sahara_cli.compute.train.train_lora, the path ``sahara compute train``
               takes, without and with a DP budget
  command      the workflow ``sahara compute train`` calls (on the device torch picks):
               the licence check on a dev node, the texts read as a dataset from a
               vault and decrypted, then train_lora with the command's step callback
               (``_compute_command.py``)

The step time of a side is the median of the times between the ends of consecutive steps
(the first step of a run, which warms up, only starts the clock); the paired ratio is the
median, over the back-to-back pairs of runs, of train_lora's run median over the bare
run's, which a busy machine's changing load moves least. Data loading, model
loading and the accountant's search for the noise multiplier are outside it. Targets:
train_lora / bare <= 1.05 for both. ``lora_rows`` and ``dp_rows`` return the figures of
one device. Last, a training job is recorded and finalised through the training SAP on
the dev node: the gas of each, its total and its cost at the base fee.

Verifiable compute (``_compute_dispute.py``; ``--dispute-only`` runs just this part):

  dispute games  on the dev node, a trainer claims an mlp-sgd job of exactly 1,024
                 operations (layers 4,16,1, 8 operations a step, 128 steps of batch 8)
                 whose trace is wrong at one operation (train_fixed's corrupt_op drill:
                 operations 1, 511, 1023 and one drawn with a fixed seed), and a licensee
                 challenges it (game.challenge) while the trainer's home defends
                 (game.defend); last, an honest claim challenged with force. Per game:
                 the rounds (bisection rounds + the one step; target <= 11 = log2 1024 +
                 1), whether the game ended on the wrong operation, the gas of each move
                 kind (challenge, bisect, respond, one-step; mean over its moves), of a
                 round (a bisect + its respond) and in all, the wall time from the
                 challenge transaction to the resolution, and the winner
  step time      one SGD step of the same MLP on the same data: on the deterministic
                 machine (State.apply over the step's operations; machine.run, which also
                 takes the state root after every operation) against float32 numpy (the
                 same forward, gradient, backward and update) and torch float32 (autograd,
                 SGD) on one CPU thread; medians over alternating runs (the first step of
                 a run only starts the clock) and the ratios fixed/float, at (4,16,1)
                 batch 8 and (32,128,10) batch 32 (a slot holds at most 4,096 values, so
                 64 inputs by 128 hidden does not fit)

Prints the tables, then one JSON document (the games under ``dispute``, the step times
and their ratios under ``step_time``).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import _compute_dispute  # noqa: E402
from _common import finish, machine, ratio_table, say  # noqa: E402
from _compute_command import command_world  # noqa: E402

from sahara_cli.compute.spec import DPSpec, LoraSpec, TrainSpec  # noqa: E402
from sahara_cli.compute.tiny import make_tiny_causal_lm  # noqa: E402
from sahara_cli.compute.train import StepReport, default_device, train_lora  # noqa: E402

LORA = LoraSpec(r=8, alpha=16, target_modules=("q_proj", "v_proj"))
LEARNING_RATE = 1e-3
DP = DPSpec(epsilon=8.0, delta=1e-5, max_grad_norm=1.0, accountant="prv")
TARGET_RATIO = 1.05


def docs_texts() -> list[str]:
    """The paragraphs of README.md and docs/*.md: real prose and code to train on."""
    texts = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        texts += [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    return texts


def enough_texts(base: Path, texts: list[str], tokens: int) -> list[str]:
    """The first texts that make at least ``tokens`` tokens (with an end token each), so
    that one epoch is about ``--steps`` steps; both sides train on these."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    count = 0
    for n, row in enumerate(tokenizer(texts, add_special_tokens=False)["input_ids"], 1):
        count += len(row) + 1
        if count >= tokens:
            return texts[:n]
    return texts


def step_ms(stamps: list[float]) -> list[float]:
    """The times between consecutive step ends, in milliseconds."""
    return [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]


def plain_blocks(base: Path, texts: list[str], seq_len: int) -> Any:
    """The texts tokenised and cut into blocks, written plainly (what train_lora does)."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    ids: list[int] = []
    for row in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids += [*row, tokenizer.eos_token_id]
    count = len(ids) // seq_len
    return torch.tensor(ids[: count * seq_len]).view(count, seq_len)


def bare_run(
    base: Path, blocks: Any, args: argparse.Namespace, device: str, dp: bool
) -> list[float]:
    """One bare peft (or opacus) run of one epoch over ``blocks``; the step end times."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).to(device)
    targets = list(LORA.target_modules or ())
    config = LoraConfig(r=LORA.r, lora_alpha=LORA.alpha, target_modules=targets,
                        lora_dropout=0.0, task_type="CAUSAL_LM")  # fmt: skip
    model = get_peft_model(model, config)
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE
    )
    loader = DataLoader(TensorDataset(blocks), batch_size=args.batch, shuffle=True)
    if dp:
        from opacus import PrivacyEngine

        engine = PrivacyEngine(accountant=DP.accountant)
        model, optimizer, loader = engine.make_private_with_epsilon(
            module=model, optimizer=optimizer, data_loader=loader, target_epsilon=DP.epsilon,
            target_delta=DP.delta, epochs=1, max_grad_norm=DP.max_grad_norm,
        )  # fmt: skip
    stamps = [time.perf_counter()]
    for (rows,) in loader:
        batch = rows.to(device)
        if len(batch):
            out = model(input_ids=batch, labels=batch, use_cache=False)
            out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if len(batch):
            out.loss.item()
        stamps.append(time.perf_counter())
    return stamps[1:]


def sahara_run(
    base: Path, texts: list[str], args: argparse.Namespace, device: str, dp: bool, out: Path
) -> list[float]:
    """One train_lora run of one epoch; the step end times (taken in its step callback)."""
    stamps: list[float] = []

    def on_step(_: StepReport) -> None:
        stamps.append(time.perf_counter())

    spec = TrainSpec(
        base=base,
        lora=LORA,
        dp=DP if dp else None,
        epochs=1,
        batch_size=args.batch,
        learning_rate=LEARNING_RATE,
        seq_len=args.seq_len,
    )
    train_lora(texts, spec, out, on_step=on_step, device=device)
    return stamps


def measure(
    base: Path,
    texts: list[str],
    blocks: Any,
    args: argparse.Namespace,
    device: str,
    dp: bool,
    command: Any = None,
) -> dict[str, dict[str, Any]]:
    """Alternating runs of the sides (with ``command``, the ``sahara compute train``
    workflow too); each side's median step time and step count."""
    sides = ["bare", "train_lora", *(["command"] if command is not None else [])]
    times: dict[str, list[float]] = {side: [] for side in sides}
    steps: dict[str, int] = {side: 0 for side in sides}
    per_run: dict[str, list[float]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="sahara-bench-compute-out-") as out:
        for run in range(args.runs):
            say(f"{device} {'dp' if dp else 'lora'} run {run + 1}/{args.runs}")
            for side in sides if run % 2 == 0 else sides[::-1]:
                if side == "bare":
                    stamps = bare_run(base, blocks, args, device, dp)
                elif side == "command":
                    stamps = command(f"bench-{'dp' if dp else 'lora'}-{run}", dp, base, args)
                else:
                    stamps = sahara_run(base, texts, args, device, dp, Path(out) / str(run))
                times[side] += step_ms(stamps)
                per_run[side].append(round(statistics.median(step_ms(stamps)), 2))
                steps[side] += len(stamps)
    return {
        side: {"step_ms": statistics.median(times[side]), "steps": steps[side],
               "run_medians_ms": per_run[side]}
        for side in times
    }  # fmt: skip


def paired_ratio(sides: dict[str, dict[str, Any]], side: str = "train_lora") -> float:
    """The median over runs of ``side``'s run median / the bare run's next to it: the
    figure a shared machine's load moves least (both runs of a pair see the same load)."""
    pairs = zip(sides[side]["run_medians_ms"], sides["bare"]["run_medians_ms"], strict=True)
    return round(statistics.median(t / b for t, b in pairs), 3)


def lora_rows(
    base: Path,
    texts: list[str],
    blocks: Any,
    args: argparse.Namespace,
    device: str,
    command: Any = None,
) -> dict[str, Any]:
    """LoRA without DP on ``device``: {"bare": {...}, "train_lora": {...}[, "command"]}."""
    return measure(base, texts, blocks, args, device, dp=False, command=command)


def dp_rows(
    base: Path,
    texts: list[str],
    blocks: Any,
    args: argparse.Namespace,
    device: str,
    command: Any = None,
) -> dict[str, Any]:
    """LoRA with DP-SGD on ``device``: {"bare": {...}, "train_lora": {...}} (bare = opacus)."""
    return measure(base, texts, blocks, args, device, dp=True, command=command)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128, help="random model: hidden size")
    parser.add_argument("--layers", type=int, default=2, help="random model: layers")
    parser.add_argument("--seq-len", type=int, default=64, help="tokens a block")
    parser.add_argument("--batch", type=int, default=8, help="blocks a batch")
    parser.add_argument("--steps", type=int, default=24, help="steps a run (one epoch)")
    parser.add_argument("--runs", type=int, default=2, help="alternating runs a side")
    parser.add_argument("--device", action="append", help="devices (default: cpu, and cuda)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    _compute_dispute.add_arguments(parser)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the libraries' deprecation and secure-RNG notes

    import torch

    if args.dispute_only:
        return finish(verifiable_doc({"benchmark": "compute", "machine": machine(),
                                      "torch": torch.__version__, "error": None}, args),
                      args.json_out)  # fmt: skip

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    texts = docs_texts()
    per_device: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sahara-bench-compute-") as tmp:
        base = make_tiny_causal_lm(
            Path(tmp) / "base", texts, layers=args.layers, hidden=args.hidden, heads=4,
            vocab_size=1024, max_positions=max(512, args.seq_len),
        )  # fmt: skip
        texts = enough_texts(base, texts, args.steps * args.batch * args.seq_len)
        blocks = plain_blocks(base, texts, args.seq_len)
        with command_world(texts, LORA, DP, LEARNING_RATE) as (command, gas):
            for device in devices:
                # The command trains on the device torch picks (CUDA when present).
                mine = command if device == default_device() else None
                per_device[device] = {
                    "lora": lora_rows(base, texts, blocks, args, device, mine),
                    "dp": dp_rows(base, texts, blocks, args, device, mine),
                }
            gas_row = gas(base, args)
    doc: dict[str, Any] = {
        "benchmark": "compute",
        "machine": machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "model": f"random LlamaForCausalLM, hidden {args.hidden}, {args.layers} layers",
        "lora": LORA.text(),
        "dp": {"epsilon": DP.epsilon, "delta": DP.delta, "accountant": DP.accountant},
        "seq_len": args.seq_len,
        "batch": args.batch,
        "blocks": int(blocks.shape[0]),
        "runs": args.runs,
        "target_ratio": TARGET_RATIO,
        "devices": {},
        "error": None,
    }
    for device, row in per_device.items():
        print(f"\n{device}: median step time in ms (bare peft / bare opacus vs train_lora)")
        peer = {kind: row[kind]["bare"] for kind in ("lora", "dp")}
        target = {kind: row[kind]["train_lora"] for kind in ("lora", "dp")}
        ratios = ratio_table(
            peer,
            target,
            [("LoRA step ms", ("lora", "step_ms"), "lower"),
             ("DP-SGD step ms", ("dp", "step_ms"), "lower")],
            ("bare", "train_lora"),
            16,
        )  # fmt: skip
        paired = {kind: paired_ratio(row[kind]) for kind in ("lora", "dp")}
        print(
            f"paired runs (median of train_lora/bare over back-to-back runs): "
            f"LoRA {paired['lora']:.3f}, DP-SGD {paired['dp']:.3f} (target <= {TARGET_RATIO})"
        )
        if "command" in row["lora"]:
            print(f"\n{device}: median step time in ms (bare vs sahara compute train)")
            ratios |= {
                f"command_{k}": v
                for k, v in ratio_table(
                    peer,
                    {kind: row[kind]["command"] for kind in ("lora", "dp")},
                    [("LoRA step ms", ("lora", "step_ms"), "lower"),
                     ("DP-SGD step ms", ("dp", "step_ms"), "lower")],
                    ("bare", "command"),
                    16,
                ).items()
            }  # fmt: skip
            paired |= {f"command_{k}": paired_ratio(row[k], "command") for k in ("lora", "dp")}
            print(
                f"paired runs (sahara compute train/bare): LoRA {paired['command_lora']:.3f}, "
                f"DP-SGD {paired['command_dp']:.3f} (target <= {TARGET_RATIO})"
            )
        doc["devices"][device] = {**row, "ratios": ratios, "paired_ratios": paired}
    print("\nA training job on chain (dev node): gas")
    for key in ("submit_gas", "finalize_gas", "total_gas"):
        print(f"  {key.removesuffix('_gas'):<10}{gas_row[key]:>12,}")
    print(f"  = {gas_row['total_at_base_fee_sah']:.6f} SAH at the base fee")
    doc["gas"] = gas_row
    return finish(verifiable_doc(doc, args), args.json_out)


def verifiable_doc(doc: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``doc`` with the dispute games and the fixed-point step times (printed on the way);
    a game that failed (a move refused, a claim not made) is the document's error."""
    doc |= _compute_dispute.figures(args)
    failed = [g for g in doc["dispute"]["games"] if "error" in g]
    if failed and doc.get("error") is None:
        doc["error"] = f"dispute game wrong at {failed[0]['corrupt_op']}: {failed[0]['error']}"
    return doc


if __name__ == "__main__":
    sys.exit(main())
