"""The torch runner against bare transformers ``generate``, on every device present.

    python benchmarks/torch_runner.py [--model DIR] [--tokens N] [--runs R]
                                      [--device cpu|cuda ...] [--json-out FILE]

For each device (the CPU, and CUDA when torch sees a GPU), both sides load the same
checkpoint and answer the same chats greedily for the same number of tokens, in
alternating runs, a new question each run:

  bare     model.generate(max_new_tokens=N, min_new_tokens=N, do_sample=False) with a
           streamer that timestamps each new token: the peer
  runner   sahara_cli.agent.runners.torch.TorchRunner.stream_chat, the path agents take

Figures per side: load seconds, time to first token, decode tokens/s (tokens after
the first over the time from the first token to the last). Then complete_json over a
tool-call schema for 20 seeds: how many parse and validate (needs jsonschema; skipped
with a note when it is missing).

Without --model it writes a random LlamaForCausalLM (--hidden 512, --layers 8) with
sahara_cli.agent.runners.tiny_models, so it runs offline. Prints a table, then one JSON document.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import finish  # noqa: E402

from sahara_cli.agent.runners.base import GenerationParams, RunnerOptions  # noqa: E402
from sahara_cli.agent.runners.tiny_models import TinyShape, write_tiny_transformers  # noqa: E402
from sahara_cli.agent.types import Message  # noqa: E402

SYSTEM = "You are a concise assistant."
QUESTION = "Describe the evening habits of quokkas on Rottnest Island."
SCHEMA = {
    "type": "object",
    "properties": {
        "tool": {"type": "string", "enum": ["vault_search", "calculator", "answer"]},
        "arguments": {
            "type": "object",
            "properties": {"query": {"type": "string", "maxLength": 40}, "k": {"type": "integer"}},
            "required": ["query", "k"],
        },
    },
    "required": ["tool", "arguments"],
}


def question(run: int) -> str:
    return f"{QUESTION} (Run {run}.)"


def figures(start: float, stamps: list[float]) -> dict[str, float]:
    count = len(stamps)
    first, last = (stamps[0], stamps[-1]) if stamps else (start, start)
    decode = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return {"ttft_ms": (first - start) * 1000, "tokens": count, "tokens_per_s": decode}


class Bare:
    def __init__(self, model_dir: Path, device: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
        self.model = model.to(device).eval()
        self.device = device
        self.load_s = time.perf_counter() - started

    def run(self, tokens: int, run: int) -> dict[str, float]:
        from transformers.generation.streamers import BaseStreamer

        stamps: list[float] = []

        class Stamp(BaseStreamer):  # type: ignore[misc]
            prompt_seen = False

            def put(self, value: Any) -> None:  # noqa: ARG002 - the token ids
                if not self.prompt_seen:  # generate() first hands over the prompt
                    self.prompt_seen = True
                    return
                stamps.append(time.perf_counter())

            def end(self) -> None:
                pass

        chat = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question(run)}]
        ids = self.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"].to(self.device)
        start = time.perf_counter()
        with self.torch.inference_mode():
            self.model.generate(
                ids,
                attention_mask=self.torch.ones_like(ids),
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                streamer=Stamp(),
                pad_token_id=self.tokenizer.eos_token_id,
            )
        return figures(start, stamps)


def runner_run(runner: Any, tokens: int, run: int) -> dict[str, float]:
    stamps: list[float] = []
    messages = [Message("system", SYSTEM), Message("user", question(run))]
    params = GenerationParams(max_tokens=tokens, temperature=0.0)
    start = time.perf_counter()
    for _delta in runner.stream_chat(messages, params):
        stamps.append(time.perf_counter())
    # A delta can hold more than one token (held back for stop strings): use the count.
    done = runner.last.completion_tokens
    out = figures(start, stamps)
    if stamps and done > 1 and stamps[-1] > stamps[0]:
        out["tokens_per_s"] = (done - 1) / (stamps[-1] - stamps[0])
    out["tokens"] = done
    return out


def json_rate(runner: Any, seeds: int) -> dict[str, Any]:
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        return {"skipped": "jsonschema is not installed"}
    ok = 0
    started = time.perf_counter()
    for seed in range(seeds):
        messages = [Message("user", "Pick a tool and its arguments.")]
        value = runner.complete_json(
            messages, SCHEMA, GenerationParams(max_tokens=96, temperature=0.8, seed=seed)
        )
        jsonschema.validate(value, SCHEMA)
        ok += 1
    return {"valid": ok, "of": seeds, "ms_per_call": (time.perf_counter() - started) * 1000 / seeds}


def bench_device(model_dir: Path, device: str, tokens: int, runs: int) -> dict[str, Any]:
    from sahara_cli.agent.runners.torch import TorchRunner

    bare = Bare(model_dir, device)
    started = time.perf_counter()
    runner = TorchRunner(model_dir, RunnerOptions(device=device, n_ctx=2048))
    runner_load = time.perf_counter() - started
    results: dict[str, list[dict[str, float]]] = {"bare": [], "runner": []}
    bare.run(tokens, 0)  # warm-up: kernels, allocations
    runner_run(runner, tokens, 0)
    for run in range(1, runs + 1):
        results["bare"].append(bare.run(tokens, run))
        results["runner"].append(runner_run(runner, tokens, run))
    summary: dict[str, Any] = {}
    for side, load in (("bare", bare.load_s), ("runner", runner_load)):
        rows = results[side]
        summary[side] = {
            "load_s": round(load, 3),
            "ttft_ms": round(statistics.median(r["ttft_ms"] for r in rows), 2),
            "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in rows), 1),
            "tokens": round(statistics.median(r["tokens"] for r in rows)),
        }
    summary["tokens_per_s_ratio"] = round(
        summary["runner"]["tokens_per_s"] / summary["bare"]["tokens_per_s"], 3
    )
    summary["json"] = json_rate(runner, 20)
    summary["raw"] = results
    runner.close()
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a save_pretrained directory")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per answer")
    parser.add_argument("--runs", type=int, default=5, help="runs per side (after a warm-up)")
    parser.add_argument("--device", action="append", help="devices (default: cpu, and cuda)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    parser.add_argument("--hidden", type=int, default=512, help="random model: hidden size")
    parser.add_argument("--layers", type=int, default=8, help="random model: layers")
    args = parser.parse_args()

    import torch

    devices = args.device or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    with tempfile.TemporaryDirectory(prefix="sahara-bench-torch-") as tmp:
        model = args.model or write_tiny_transformers(
            Path(tmp) / "small",
            seed=7,
            shape=TinyShape(
                hidden=args.hidden, layers=args.layers, heads=8, kv_heads=4, ffn=3 * args.hidden
            ),
        )
        per_device = {d: bench_device(model, d, args.tokens, args.runs) for d in devices}
    doc = {
        "benchmark": "torch_runner",
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "model": str(args.model)
        if args.model
        else f"random LlamaForCausalLM, hidden {args.hidden}, {args.layers} layers",
        "tokens": args.tokens,
        "runs": args.runs,
        "devices": per_device,
    }
    print(f"{'device':7} {'side':7} {'load s':>7} {'ttft ms':>9} {'tokens/s':>9} {'json':>10}")
    for device, row in per_device.items():
        for side in ("bare", "runner"):
            r = row[side]
            js = row["json"]
            rate = f"{js['valid']}/{js['of']}" if side == "runner" and "valid" in js else ""
            print(
                f"{device:7} {side:7} {r['load_s']:>7.2f} {r['ttft_ms']:>9.2f} "
                f"{r['tokens_per_s']:>9.1f} {rate:>10}"
            )
        print(f"{device:7} runner/bare tokens/s {row['tokens_per_s_ratio']:.3f}")
    return finish(doc, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
