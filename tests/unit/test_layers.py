"""The import contract: the layers of the design, held for every import in the package.

Every ``import`` and ``from ... import`` is read from the source (those inside functions
too, since heavy modules are imported where they are used), and each rule below names
what a part of the package may not import. A new import that crosses a layer fails here
with the file, the line and the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sahara_cli"

#: The library: every package and module below the interfaces (commands/, tui/).
LIBRARY = (
    "identity",
    "node",
    "protocol",
    "vault",
    "agent",
    "compute",
    "errors",
    "config",
    "results",
    "fsutil",
    "home",
    "log",
    "units",
    "doctor",
    "doctor_tools",
    "gosetup",
    "bootstrap",
    "gobin",
    "procutil",
)
#: The agent's core: the modules of ``agent/`` outside its sub-packages (runners, tools,
#: servers), which each say what they may import.
AGENT_CORE = tuple(
    f"sahara_cli.agent.{m}"
    for m in ("brain", "memory", "perceptor", "record", "results", "spec", "team", "types",
              "workflows")
)  # fmt: skip
INTERFACES = ("sahara_cli.commands", "sahara_cli.tui", "typer", "rich", "textual", "click")


@dataclass(frozen=True)
class Rule:
    """Modules under ``source`` never import a module under any of ``forbidden``."""

    name: str
    sources: tuple[str, ...]
    forbidden: tuple[str, ...]


RULES = [
    Rule("the library never imports the CLI, the TUI or their toolkits",
         tuple(f"sahara_cli.{p}" for p in LIBRARY), INTERFACES),
    Rule("node/ never imports protocol/, vault/, agent/ or compute/",
         ("sahara_cli.node",),
         ("sahara_cli.protocol", "sahara_cli.vault", "sahara_cli.agent", "sahara_cli.compute")),
    Rule("protocol/ never imports vault/, agent/ or compute/",
         ("sahara_cli.protocol",),
         ("sahara_cli.vault", "sahara_cli.agent", "sahara_cli.compute")),
    Rule("vault/ never imports agent/ or compute/",
         ("sahara_cli.vault",), ("sahara_cli.agent", "sahara_cli.compute")),
    Rule("identity/ never imports the layers above it",
         ("sahara_cli.identity",),
         ("sahara_cli.node", "sahara_cli.protocol", "sahara_cli.vault", "sahara_cli.agent",
          "sahara_cli.compute")),
    Rule("errors, config and results sit at the bottom",
         ("sahara_cli.errors", "sahara_cli.config", "sahara_cli.results", "sahara_cli.units",
          "sahara_cli.fsutil", "sahara_cli.home", "sahara_cli.log", "sahara_cli.gobin",
          "sahara_cli.procutil"),
         ("sahara_cli.node", "sahara_cli.protocol", "sahara_cli.vault", "sahara_cli.agent",
          "sahara_cli.compute")),
    Rule("agent runners never import the agent's core (but its plain types), tools or servers",
         ("sahara_cli.agent.runners",),
         ("sahara_cli.agent.tools", "sahara_cli.agent.servers",
          *(m for m in AGENT_CORE if m != "sahara_cli.agent.types"))),
    Rule("agent tools never import the runners, the brain, teams or the servers",
         ("sahara_cli.agent.tools",),
         ("sahara_cli.agent.runners", "sahara_cli.agent.servers", "sahara_cli.agent.brain",
          "sahara_cli.agent.team", "sahara_cli.agent.workflows")),
    Rule("the agent's core never imports its servers (teams start A2A members)",
         tuple(m for m in AGENT_CORE if m != "sahara_cli.agent.team"),
         ("sahara_cli.agent.servers",)),
    Rule("agent results sit at the bottom of the agent",
         ("sahara_cli.agent.results",),
         ("sahara_cli.agent.runners", "sahara_cli.agent.tools", "sahara_cli.agent.servers",
          *(m for m in AGENT_CORE if m != "sahara_cli.agent.results"))),
    Rule("commands keep the vault's internals to the library",
         ("sahara_cli.commands",),
         ("sahara_cli.vault.db", "sahara_cli.vault.crypto", "sahara_cli.vault.unixfs")),
]  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], base]).rstrip(".")
            yield node.lineno, base
            for alias in node.names:  # "from sahara_cli.commands import vault"
                yield node.lineno, f"{base}.{alias.name}"


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "generated" not in p.parts)


def violations(rule: Rule) -> list[str]:
    found = []
    for path in SOURCES:
        name = module_name(path)
        if not any(under(name, s) for s in rule.sources):
            continue
        for line, target in imports(path):
            if any(under(target, f) for f in rule.forbidden):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_layer_rule(rule: Rule) -> None:
    assert not violations(rule), f"{rule.name}:\n" + "\n".join(violations(rule))


def test_no_command_imports_another_command() -> None:
    """Command modules share helpers through ``commands/_*.py``, never through each other."""
    commands = PACKAGE / "commands"
    found = []
    for path in sorted(commands.glob("*.py")):
        if path.name in {"__init__.py", "main.py"}:  # main assembles the app
            continue
        for line, target in imports(path):
            if not under(target, "sahara_cli.commands") or target == "sahara_cli.commands":
                continue
            leaf = target.split(".")[2]
            if not leaf.startswith("_") and leaf != path.stem:
                found.append(f"commands/{path.name}:{line} imports {target}")
    assert not found, "\n".join(found)


def test_command_modules_stay_small() -> None:
    """A command parses, calls one library function and renders: no module needs 400 lines."""
    sizes = {p.name: len(p.read_text().splitlines()) for p in (PACKAGE / "commands").glob("*.py")}
    large = {name: n for name, n in sizes.items() if n >= 400}
    assert not large, f"command modules over 400 lines: {large}"


def test_the_rules_see_imports_inside_functions(tmp_path: Path) -> None:
    """The reader finds lazy and relative imports (a rule that sees none holds nothing)."""
    source = PACKAGE / "node" / "state.py"
    names = {target for _, target in imports(source)}
    assert any(under(n, "sahara_cli") for n in names)
    probe = PACKAGE / "vault" / "index.py"
    lazy = {t for _, t in imports(probe)}
    assert "chromadb" in lazy or any(t.startswith("chromadb") for t in lazy)
