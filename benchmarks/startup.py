"""Start-up time of every command, against a bare interpreter as the peer.

    python benchmarks/startup.py [--runs N] [--json-out FILE] [--only-help PREFIX]

Times, in one run and as separate processes:

- ``sahara --version`` and ``sahara --help``;
- ``sahara COMMAND --help`` for every group and every command of the app (the list comes
  from walking the app itself, so a new command is measured without editing this script);
- ``sahara --json id list`` and ``sahara balance`` (the default ID's balance) against a
  development node that this script starts with ``sahara node start --dev`` in a throwaway
  home, and stops and removes at the end;
- the peer ``python -c pass`` on the same interpreter.

Each command runs once to warm the file-system cache, then N times (default 5); the rounds
interleave the commands so that a slow moment of the machine hits all of them alike.

Targets (issue 16): every command's ``--help`` <= 150 ms, ``sahara balance`` <= 250 ms
(the fixed cost before a command does its work, measured with the node's answer in it).
Prints a table (median, minimum in milliseconds, the median's ratio to the peer and the
target), the per-command ``--help`` figures summarised as max and median over the commands
with the slowest few, then every figure as one JSON document. ``--json-out FILE`` also
writes the document to FILE. The exit status is 0 whether or not a target is met (timings
vary between machines); it is 1 only when a command fails. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import finish, say

WARMUP_RUNS = 1
DEFAULT_RUNS = 5
PEER = "python -c pass"
HELP_TARGET_MS = 150.0
BALANCE_TARGET_MS = 250.0
SLOWEST = 5
PASSWORD = "benchmark"  # a throwaway home's password

#: Prints every command path of the app, groups first, one per line (walks it lazily).
WALK = """
import typer
from sahara_cli.commands.main import app

def walk(group, ctx, path):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        print(" ".join([*path, name]))
        if hasattr(command, "list_commands"):
            walk(command, ctx, [*path, name])

root = typer.main.get_command(app)
walk(root, typer.Context(root), [])
"""


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    target_ms: float | None = None
    kind: str = "other"  # "help" for a command's --help


def find_sahara() -> str:
    """The ``sahara`` script next to this interpreter (its venv), else the one on PATH."""
    beside = shutil.which("sahara", path=str(Path(sys.executable).parent))
    found = beside or shutil.which("sahara")
    if found is None:
        sys.exit("error: no 'sahara' executable next to this Python or on PATH")
    return found


def clean_env(home: Path, rpc_url: str) -> dict[str, str]:
    """The caller's environment without SAHARA_* settings, with a throwaway home and node.

    Bytecode is cached (``PYTHONDONTWRITEBYTECODE`` dropped), as in an installed package:
    the warm-up run writes the ``.pyc`` files that the timed runs read.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["SAHARA_HOME"] = str(home)
    env["SAHARA_NODE_RPC_URL"] = rpc_url
    env["COLUMNS"] = "80"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_checked(argv: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"error: {what} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def command_paths(env: dict[str, str]) -> list[list[str]]:
    """Every group and command of the app, as argument lists."""
    out = run_checked([sys.executable, "-c", WALK], env, "walking the app")
    return [line.split() for line in out.splitlines() if line.strip()]


def start_node(sahara: str, env: dict[str, str], port: int) -> None:
    """Initialise the home with one ID and start a development node on ``port``."""
    setup = {**env, "SAHARA_PASSWORD": PASSWORD, "SAHARA_IDENTITY_SCRYPT_N": "1024"}
    run_checked([sahara, "--no-prompt", "init"], setup, "'sahara init'")
    argv = [sahara, "--no-prompt", "node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}"]
    run_checked(argv, setup, "'sahara node start --dev'")


def stop_node(sahara: str, env: dict[str, str]) -> None:
    subprocess.run([sahara, "node", "stop"], env=env, capture_output=True, check=False)


def time_once(case: Case, env: dict[str, str]) -> float:
    """Wall-clock milliseconds of one run of ``case``; exits when the command fails."""
    start = time.perf_counter_ns()
    done = subprocess.run(case.argv, env=env, capture_output=True, check=False)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace")
        sys.exit(f"error: '{case.name}' exited {done.returncode}:\n{stderr}")
    return elapsed


def measure(cases: list[Case], env: dict[str, str], runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {case.name: [] for case in cases}
    for round_no in range(WARMUP_RUNS + runs):
        say(f"round {round_no + 1} of {WARMUP_RUNS + runs} ({len(cases)} commands)")
        for case in cases:
            elapsed = time_once(case, env)
            if round_no >= WARMUP_RUNS:
                samples[case.name].append(elapsed)
    return samples


def row(case: Case, values: list[float], peer_median: float) -> dict[str, Any]:
    median = statistics.median(values)
    return {
        "command": case.name,
        "kind": case.kind,
        "median_ms": round(median, 1),
        "min_ms": round(min(values), 1),
        "ratio_to_peer": round(median / peer_median, 2),
        "target_ms": case.target_ms,
        "passed": None if case.target_ms is None else median <= case.target_ms,
    }


def help_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    helps = [r for r in rows if r["kind"] == "help"]
    medians = [r["median_ms"] for r in helps]
    slowest = sorted(helps, key=lambda r: r["median_ms"], reverse=True)[:SLOWEST]
    return {
        "commands": len(helps),
        "max_ms": max(medians),
        "median_ms": round(statistics.median(medians), 1),
        "target_ms": HELP_TARGET_MS,
        "failing": sum(1 for r in helps if not r["passed"]),
        "passed": all(r["passed"] for r in helps),
        "slowest": [{"command": r["command"], "median_ms": r["median_ms"]} for r in slowest],
    }


def render_table(rows: list[dict[str, Any]]) -> str:
    header = ["command", "median ms", "min ms", "x peer", "target", "result"]
    body = []
    for r in rows:
        target = r["target_ms"]
        body.append(
            [
                r["command"],
                f"{r['median_ms']:.1f}",
                f"{r['min_ms']:.1f}",
                f"{r['ratio_to_peer']:.2f}",
                "-" if target is None else f"<= {target:.0f} ms",
                "-" if r["passed"] is None else ("pass" if r["passed"] else "FAIL"),
            ]
        )
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in body)])


