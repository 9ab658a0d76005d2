"""Compiled protocol contracts: ABIs, bytecode and their fixed genesis addresses.

Each ``contracts/<Name>.vy`` has a committed ``contracts/<Name>.json`` with its ABI, its
deployment bytecode and its runtime bytecode (what genesis places at the address named
in ``contracts/deployment.json``). Rebuild or check them with::

    python -m sahara_cli.protocol.artifacts           rewrite every artifact
    python -m sahara_cli.protocol.artifacts --check   exit 1 if one is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
MANIFEST = CONTRACTS_DIR / "deployment.json"
NAMES = ("AssetRegistry", "Receipts", "Licensing", "Attribution", "Provenance")
#: The name each contract uses for the others in its constants.
CONSTANT_NAMES = {
    "REGISTRY": "AssetRegistry",
    "RECEIPTS": "Receipts",
    "LICENSING": "Licensing",
    "ATTRIBUTION": "Attribution",
    "PROVENANCE": "Provenance",
    "TRAINING_SAP": "TrainingRecord",
    "INFERENCE_SAP": "InferenceRecord",
}


@cache
def addresses() -> dict[str, str]:
    """Contract name to checksummed address, as every sahara genesis deploys them."""
    data: dict[str, Any] = json.loads(MANIFEST.read_text())
    return dict(data["contracts"])


@cache
def sap_addresses() -> dict[str, str]:
    """SAP name to checksummed address: the node's precompiles the contracts call."""
    data: dict[str, Any] = json.loads(MANIFEST.read_text())
    return dict(data.get("saps", {}))


@cache
def artifact(name: str) -> dict[str, Any]:
    """``{"abi": [...], "bytecode": "0x...", "bytecode_runtime": "0x...", ...}``; a SAP
    (the node's own code, no bytecode) has its ``abi`` only."""
    if name in sap_addresses():
        from sahara_cli.node.saps import abi

        return {"abi": abi(name)}
    if name not in NAMES:
        raise KeyError(f"no protocol contract named {name!r}")
    loaded: dict[str, Any] = json.loads((CONTRACTS_DIR / f"{name}.json").read_text())
    return loaded


def compile_contract(source: Path) -> dict[str, Any]:
    """Compile one Vyper source with the vyper CLI (offline, about 0.2 s)."""
    done = subprocess.run(  # noqa: S603 (our own interpreter and file names)
        [sys.executable, "-m", "vyper", "-f", "abi,bytecode,bytecode_runtime", source.name],
        cwd=source.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"vyper failed on {source.name}:\n{done.stderr}")
    abi_line, bytecode, runtime = done.stdout.strip().splitlines()
    return {
        "contract": source.stem,
        "compiler": f"vyper {_vyper_version()}",
        "abi": json.loads(abi_line),
        "bytecode": bytecode.strip(),
        "bytecode_runtime": runtime.strip(),
    }


def _vyper_version() -> str:
    from importlib.metadata import version

    return version("vyper")


def constant_mismatches(source: Path) -> list[str]:
    """Address constants in ``source`` that differ from the deployment manifest."""
    wanted = {**addresses(), **sap_addresses()}
    problems = []
    pattern = re.compile(r"^(\w+): constant\(address\) = (0x[0-9a-fA-F]{40})", re.MULTILINE)
    for const, value in pattern.findall(source.read_text()):
        target = CONSTANT_NAMES.get(const)
        if target is not None and value != wanted[target]:
            problems.append(f"{source.name}: {const} is {value}, manifest says {wanted[target]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build or check the protocol artifacts.")
    parser.add_argument("--check", action="store_true", help="fail if an artifact is stale")
    args = parser.parse_args(argv)
    stale = []
    for name in NAMES:
        source = CONTRACTS_DIR / f"{name}.vy"
        problems = constant_mismatches(source)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        built = compile_contract(source)
        target = CONTRACTS_DIR / f"{name}.json"
        text = json.dumps(built, indent=1, sort_keys=True) + "\n"
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
            print(f"wrote {target.name} ({len(built['bytecode_runtime']) // 2 - 1} bytes runtime)")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
