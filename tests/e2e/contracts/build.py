"""Compile the end-to-end test contracts with the vyper CLI into ``<Name>.json``.

    python tests/e2e/contracts/build.py           rewrite every artifact
    python tests/e2e/contracts/build.py --check   exit 1 if an artifact is out of date

Each artifact is ``{"abi": [...], "bytecode": "0x..."}``, read by the web3.py and
ethers.js suites and by ``benchmarks/node_rpc.py``. ``tests/unit/test_e2e_contracts.py``
recompiles and compares, so a committed artifact cannot drift from its source.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCES = sorted(HERE.glob("*.vy"))


def compile_contract(source: Path) -> dict[str, Any]:
    """ABI and deployment bytecode of one Vyper source, from the vyper CLI."""
    from sahara_cli.protocol.artifacts import compile_contract as compile_full

    built = compile_full(source)
    return {"abi": built["abi"], "bytecode": built["bytecode"]}


def artifact_path(source: Path) -> Path:
    return source.with_suffix(".json")


def render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for source in SOURCES:
        text = render(compile_contract(source))
        target = artifact_path(source)
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
            print(f"wrote {target.name}")
    if stale:
        print(f"out of date: {', '.join(stale)} (run {Path(__file__).name})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
