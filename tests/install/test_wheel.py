"""The built wheel is all a user needs: it carries its package data, installs into a fresh
venv with only its declared dependencies, and ``sahara`` runs from there in a clean
environment, far from the source tree.

The dependencies come from the uv cache, offline, as the hash-pinned entries of
``requirements/lock.txt`` that the wheel's own ``Requires-Dist`` needs (followed
transitively, without the ``dev`` extra): a package the code imports but the wheel does
not declare is missing there, and ``uv pip check`` fails on a declared one the lock does
not satisfy. (``uv pip install --offline wheel -c lock.txt`` would resolve instead, but
uv's cache holds the wheels the set-up synced, not the index metadata a resolve reads.)
"""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import sahara_cli
from tests.install.tools import CACHE, ROOT, clean_env, run, uv
from tests.schemas import check

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

UV_CACHE = os.environ.get("UV_CACHE_DIR") or str(CACHE / "uv-cache")
PASSWORD = "wheel test password"


def runtime_closure(requires: list[str]) -> set[str]:
    """Canonical names of ``requires`` and everything they need, extras followed, markers
    evaluated for this Python; the metadata is that of the running environment's packages."""
    names: set[str] = set()
    seen: set[tuple[str, str]] = set()
    todo = [(Requirement(text), "") for text in requires]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        names.add(name)
        for wanted in ("", *sorted(requirement.extras)):
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            needs = metadata.distribution(name).requires or []
            todo.extend((Requirement(text), wanted) for text in needs)
    return names


def lock_entries(path: Path) -> dict[str, str]:
    """Each requirement block of a hashed lock file (name line, hashes, comments), by name."""
    blocks: dict[str, str] = {}
    current = ""
    for line in path.read_text().splitlines(keepends=True):
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==", line)
        if match:
            current = canonicalize_name(match.group(1))
            blocks[current] = line
        elif current and line.startswith(" "):
            blocks[current] += line
    return blocks


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # The backend (hatchling) is the hash-pinned one of this environment: nothing fetched.
    run(
        [
            *(uv(), "build", "--wheel", "--offline", "--no-build-isolation"),
            *("--python", sys.executable, "-o", out, ROOT),
        ],
        env=clean_env(UV_CACHE_DIR=UV_CACHE),
    )
    (built,) = out.glob("sahara_cli-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel and its runtime dependencies from the lock; its bin/."""
    work = tmp_path_factory.mktemp("fresh")
    venv = work / "venv"
    env = clean_env(UV_CACHE_DIR=UV_CACHE)
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = archive.read(name).decode()
    requires = [
        line.split(":", 1)[1].strip()
        for line in meta.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    needed = runtime_closure(requires)
    locked = lock_entries(ROOT / "requirements" / "lock.txt")
    assert needed <= set(locked), f"declared but not locked: {sorted(needed - set(locked))}"
    runtime = work / "runtime.txt"
    runtime.write_text("".join(locked[n] for n in sorted(needed)))

    run([uv(), "venv", "--quiet", "--python", sys.executable, venv], env=env)
    python = venv / "bin" / "python"
    run(
        [
            *(uv(), "pip", "sync", "--quiet", "--offline", "--require-hashes"),
            *("--python", python, runtime),
        ],
        env=env,
    )
    run(
        [uv(), "pip", "install", "--quiet", "--offline", "--no-deps", "--python", python, wheel],
        env=env,
    )
    run([uv(), "pip", "check", "--python", python], env=env)
    return venv / "bin"


def test_wheel_carries_every_file_of_the_package(wheel: Path) -> None:
    """Templates, samples, contract artifacts and type stubs: what the source tree has."""
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    source = ROOT / "sahara_cli"
    expected = {
        f"sahara_cli/{p.relative_to(source).as_posix()}"
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    expected |= {
        f"sahara_cli/{p.relative_to(ROOT).as_posix()}"
        for p in (ROOT / "templates").rglob("*")
        if p.is_file()
    }
    assert expected - inside == set()
    assert any(n.startswith("sahara_cli/samples/") for n in inside)
    assert any(n.startswith("sahara_cli/templates/agents/") for n in inside)


def test_fresh_venv_runs_sahara_in_a_clean_environment(fresh: Path, tmp_path: Path) -> None:
    env = clean_env(fresh)
    password = tmp_path / "password.txt"
    password.write_text(PASSWORD + "\n")
    pw = ("--password-file", str(password))
    home = ("--home", str(tmp_path / "home"))

    def sahara(*args: str) -> dict:
        result = run([fresh / "sahara", *home, "--json", "--no-prompt", *args], env, cwd=tmp_path)
        document = json.loads(result.stdout)
        check(args, document)
        return document

    # The package is the installed one, not the source tree.
    where = run(
        [fresh / "python", "-c", "import sahara_cli; print(sahara_cli.__file__)"], env, cwd=tmp_path
    )
    assert where.stdout.strip().startswith(str(fresh.parent)), where.stdout
    version = run([fresh / "sahara", "--version"], env, cwd=tmp_path)
    assert version.stdout.strip() == f"sahara {sahara_cli.__version__}"

    assert sahara("init", *pw)["created"] is True
    report = sahara("doctor")
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert report["ok"], report
    assert statuses["dependencies"] == "ok", report
    python = next(c for c in report["checks"] if c["name"] == "python")
    assert str(fresh.parent) in python["detail"], python

    # Package data at work: the agent templates, and the protocol contracts a dev chain
    # deploys at genesis.
    templates = sahara("agent", "templates")
    assert "researcher" in json.dumps(templates), templates
    sahara("agent", "create", "scout", "--template", "researcher")
    port = run(
        [
            fresh / "python",
            "-c",
            "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])",
        ],
        env,
    ).stdout.strip()
    try:
        sahara("node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}", *pw)
        sahara("config", "set", "node.rpc_url", f"http://127.0.0.1:{port}")
        assert sahara("market", "list") is not None
    finally:
        run([fresh / "sahara", *home, "--no-prompt", "node", "stop"], env, cwd=tmp_path)
