"""Each checkout's own ``.venv``: scripts/_setup.sh links a clone into a light venv of its
own, layered on the shared package venv of the cache, so running the scripts in one clone
never re-points another's ``sahara``, and deleting a clone breaks no other. The prune of
old shared venvs keeps any that a checkout still uses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.install.tools import ROOT, clean_env, run

SETUP = ROOT / "scripts" / "_setup.sh"
#: What scripts/_setup.sh reads from a checkout (a copy of the working tree, not HEAD).
NEEDED = ["scripts", "requirements", "js/package.json", "js/package-lock.json"]
NEEDED += ["pyproject.toml", "README.md", "sahara_cli", "templates"]


def copy_checkout(target: Path) -> Path:
    for name in NEEDED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def setup_env() -> dict[str, str]:
    # The interpreter the shared venv was made with, so the clone computes the same key.
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    return clean_env(SAHARA_PYTHON=str(base))


def link(checkout: Path) -> list[str]:
    return (checkout / ".venv" / ".sahara-link").read_text().split()


@pytest.mark.e2e
@pytest.mark.slow
def test_a_deleted_clone_breaks_no_other(tmp_path: Path) -> None:
    own = ROOT / ".venv" / ".sahara-link"
    if not own.is_file():
        pytest.skip("this checkout has no .venv: run scripts/test once")
    shared = own.read_text().split()[0]
    first = copy_checkout(tmp_path / "first")
    second = copy_checkout(tmp_path / "second")
    for clone in (first, second):
        run(["bash", "-c", "source scripts/_setup.sh"], setup_env(), cwd=clone, timeout=600)
        assert link(clone) == [shared, str(clone)]
    assert own.read_text().split() == [shared, str(ROOT)], "this checkout's link moved"
    # The shared venv holds no sahara-cli that a clone could re-point.
    missing = subprocess.run(
        [f"{shared}/bin/python", "-c", "import importlib.metadata as m; m.version('sahara-cli')"],
        capture_output=True,
        env=clean_env(),
        check=False,
    )
    assert missing.returncode != 0

    shutil.rmtree(first)
    bin_dir = second / ".venv" / "bin"
    env = clean_env(bin_dir)
    assert run([bin_dir / "sahara", "--version"], env, cwd=tmp_path).stdout.startswith("sahara ")
    where = run(
        [bin_dir / "python", "-c", "import sahara_cli; print(sahara_cli.__file__)"],
        env,
        cwd=tmp_path,
    )
    assert where.stdout.strip() == str(second / "sahara_cli" / "__init__.py")
    password = tmp_path / "password.txt"
    password.write_text("clone password\n")
    init = run(
        [
            *(bin_dir / "sahara", "--home", tmp_path / "home", "--json", "--no-prompt"),
            *("init", "--password-file", password),
        ],
        env,
        cwd=tmp_path,
    )
    assert json.loads(init.stdout)["created"] is True
    # The checkout's commands run its own code: pytest's and mypy's scripts use .venv's Python.
    assert (bin_dir / "pytest").read_text().splitlines()[0] == f"#!{bin_dir}/python"


@pytest.mark.e2e
@pytest.mark.slow
def test_a_venv_the_scripts_did_not_make_is_left_alone(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / ".sahara-link").is_file():
        pytest.skip("this checkout has no .venv: run scripts/test once")
    clone = copy_checkout(tmp_path / "clone")
    mine = clone / ".venv" / "mine.txt"
    mine.parent.mkdir()
    mine.write_text("a user's own venv\n")
    result = subprocess.run(
        ["bash", "-c", "source scripts/_setup.sh"],
        capture_output=True,
        text=True,
        env=setup_env(),
        cwd=clone,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "was not made by these scripts" in result.stderr
    assert mine.read_text() == "a user's own venv\n"


def _prune(cache: Path, current: Path) -> None:
    """Run the script's prune (its two functions, as written there) over ``cache``."""
    script = SETUP.read_text()
    functions = "\n".join(
        script[
            script.index(f"{name}() {{") : script.index("\n}\n", script.index(f"{name}() {{")) + 3
        ]
        for name in ("venv_in_use", "prune_shared_venvs")
    )
    program = (
        f'say() {{ :; }}\n{functions}\nSAHARA_CACHE="{cache}"\nSAHARA_VENV="{current}"\n'
        "prune_shared_venvs\n"
    )
    subprocess.run(["bash", "-euc", program], check=True, env={"PATH": os.environ["PATH"]})


def test_prune_keeps_recent_and_used_shared_venvs(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    now = time.time()
    venvs = {}
    for age, name in enumerate(["current", "recent1", "recent2", "used", "stale", "left"]):
        venv = cache / f"venv-py3.11-{name}"
        (venv / ".checkouts").mkdir(parents=True)
        (venv / ".last-used").touch()
        os.utime(venv / ".last-used", (now - 3600 * age, now - 3600 * age))
        venvs[name] = venv
    # A checkout whose .venv layers on "used"; one that used "left" but moved on to "current".
    for checkout, venv in (("a", "used"), ("b", "left")):
        root = tmp_path / checkout
        (root / ".venv").mkdir(parents=True)
        (venvs[venv] / ".checkouts" / checkout).write_text(f"{root}\n")
    (tmp_path / "a" / ".venv" / ".sahara-link").write_text(f"{venvs['used']} {tmp_path / 'a'}\n")
    (tmp_path / "b" / ".venv" / ".sahara-link").write_text(f"{venvs['current']} {tmp_path / 'b'}\n")

    _prune(cache, venvs["current"])

    kept = sorted(p.name.removeprefix("venv-py3.11-") for p in cache.iterdir())
    assert kept == ["current", "recent1", "recent2", "used"]
