"""The installed ``sahara`` script as a real process: start-up cost and the contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sahara_cli.commands.main import COMMANDS
from tests.conftest import PASSWORD

#: Modules that no start-up path may load: the command's own work imports what it needs.
HEAVY = [
    "pydantic",
    "httpx",
    "eth_account",
    "web3",
    "eth",
    "evm",
    "numpy",
    "chromadb",
    "torch",
    "llama_cpp",
    "transformers",
    "aiohttp",
    "starlette",
    "uvicorn",
    "mcp",
    "a2a",
    "cryptography",
    "textual",
    "rich.progress",
]


def loaded_modules(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    """The modules in ``sys.modules`` when ``sahara ARGS`` exits, in a fresh interpreter."""
    probe = (
        "import sys, json, atexit\n"
        f"sys.argv = ['sahara', *{args!r}]\n"
        "atexit.register(lambda: sys.__stderr__.write('\\n@@' + json.dumps(sorted(sys.modules))))\n"
        "from sahara_cli.__main__ import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    assert "\n@@" in result.stderr, result.stderr
    return set(json.loads(result.stderr.rpartition("\n@@")[2]))


def heavy_in(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))


HELP_PATHS = [["--version"], ["--help"], *([entry.name, "--help"] for entry in COMMANDS)]
HELP_PATHS += [["id", "list", "--help"], ["vault", "add", "--help"], ["agent", "chat", "--help"]]


@pytest.mark.parametrize("args", HELP_PATHS, ids=" ".join)
def test_fast_paths_do_not_import_heavy_modules(args: list[str]) -> None:
    loaded = loaded_modules(args)
    assert not heavy_in(loaded), f"'sahara {' '.join(args)}' imported {heavy_in(loaded)}"
    if args == ["--version"]:
        assert "typer" not in loaded and "rich" not in loaded
    if args == ["--help"]:  # the root help lists groups without loading config or keys
        assert "sahara_cli.config" not in loaded


#: What ``sahara balance`` still loads: its typed result and the config are pydantic models.
BALANCE_ALLOWED = {"pydantic"}


def test_balance_does_not_import_heavy_modules(sahara, tmp_path: Path) -> None:
    from sahara_cli.node.rpc.testing import dev_node

    env = {"SAHARA_HOME": str(tmp_path / "h"), "SAHARA_PASSWORD": PASSWORD}
    assert sahara(["--no-prompt", "init"], env=env).returncode == 0
    with dev_node(tmp_path / "node") as (_, server):
        env["SAHARA_NODE_RPC_URL"] = server.url
        for args in (["balance"], ["balance", "0x" + "11" * 20, "--block", "latest"]):
            loaded = loaded_modules(args, env=env)
            assert "sahara_cli.node.wallet" in loaded, "the command ran"
            heavy = [m for m in heavy_in(loaded) if m.split(".")[0] not in BALANCE_ALLOWED]
            assert not heavy, f"'sahara {' '.join(args)}' imported {heavy}"


def _probe(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_command_line_skips_pydantic_plugin_discovery() -> None:
    # pydantic scans every installed distribution's entry points for plugins when it
    # builds its first model; the command line loads none, unless the caller asks.
    code = (
        "import os, sys\n"
        "import sahara_cli.commands.main as m\n"
        "m.run = lambda args: print(os.environ.get('PYDANTIC_DISABLE_PLUGINS')) or 0\n"
        "sys.argv = ['sahara', 'balance']\n"
        "from sahara_cli.__main__ import main\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    assert _probe(code, env) == "__all__"
    assert _probe(code, {**env, "PYDANTIC_DISABLE_PLUGINS": "logfire"}) == "logfire"


def test_results_build_their_validators_when_first_used() -> None:
    # A command module declares several results; only the one it returns is built.
    code = (
        "from sahara_cli.node.wallet import Balance, Transfer\n"
        "print(Balance.__pydantic_complete__, Transfer.__pydantic_complete__)\n"
        "Balance.model_validate({'address': '0x' + '11' * 20, 'balance_wei': 5,"
        " 'block': 'latest'})\n"
        "print(Balance.__pydantic_complete__, Transfer.__pydantic_complete__)\n"
    )
    assert _probe(code, dict(os.environ)).splitlines() == ["False False", "True False"]


def test_version(sahara) -> None:
    from sahara_cli import __version__

    assert sahara(["--version"]).stdout == f"sahara {__version__}\n"
    assert json.loads(sahara(["--json", "--version"]).stdout) == {
        "name": "sahara",
        "version": __version__,
    }


def test_acceptance_init_list_and_wrong_password(sahara, tmp_path: Path) -> None:
    env = {"SAHARA_HOME": str(tmp_path / "h"), "SAHARA_PASSWORD": PASSWORD}
    init = sahara(["--json", "--no-prompt", "init"], env=env)
    assert init.returncode == 0, init.stderr
    address = json.loads(init.stdout)["address"]
    listed = sahara(["--json", "id", "list"], env=env)
    assert [i["address"] for i in json.loads(listed.stdout)["ids"]] == [address]
    wrong = sahara(
        ["--json", "--no-prompt", "id", "export", "main"], env={**env, "SAHARA_PASSWORD": "nope"}
    )
    assert wrong.returncode == 4
    assert wrong.stdout == ""
    assert json.loads(wrong.stderr)["error"]["code"] == "identity.wrong_password"
    assert "Traceback" not in wrong.stderr


def test_usage_errors(sahara, tmp_path: Path) -> None:
    bad = sahara(["--json", "id", "show", "--colour"])
    assert bad.returncode == 2
    error = json.loads(bad.stderr)["error"]
    assert error["code"] == "usage" and "--colour" in error["message"]
    human = sahara(["nosuchcommand"])
    assert human.returncode == 2
    assert human.stderr.startswith("error:") and "Traceback" not in human.stderr
    bare = sahara([])
    assert bare.returncode == 0 and "Usage" in bare.stdout


def test_debug_shows_the_traceback(sahara, tmp_path: Path) -> None:
    env = {"SAHARA_HOME": str(tmp_path / "missing")}
    plain = sahara(["id", "list"], env=env)
    debug = sahara(["--debug", "id", "list"], env=env)
    assert plain.returncode == debug.returncode == 3
    assert "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr


def test_log_file_in_home(sahara, tmp_path: Path) -> None:
    env = {"SAHARA_HOME": str(tmp_path / "h"), "SAHARA_PASSWORD": PASSWORD}
    sahara(["--no-prompt", "init"], env=env)
    sahara(["--json", "id", "show", "ghost"], env=env)
    log = tmp_path / "h" / "logs" / "sahara.log"
    assert log.exists()
    assert oct(log.parent.stat().st_mode & 0o777) == "0o700"


@pytest.mark.skipif(not hasattr(os, "setsid"), reason="needs POSIX sessions")
def test_no_prompt_never_waits_for_input(sahara, tmp_path: Path) -> None:
    env = {"SAHARA_HOME": str(tmp_path / "h")}
    # stdin stays open and empty: without --no-prompt handling this would block until timeout.
    result = sahara(["--no-prompt", "init"], env=env, input=None)
    assert result.returncode == 4


@pytest.mark.parametrize("stdin", ["\n", None])
def test_a_piped_stdin_is_like_no_prompt(sahara, tmp_path: Path, stdin: str | None) -> None:
    """``echo | sahara id create x`` and ``< /dev/null``: the password hint, not an abort."""
    home = tmp_path / "h"
    created = sahara(["--json", "init", "--no-id"], env={"SAHARA_HOME": str(home)})
    assert created.returncode == 0, created.stderr
    result = subprocess.run(
        [sys.executable, "-m", "sahara_cli", "id", "create", "x"],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env={**os.environ, "SAHARA_HOME": str(home), "SAHARA_IDENTITY_SCRYPT_N": "1024"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 4, result.stderr
    assert "GetPassWarning" not in result.stderr and "aborted" not in result.stderr
    assert "not a terminal" in result.stderr
    assert "SAHARA_PASSWORD" in result.stderr and "--password-file" in result.stderr
    assert not (home / "keystore" / "x.json").exists()


def test_a_confirmation_without_a_terminal_needs_yes(sahara, tmp_path: Path) -> None:
    env = {"SAHARA_HOME": str(tmp_path / "h"), "SAHARA_PASSWORD": PASSWORD}
    assert sahara(["--json", "--no-prompt", "init"], env=env).returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "sahara_cli", "--json", "id", "delete", "main"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert error["code"] == "confirmation_required" and "not a terminal" in error["message"]
    assert (tmp_path / "h" / "keystore" / "main.json").exists()
