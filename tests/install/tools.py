"""What the install tests share: the project's cache, its pinned uv, a clean environment.

The cache is read at import, before the root conftest clears SAHARA_* for each test.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_XDG = os.environ.get("XDG_CACHE_HOME")
DEFAULT_CACHE = (Path(_XDG) if _XDG else Path.home() / ".cache") / "sahara"
CACHE = Path(os.environ.get("SAHARA_CACHE") or DEFAULT_CACHE)


def uv() -> str:
    """The uv that scripts/_setup.sh pinned; the test is skipped before the set-up ran."""
    path = CACHE / "tools-uv" / "bin" / "uv"
    if not path.is_file():
        pytest.skip(f"no pinned uv in {CACHE}: run scripts/test once")
    return str(path)


def clean_env(bin_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """A new login shell: HOME and PATH (``bin_dir`` first), the cache only when moved."""
    path = "/usr/bin:/bin" if bin_dir is None else f"{bin_dir}:/usr/bin:/bin"
    env = {"HOME": str(Path.home()), "PATH": path}
    if CACHE != DEFAULT_CACHE:
        env["SAHARA_CACHE"] = str(CACHE)
    return env | extra


def run(
    args: Sequence[str | Path], env: dict[str, str], cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``args``; fail the test with its output when it exits non-zero."""
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result