def render_summary(summary: dict[str, Any], peer_median: float) -> str:
    verdict = "pass" if summary["passed"] else f"FAIL ({summary['failing']} over)"
    lines = [
        f"every command's --help ({summary['commands']} commands, target <= "
        f"{summary['target_ms']:.0f} ms): max {summary['max_ms']:.1f} ms "
        f"({summary['max_ms'] / peer_median:.2f}x peer), median "
        f"{summary['median_ms']:.1f} ms ({summary['median_ms'] / peer_median:.2f}x peer): "
        f"{verdict}",
        "slowest:",
    ]
    lines += [f"  {s['command']:<40} {s['median_ms']:>8.1f} ms" for s in summary["slowest"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help=f"timed runs per command ({DEFAULT_RUNS})"
    )
    parser.add_argument("--json-out", type=Path, help="also write the JSON document to FILE")
    parser.add_argument(
        "--only-help", metavar="PREFIX", help="time --help only of commands under PREFIX"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    # A stopped benchmark still stops its node (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("error: stopped"))
    sahara = find_sahara()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sahara-bench-") as tmp:
        env = clean_env(Path(tmp) / "home", f"http://127.0.0.1:{port}")
        paths = command_paths(env)
        if args.only_help:
            paths = [p for p in paths if " ".join(p).startswith(args.only_help)]
        say(f"{len(paths)} commands; starting a development node on port {port}")
        start_node(sahara, env, port)
        try:
            fixed = [
                Case(PEER, [sys.executable, "-c", "pass"]),
                Case("sahara --version", [sahara, "--version"]),
                Case("sahara --help", [sahara, "--help"], HELP_TARGET_MS, "help"),
                Case("sahara balance", [sahara, "balance"], BALANCE_TARGET_MS),
                Case("sahara --json id list", [sahara, "--json", "id", "list"]),
            ]
            helps = [
                Case(f"sahara {' '.join(p)} --help", [sahara, *p, "--help"], HELP_TARGET_MS, "help")
                for p in paths
            ]
            cases = fixed + helps
            samples = measure(cases, env, args.runs)
        finally:
            stop_node(sahara, env)
    peer_median = statistics.median(samples[PEER])
    rows = [row(case, samples[case.name], peer_median) for case in cases]
    summary = help_summary(rows)
    balance = next(r for r in rows if r["command"] == "sahara balance")

    document = {
        "benchmark": "startup",
        "runs": args.runs,
        "warmup_runs": WARMUP_RUNS,
        "peer": PEER,
        "peer_median_ms": round(peer_median, 1),
        "python": platform.python_version(),
        "interpreter": sys.executable,
        "platform": platform.platform(),
        "sahara": sahara,
        "targets": {
            "help_ms": HELP_TARGET_MS,
            "help_met": summary["passed"],
            "balance_ms": BALANCE_TARGET_MS,
            "balance_met": balance["passed"],
        },
        "help_summary": summary,
        "results": rows,
        "all_targets_met": summary["passed"] and bool(balance["passed"]),
    }
    print(render_table([r for r in rows if r["kind"] != "help" or r["command"] == "sahara --help"]))
    print()
    print(render_summary(summary, peer_median))
    print()
    return finish(document, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
