"""The set-up scripts install nothing that is not pinned by hash.

Everything the project installs comes from three hash-locked files: the installer (uv)
from ``requirements/bootstrap.txt``, the packages from ``requirements/lock.txt``, and the
build backend from ``requirements/build.txt``. These tests read the scripts as they are
run, so an install line that drops the hash check fails here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "_setup.sh"
LOCKS = ["bootstrap.txt", "lock.txt", "build.txt"]


def _commands(script: str) -> list[str]:
    """The script's commands with line continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [line.strip() for line in joined.splitlines() if not line.strip().startswith("#")]


def _requirements(path: Path) -> dict[str, list[str]]:
    """``name==version`` of each requirement in a lock file, with its hashes."""
    entries: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\],]+==[^ \\]+)", line)
        if match:
            current = match.group(1)
            entries[current] = []
        elif current and (found := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            entries[current].append(found.group(1))
    return entries


@pytest.mark.parametrize("name", LOCKS)
def test_every_locked_requirement_carries_a_hash(name: str) -> None:
    entries = _requirements(ROOT / "requirements" / name)
    assert entries, f"{name} lists no requirement"
    unhashed = [req for req, hashes in entries.items() if not hashes]
    assert not unhashed, f"{name}: no hash for {unhashed}"


def test_uv_is_bootstrapped_from_its_hash_pinned_file() -> None:
    installs = [c for c in _commands(SETUP.read_text()) if re.search(r"\bpip\" install\b", c)]
    assert installs, "the uv bootstrap is gone from scripts/_setup.sh"
    for command in installs:
        assert "--require-hashes" in command, command
        assert "requirements/bootstrap.txt" in command, command
        assert "uv==" not in command, f"uv installed by version alone: {command}"
    pinned = list(_requirements(ROOT / "requirements" / "bootstrap.txt"))
    assert len(pinned) == 1, pinned
    assert pinned[0].startswith("uv=="), pinned


def test_package_installs_require_hashes_or_fetch_nothing() -> None:
    commands = _commands(SETUP.read_text())
    syncs = [c for c in commands if '"$UV" pip sync' in c]
    assert syncs, "scripts/_setup.sh no longer syncs the lock"
    for command in syncs:
        assert "--require-hashes" in command, command
        assert "$BUILD_LOCK" in command, "the build backend is not installed from its lock"
    installs = [c for c in commands if '"$UV" pip install' in c]
    assert installs, "the editable install is gone"
    for command in installs:
        # A local editable build: nothing may be downloaded for it, the backend
        # included, so it builds with the hash-pinned one already installed.
        assert "--offline" in command, command
        assert "--no-build-isolation" in command, command


def test_build_backend_lock_matches_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = set(pyproject["build-system"]["requires"])
    locked = set(_requirements(ROOT / "requirements" / "build.txt"))
    assert wanted <= locked, f"build-system.requires {wanted} not all in build.txt {locked}"


def test_lock_files_agree_on_shared_packages() -> None:
    """A package in both the build lock and the main lock has one version and hash set."""
    main = _requirements(ROOT / "requirements" / "lock.txt")
    names = {req.split("==")[0].lower(): (req, hashes) for req, hashes in main.items()}
    for req, hashes in _requirements(ROOT / "requirements" / "build.txt").items():
        name = req.split("==")[0].lower()
        if name in names:
            assert names[name][0] == req, f"{req} against {names[name][0]} in lock.txt"
            assert set(hashes) == set(names[name][1]), f"{req}: hashes differ from lock.txt"
