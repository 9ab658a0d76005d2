"""``sahara setup kubo|cometbft``: build a pinned Go program into the project's cache.

The layout is the one :mod:`sahara_cli.gobin` looks in (and the test set-up script
writes): ``<cache>/go/bin-<name>-<version>/<executable>`` with a ``.complete`` file once
the build finished, Go's module cache in ``<cache>/go/mod`` and its build cache in
``<cache>/go/build`` (``GOMODCACHE`` / ``GOCACHE`` from the environment win, so a
machine's existing Go caches can be reused). The build goes to a temporary directory
next to the final one and is renamed into place, so an interrupted build leaves nothing
that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field

from sahara_cli.errors import GoBuildFailed, GoMissing, UsageError
from sahara_cli.gobin import BINARIES, GoBinary, cache_dir, cache_root
from sahara_cli.results import Result

__all__ = ["GoSetup", "binary_named", "go_install"]

GO_HINT = "Install Go 1.22 or newer (https://go.dev/dl/) and put 'go' on PATH."


class GoSetup(Result):
    """``sahara setup kubo|cometbft``: where the pinned build is and whether it was made now."""

    name: str = Field(description="kubo or cometbft")
    version: str = Field(description="the pinned version")
    module: str = Field(description="the Go module built with go install")
    path: str = Field(description="the executable")
    status: Literal["built", "present"] = Field(
        description="built: by this command; present: a complete build was there already"
    )
    build_s: float = Field(description="seconds the build took (0 when present)")


def binary_named(name: str) -> GoBinary:
    """The Go program ``sahara setup`` knows by ``name``; a usage error otherwise."""
    try:
        return BINARIES[name]
    except KeyError:
        raise UsageError(
            f"unknown program {name!r}: choose one of {', '.join(sorted(BINARIES))}"
        ) from None


def _result(binary: GoBinary, status: Literal["built", "present"], seconds: float) -> GoSetup:
    return GoSetup(
        name=binary.cache_name,
        version=binary.version,
        module=binary.module,
        path=str(cache_dir(binary) / binary.executable),
        status=status,
        build_s=round(seconds, 3),
    )


def go_install(
    binary: GoBinary,
    *,
    progress: Callable[[str], None] = lambda _line: None,
    go: str | None = None,
) -> GoSetup:
    """Build ``binary``'s pinned version with ``go install module@version`` into the cache.

    Idempotent: a complete build already there is reported as ``present``. ``progress``
    gets one line per step (and each package ``go install -v`` compiles). Raises
    ``setup.go_missing`` without ``go``, ``setup.build_failed`` when the build fails.
    """
    final = cache_dir(binary)
    executable = final / binary.executable
    if (final / ".complete").is_file() and os.access(executable, os.X_OK):
        return _result(binary, "present", 0.0)
    go_path = shutil.which(go or "go")
    if go_path is None:
        raise GoMissing(
            f"'go' was not found: cannot build {binary.project} {binary.version}", hint=GO_HINT
        )
    go_root = cache_root() / "go"
    go_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=go_root))
    env = dict(os.environ)
    env["GOBIN"] = str(work)
    env.setdefault("GOMODCACHE", str(go_root / "mod"))
    env.setdefault("GOCACHE", str(go_root / "build"))
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -modcacherw").strip()
    command = [go_path, "install", "-v"]
    if binary.tags:
        command += ["-tags", binary.tags]
    command.append(f"{binary.module}@{binary.version}")
    progress(f"building {binary.project} {binary.version}: {' '.join(command[1:])}")
    started = time.monotonic()
    tail: list[str] = []
    try:
        with subprocess.Popen(  # noqa: S603  # go, with the pinned module
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as proc:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip()
                if line:
                    tail = [*tail[-19:], line]
                    progress(line)
            code = proc.wait()
        if code != 0 or not os.access(work / binary.executable, os.X_OK):
            why = next((x for x in reversed(tail) if x.strip()), f"exit status {code}")
            raise GoBuildFailed(
                f"go install {binary.module}@{binary.version} failed: {why}",
                hint="Check the Go version ('go version') and the network (the Go module "
                "proxy), then run the command again.",
                details={"output": tail},
            )
        (work / ".complete").touch()
        if (final / ".complete").is_file():  # another build finished first
            return _result(binary, "present", 0.0)
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(work)
    seconds = time.monotonic() - started
    progress(f"built {binary.project} {binary.version} in {seconds:.0f} s: {executable}")
    return _result(binary, "built", seconds)
