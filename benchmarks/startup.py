"""Start-up time of the everyday commands, against a bare interpreter as the peer.

    python benchmarks/startup.py [--runs N] [--json-out FILE]

Times, in one run and as separate processes, ``sahara --version``, ``sahara --help``,
``sahara --json id list`` (in a throwaway home that this script creates and removes) and
the peer ``python -c pass`` on the same interpreter. Each command runs twice to warm
the file-system cache, then N times (default 20); the rounds interleave the commands so
that a slow moment of the machine hits all of them alike.

Prints a table (median, 90th percentile and minimum in milliseconds, the median's ratio
to the peer, and the target where there is one), then the same figures as one JSON
document. ``--json-out FILE`` also writes that document to FILE. The exit status is 0
whether or not a target is met (timings vary between machines); it is 1 only when a
command fails. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import finish

WARMUP_RUNS = 2
DEFAULT_RUNS = 20
PEER = "python -c pass"


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    target_ms: float | None = None


def find_sahara() -> str:
    """The ``sahara`` script next to this interpreter (its venv), else the one on PATH."""
    beside = shutil.which("sahara", path=str(Path(sys.executable).parent))
    found = beside or shutil.which("sahara")
    if found is None:
        sys.exit("error: no 'sahara' executable next to this Python or on PATH")
    return found


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without SAHARA_* settings, with a throwaway home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    env["SAHARA_HOME"] = str(home)
    env["COLUMNS"] = "80"
    return env


def prepare_home(sahara: str, env: dict[str, str]) -> None:
    """Initialise the throwaway home with one ID, so ``id list`` has a keystore to read."""
    setup_env = {**env, "SAHARA_PASSWORD": "benchmark", "SAHARA_IDENTITY_SCRYPT_N": "1024"}
    done = subprocess.run(
        [sahara, "--no-prompt", "init"], env=setup_env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"error: 'sahara init' failed ({done.returncode}):\n{done.stderr}")


def time_once(case: Case, env: dict[str, str]) -> float:
    """Wall-clock milliseconds of one run of ``case``; exits when the command fails."""
    start = time.perf_counter_ns()
    done = subprocess.run(case.argv, env=env, capture_output=True, check=False)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace")
        sys.exit(f"error: '{case.name}' exited {done.returncode}:\n{stderr}")
    return elapsed


def percentile(samples: list[float], fraction: float) -> float:
    """Linear-interpolated percentile of ``samples`` (``fraction`` in 0..1)."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def measure(cases: list[Case], env: dict[str, str], runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {case.name: [] for case in cases}
    for round_no in range(WARMUP_RUNS + runs):
        for case in cases:
            elapsed = time_once(case, env)
            if round_no >= WARMUP_RUNS:
                samples[case.name].append(elapsed)
    return samples


def summarise(cases: list[Case], samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    peer_median = statistics.median(samples[PEER])
    rows = []
    for case in cases:
        values = samples[case.name]
        median = statistics.median(values)
        rows.append(
            {
                "command": case.name,
                "median_ms": round(median, 1),
                "p90_ms": round(percentile(values, 0.9), 1),
                "min_ms": round(min(values), 1),
                "ratio_to_peer": round(median / peer_median, 2),
                "target_ms": case.target_ms,
                "passed": None if case.target_ms is None else median <= case.target_ms,
            }
        )
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    header = ["command", "median ms", "p90 ms", "min ms", "x peer", "target", "result"]
    body = []
    for row in rows:
        target = row["target_ms"]
        body.append(
            [
                row["command"],
                f"{row['median_ms']:.1f}",
                f"{row['p90_ms']:.1f}",
                f"{row['min_ms']:.1f}",
                f"{row['ratio_to_peer']:.2f}",
                "-" if target is None else f"<= {target:.0f} ms",
                "-" if row["passed"] is None else ("pass" if row["passed"] else "FAIL"),
            ]
        )
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in body)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help="timed runs per command (default 20)"
    )
    parser.add_argument("--json-out", type=Path, help="also write the JSON document to FILE")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    sahara = find_sahara()
    cases = [
        Case("sahara --version", [sahara, "--version"], target_ms=150.0),
        Case("sahara --help", [sahara, "--help"], target_ms=300.0),
        Case("sahara --json id list", [sahara, "--json", "id", "list"]),
        Case(PEER, [sys.executable, "-c", "pass"]),
    ]
    with tempfile.TemporaryDirectory(prefix="sahara-bench-") as tmp:
        env = clean_env(Path(tmp) / "home")
        prepare_home(sahara, env)
        samples = measure(cases, env, args.runs)
    rows = summarise(cases, samples)

    document = {
        "benchmark": "startup",
        "runs": args.runs,
        "warmup_runs": WARMUP_RUNS,
        "peer": PEER,
        "python": platform.python_version(),
        "interpreter": sys.executable,
        "platform": platform.platform(),
        "sahara": sahara,
        "results": rows,
        "all_targets_met": all(row["passed"] is not False for row in rows),
    }
    print(render_table(rows))
    print()
    return finish(document, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
