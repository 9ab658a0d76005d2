"""Tokens/s and time to first token of an agent's answer, against bare llama.cpp.

    python benchmarks/agent.py [--model FILE.gguf] [--tokens N] [--runs R] [--threads T]
                               [--json-out FILE]

Both sides load the same GGUF with the same context size and thread counts, and answer
the same chats for the same number of tokens at temperature 0, in alternating runs (a
new question each run, so neither side answers from a prompt it has cached whole):

  bare     llama_cpp.Llama.create_chat_completion(stream=True): the peer
  agent    the path of 'sahara agent chat': an agent (no tools, no retrieval, no
           long-term memory, so retrieval is excluded as the target says) opened with
           sahara_cli.agent.brain.open_agent, answering through Agent.ask(on_delta=...)

Then, unless --no-process, whole commands from start to exit: 'sahara agent chat
--message' against a Python process that loads the model with llama_cpp and answers.

For each run: time to first token (from the call to the first text delta), and decode
tokens/s (tokens after the first / time from the first token to the last). The medians
are compared: targets are tokens/s >= 0.95x bare and added time to first token <= 50 ms.

Without --model the benchmark writes a small random llama GGUF (hidden 512, 8 layers,
float32, about 100 MB) with sahara_cli.agent.runners.tiny_models, so it runs offline; pass a real
GGUF for figures that mean more. Prints a table, then one JSON document.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import finish  # noqa: E402

from sahara_cli.agent.runners.llama import physical_cores  # noqa: E402
from sahara_cli.agent.runners.tiny_models import TinyShape, write_tiny_gguf  # noqa: E402
from sahara_cli.agent.spec import AgentSpec  # noqa: E402

SYSTEM = "You are a concise assistant."
QUESTION = "Describe the evening habits of quokkas on Rottnest Island in a few sentences."
N_CTX = 2048


def question(run: int) -> str:
    """A different question each run, the same for both sides: neither can answer from
    a prompt it has cached whole, and both reuse the shared system-prompt prefix."""
    return f"{QUESTION} (Run {run}.)"


def bare_run(llm: Any, tokens: int, run: int) -> dict[str, float]:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question(run)},
    ]
    start = time.perf_counter()
    first = last = 0.0
    count = 0
    for chunk in llm.create_chat_completion(
        messages, stream=True, max_tokens=tokens, temperature=0.0, seed=1
    ):
        delta = chunk["choices"][0]["delta"].get("content")
        if not delta:
            continue
        now = time.perf_counter()
        if count == 0:
            first = now
        last = now
        count += 1
    return _figures(start, first, last, count)


def agent_run(agent: Any, run: int) -> dict[str, float]:
    times: list[float] = []
    start = time.perf_counter()
    answer = agent.ask(question(run), on_delta=lambda _d: times.append(time.perf_counter()))
    agent.short_term.clear()  # every run answers the same one-message chat
    count = answer.completion_tokens
    if not times:
        return _figures(start, start, start, 0)
    return _figures(start, times[0], times[-1], count)


BARE_PROCESS = """
import sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_threads=int(sys.argv[3]),
                      n_threads_batch=int(sys.argv[3]), seed=1, verbose=False)
out = llm.create_chat_completion(
    [{"role": "system", "content": sys.argv[4]}, {"role": "user", "content": sys.argv[5]}],
    max_tokens=int(sys.argv[6]), temperature=0.0, seed=1)
