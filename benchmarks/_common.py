"""What every benchmark script does the same way: progress lines on stderr, the machine
it ran on, picking figures out of a result, and printing the JSON document at the end."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def pick(result: dict[str, Any] | None, path: tuple[str, ...]) -> float | None:
    """The number at ``path`` in a nested result; None where a step or the number is missing."""
    value: Any = result
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, int | float) else None


def ratio_table(
    peer: dict[str, Any] | None,
    target: dict[str, Any] | None,
    rows: Sequence[tuple[str, tuple[str, ...], str]],
    names: Sequence[str],
    width: int,
) -> dict[str, float | None]:
    """Print each row's figure for the peer and the target and their ratio target/peer;
    return the ratios by path. ``rows`` are (label, path, which way is better)."""
    ratios: dict[str, float | None] = {}
    lines = [
        f"{'':<{width}}{'peer':>12}{'target':>12}",
        f"{'metric':<{width}}{names[0]:>12}{names[1]:>12}{'target/peer':>13}  better",
    ]
    for label, path, better in rows:
        p, t = pick(peer, path), pick(target, path)
        ratio = round(t / p, 3) if p and t is not None else None
        ratios["_".join(path)] = ratio
        cells = [f"{v:>12,.2f}" if v is not None else f"{'-':>12}" for v in (p, t)]
        ratio_cell = f"{ratio:>13.3f}" if ratio is not None else f"{'-':>13}"
        lines.append(f"{label:<{width}}{cells[0]}{cells[1]}{ratio_cell}  {better}")
    print("\n".join(lines))
    return ratios


def finish(doc: dict[str, Any], json_out: Path | None) -> int:
    """Print ``doc`` as JSON, also into ``json_out``; the exit status: 1 if it holds an error."""
    text = json.dumps(doc, indent=2)
    print(text)
    if json_out is not None:
        json_out.write_text(text + "\n", encoding="utf-8")
    if doc.get("error") is not None:
        say(f"error: {doc['error']}")
        return 1
    return 0
