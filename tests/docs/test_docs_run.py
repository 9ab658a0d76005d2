"""Docs that run: every ``$ sahara ...`` console block and every Python block of README.md
and docs/*.md, executed in order, one page per test, against a dev node in a fresh home.

Each page gets its own home (``SAHARA_HOME``), password (``SAHARA_PASSWORD``, also in
``PASSWORD`` for the pages that write it to a file), a node port (``SAHARA_NODE_RPC_URL``
and ``SAHARA_NODE_RPC_ADDR``; a page's ``127.0.0.1:8545`` is that port) and working
directory with the files of ``tests/docs/pages.py``. Console commands run in bash one
by one, with the variables a page assigns (``export SAHARA_HOME=...``, ``KEY=$(...)``)
kept from one command to the next; ``sahara`` is this checkout's, and a command that
asks (``node reset``) reads ``y``. Python blocks run in one namespace per page, in the
page's directory and environment. What a block may not do here (start a server that
runs until stopped, CometBFT, a download) is marked in the page; see
``tests/docs/blocks.py``. Unless the page starts a node itself, the test runs
``sahara init`` and ``sahara node start --dev`` in its home first.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.docs.blocks import (
    Block,
    Step,
    output_matches,
    page_paths,
    parse_page,
    printed_null,
)
from tests.docs.pages import GETH_KEYSTORE, KEY_HEX, PAGES, PageSetup
from tests.e2e.cli_home import FAST_SCRYPT
from tests.e2e.nodes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "docs test password"
DOC_PORT = "127.0.0.1:8545"
#: The home the pages show in output (the default on Linux), the page's home here.
DOC_HOME = "/home/me/.local/share/sahara"
STEP_TIMEOUT = 180
#: What a command that asks reads on stdin: yes, as the reader would answer.
ANSWERS = "y\n"
ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")


def runnable_pages() -> list[str]:
    names = []
    for path in page_paths():
        if any(b.not_run is None for b in parse_page(path)):
            names.append(path.name)
    return names


@dataclass
class PageRun:
    """A page's home, working directory, environment and shell state."""

    name: str
    tmp: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # shell variables the page assigns
    ran: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # where -> how long it took

    @property
    def work(self) -> Path:
        return self.tmp / "work"

    @property
    def state(self) -> Path:
        return self.tmp / "shell-state.sh"

    def shell(self, command: str, *, where: str) -> subprocess.CompletedProcess[str]:
        keep = " ".join(self.names)
        script = (
            f"set -o pipefail\nsource {shlex.quote(str(self.state))}\n{command}\n"
            "__rc=$?\n"
            + (f"declare -p {keep} > {shlex.quote(str(self.state))} 2>/dev/null\n" if keep else "")
            + "exit $__rc\n"
        )
        try:
            return subprocess.run(
                ["bash", "-c", script],
                cwd=self.work,
                env=self.env,
                input=ANSWERS,
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{where}: `{command}` ran past {STEP_TIMEOUT} s\n{exc.stderr or ''}")

    def must(self, command: str, *, where: str) -> str:
        result = self.shell(command, where=where)
        if result.returncode != 0:
            pytest.fail(f"{where}: `{command}` exited {result.returncode}\n{result.stderr}")
        return result.stdout


def _shim(bin_dir: Path) -> None:
    """``sahara`` on PATH: this checkout, run by this interpreter."""
    bin_dir.mkdir()
    shim = bin_dir / "sahara"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m sahara_cli "$@"\n')
    shim.chmod(0o755)


def _write_files(work: Path, setup: PageSetup) -> None:
    for name, text in setup.files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if text == GETH_KEYSTORE:
            from eth_account import Account

            keystore = Account.encrypt(KEY_HEX.strip(), PASSWORD, kdf="scrypt", iterations=1024)
            path.write_text(json.dumps(keystore))
        else:
            path.write_text(text)


@pytest.fixture
def page(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PageRun]:
    name: str = request.param
    port = free_port()
    run = PageRun(name, tmp_path, port)
    run.work.mkdir()
    (run.work / "templates").symlink_to(ROOT / "templates")
    (tmp_path / "tmp").mkdir()
    _shim(tmp_path / "bin")
    run.state.write_text("")
    base = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    run.env = base | {
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{base.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")])),
        "TMPDIR": str(tmp_path / "tmp"),
        "SAHARA_HOME": str(tmp_path / "home"),
        "SAHARA_PASSWORD": PASSWORD,
        "PASSWORD": PASSWORD,
        "SAHARA_IDENTITY_SCRYPT_N": FAST_SCRYPT,
        "SAHARA_NODE_RPC_URL": f"http://127.0.0.1:{port}",
        "SAHARA_NODE_RPC_ADDR": f"127.0.0.1:{port}",
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    for key in [k for k in os.environ if k.startswith("SAHARA_")]:
        monkeypatch.delenv(key)
    for key, value in run.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(run.work)
    try:
        yield run
    finally:
        _stop_nodes(run)


def _stop_nodes(run: PageRun) -> None:
    """Stop the nodes of every home the page made (it may have exported another), and
    then any whose home no longer lets ``sahara node stop`` read its config."""
    run.shell("sahara node stop >/dev/null 2>&1", where=run.name)
    subprocess.run(
        ["sahara", "node", "stop"], env=run.env, capture_output=True, timeout=60, check=False
    )
    for pid_file in run.tmp.rglob("node/node.pid"):
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (ValueError, OSError):
            continue
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)


def _starts_node(blocks: list[Block]) -> bool:
    return any(
        step.skipped is None and step.command.startswith("sahara node start")
        for block in blocks
        if block.not_run is None
        for step in block.steps
    )


def _run_step(run: PageRun, block: Block, step: Step) -> None:
    where = f"{run.name}:{step.line}"
    command = step.command.replace(DOC_PORT, f"127.0.0.1:{run.port}")
    started = time.monotonic()
    result = run.shell(command, where=where)
    run.seconds[where] = time.monotonic() - started
    shown = result.stdout + result.stderr
    if step.expects_error:
        if result.returncode == 0:
            pytest.fail(f"{where}: `{step.command}` was shown failing but succeeded:\n{shown}")
    elif result.returncode != 0:
        pytest.fail(
            f"{where}: `{step.command}` exited {result.returncode}\n"
            f"stderr:\n{result.stderr}\nstdout:\n{result.stdout}"
        )
    if "| jq" in command and printed_null(result.stdout):
        pytest.fail(
            f"{where}: `{step.command}` printed null: the JSON key its jq filter reads is "
            f"missing (renamed?)\n{result.stdout}"
        )
    keys = step.documented_keys
    if keys is not None:
        got = set(json.loads(result.stdout))
        assert got == keys, (
            f"{where}: `{step.command}` gave the keys {sorted(got)}; the page lists {sorted(keys)}"
        )
    if step.output and block.output_not_compared is None:
        home = run.env["SAHARA_HOME"]
        expected = [line.replace(DOC_HOME, home) for line in step.output]
        assert output_matches(expected, shown), (
            f"{where}: `{step.command}` printed\n{shown}\nbut the page shows\n"
            + "\n".join(step.output)
        )


def _run_python(block: Block, namespace: dict[str, object]) -> None:
    code = compile("\n" * block.line + block.text, block.page, "exec")
    try:
        exec(code, namespace)
    except Exception:
        pytest.fail(f"{block.where}: the Python block failed\n{traceback.format_exc()}")


@pytest.mark.parametrize("page", runnable_pages(), indirect=True)
def test_page_runs(page: PageRun) -> None:
    if shutil.which("jq") is None:
        pytest.skip("the pages pipe JSON through jq, which is not installed")
    path = next(p for p in page_paths() if p.name == page.name)
    blocks = parse_page(path)
    setup = PAGES.get(page.name, PageSetup())
    _write_files(page.work, setup)
    page.names = sorted(
        {m.group(1) for b in blocks for s in b.steps if (m := ASSIGNMENT.match(s.command))}
    )
    if not _starts_node(blocks):
        page.must("sahara --no-prompt init", where=f"{page.name} (set-up)")
        page.must("sahara node start --dev", where=f"{page.name} (set-up)")
    for command in setup.before:
        page.must(command, where=f"{page.name} (set-up)")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:
        if block.not_run is not None:
            page.skipped.append(f"{block.where}: {block.not_run}")
            continue
        if block.lang == "python":
            _run_python(block, namespace)
            page.ran += 1
            continue
        for command in block.set_up:
            page.must(command, where=f"{block.where} (set-up)")
        for step in block.steps:
            if step.skipped is not None:
                page.skipped.append(f"{page.name}:{step.line}: {step.skipped}")
                continue
            _run_step(page, block, step)
            page.ran += 1
    print(f"{page.name}: ran {page.ran} commands and blocks; left out {len(page.skipped)}")
    for line in page.skipped:
        print(f"  not run  {line}")
    for where, seconds in sorted(page.seconds.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {seconds:6.1f} s  {where}")
    assert page.ran > 0