print(out["choices"][0]["message"]["content"])
"""


def process_runs(home: Path, model: Path, threads: int, tokens: int, runs: int) -> dict[str, Any]:
    """Whole commands, start to exit: 'sahara agent chat --message' against a Python
    process that loads the model with llama_cpp and answers (start-up included)."""
    import subprocess

    def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        return time.perf_counter() - start

    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    env["SAHARA_HOME"] = str(home)
    sahara = [sys.executable, "-m", "sahara_cli", "--json", "--no-prompt", "agent", "chat"]
    bare = [sys.executable, "-c", BARE_PROCESS, str(model), str(N_CTX), str(threads), SYSTEM]
    out: dict[str, list[float]] = {"bare": [], "agent": []}
    for run in range(1, runs + 1):
        out["bare"].append(timed([*bare, question(run), str(tokens)]))
        out["agent"].append(timed([*sahara, "bench", "--message", question(run)], env))
    return {side: round(statistics.median(v), 3) for side, v in out.items()} | {"raw": out}


def _figures(start: float, first: float, last: float, count: int) -> dict[str, float]:
    decode = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return {"ttft_ms": (first - start) * 1000, "tokens": count, "tokens_per_s": decode}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a GGUF (default: a small random one)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per answer")
    parser.add_argument("--runs", type=int, default=5, help="runs per side (after a warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: cores)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    parser.add_argument("--no-process", action="store_true", help="skip the whole-command timings")
    args = parser.parse_args()

    import llama_cpp

    from sahara_cli.agent.brain import open_agent

    threads = args.threads or physical_cores()
    with tempfile.TemporaryDirectory(prefix="sahara-bench-agent-") as tmp:
        model = args.model
        if model is None:
            model = write_tiny_gguf(
                Path(tmp) / "small.gguf",
                seed=7,
                shape=TinyShape(hidden=512, layers=8, heads=8, kv_heads=4, ffn=1536),
            )
        bare = llama_cpp.Llama(
            model_path=str(model),
            n_ctx=N_CTX,
            n_threads=threads,
            n_threads_batch=threads,
            seed=1,
            verbose=False,
        )
        spec = AgentSpec.model_validate(
            {
                "name": "bench",
                "persona": SYSTEM,
                "model": {"name": str(model), "n_ctx": N_CTX, "threads": threads},
                "generation": {"max_tokens": args.tokens, "temperature": 0.0, "seed": 1},
                "tools": {"builtin": []},
                "memory": {"long_term": False, "feedback_examples": 0},
                "vault": {"search": False, "top_k": 0},
                "loop": {"max_steps": 0},
            }
        )
        home = Path(tmp) / "home"
        home.mkdir()
        from sahara_cli.agent.spec import AgentStore

        AgentStore(home).save(spec)
        agent = open_agent(home, spec)
        results: dict[str, list[dict[str, float]]] = {"bare": [], "agent": []}
        try:
            bare_run(bare, args.tokens, 0)  # warm-up: first-call allocations
            agent_run(agent, 0)
            for run in range(1, args.runs + 1):
                results["bare"].append(bare_run(bare, args.tokens, run))
                results["agent"].append(agent_run(agent, run))
        finally:
            agent.close()
            bare.close()
        processes = None if args.no_process else process_runs(home, model, threads, args.tokens, 3)

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    summary = {
        side: {
            "ttft_ms": round(med(side, "ttft_ms"), 2),
            "tokens_per_s": round(med(side, "tokens_per_s"), 1),
            "tokens": round(med(side, "tokens")),
        }
        for side in results
    }
    ratio = summary["agent"]["tokens_per_s"] / summary["bare"]["tokens_per_s"]
    added = summary["agent"]["ttft_ms"] - summary["bare"]["ttft_ms"]
    doc = {
        "benchmark": "agent",
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": threads},
        "model": str(model) if args.model else "random llama GGUF, hidden 512, 8 layers, f32",
        "runs": args.runs,
        "tokens": args.tokens,
        "results": summary,
        "raw": results,
        "process_seconds": processes,
        "tokens_per_s_ratio": round(ratio, 3),
        "added_ttft_ms": round(added, 2),
        "targets": {
            "tokens_per_s_ratio": ">= 0.95",
            "added_ttft_ms": "<= 50",
            "met": ratio >= 0.95 and added <= 50,
        },
    }
    print(f"{'side':8} {'ttft ms':>10} {'tokens/s':>10} {'tokens':>8}")
    for side, row in summary.items():
        print(f"{side:8} {row['ttft_ms']:>10.2f} {row['tokens_per_s']:>10.1f} {row['tokens']:>8}")
    print(f"tokens/s ratio {ratio:.3f} (target >= 0.95); added ttft {added:.2f} ms (<= 50)")
    if processes is not None:
        print(
            f"whole command, start to exit (median of 3): bare {processes['bare']:.2f} s, "
            f"sahara agent chat {processes['agent']:.2f} s"
        )
    return finish(doc, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
