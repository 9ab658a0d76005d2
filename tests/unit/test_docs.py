"""Docs that cannot rot: the exit-code table and the error codes of docs/cli.md match the code.

The error codes are read from the source, not from the running program, so that modules
with heavy imports (py-evm, torch, chromadb) count as well and no error class is missed
wherever it is defined: every class in the package that derives from ``SaharaError``
(however many steps away, through imports and re-exports) gives its ``code`` class
attribute, with the exit status of its kind; and every ``code="..."`` passed to such a
class where it is built gives that code. A ``code=f"..."`` gives a pattern that some
documented code must match. A code passed on from elsewhere (a variable) is not a new
code and is not collected.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sahara_cli.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "sahara_cli"
ROOT_ERROR = "sahara_cli.errors.SaharaError"

#: A code as docs/cli.md writes it: `identity.wrong_password`, `usage`, `node.rpc.reverted`.
_TOKEN = r"`[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*`"
_RUN = rf"(?:{_TOKEN}|[\s,()/]|\band\b|\bor\b)*{_TOKEN}(?:\s*\([^)]*\))?"
#: The codes an item of the list describes: those before its first colon, and those that
#: open a later clause ("...; `vault.export_too_large`: an export would...").
_LEAD = re.compile(rf"^({_RUN}):")
_CLAUSE = re.compile(rf"[;.]\s+({_RUN}):")
_STATUS = re.compile(r"^- \*\*(\d+) `([A-Z_]+)`\*\*\s*$")

#: Codes whose exit status the CLI's boundary sets itself rather than the error's kind.
STATUS_SET_BY_THE_CLI = {"aborted": ExitCode.INTERRUPTED}


def test_exit_code_table_matches_errors_module() -> None:
    text = (DOCS / "cli.md").read_text()
    rows = dict(re.findall(r"^\|\s*(\d+)\s*\|\s*([A-Z_]+)\s*\|", text, flags=re.M))
    expected = {str(v): k for k, v in vars(ExitCode).items() if k.isupper()}
    assert rows == expected


# -- the codes the package raises ---------------------------------------------------------


@dataclass
class Raised:
    """Where a code comes from and the exit statuses it leaves the CLI with."""

    statuses: set[int] = field(default_factory=set)
    where: list[str] = field(default_factory=list)


@dataclass
class _Class:
    qualname: str
    bases: list[str]
    code: str | None
    exit_code: int | None
    where: str


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield _module_name(path), path, ast.parse(path.read_text(), filename=str(path))


def _imported_names(module: str, path: Path, tree: ast.Module) -> dict[str, str]:
    """Local name -> qualified name of what ``from X import Y [as Z]`` binds (any depth)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], base]).rstrip(".")
            for alias in node.names:
                names[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
    return names


def _class_attribute(body: list[ast.stmt], name: str) -> ast.expr | None:
    for stmt in body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in stmt.targets
        ):
            return stmt.value
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == name
        ):
            return stmt.value
    return None


@dataclass
class _Source:
    classes: dict[str, _Class] = field(default_factory=dict)
    imports: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: list[tuple[str, ast.Call, str]] = field(default_factory=list)  # module, call, where


def _read_package() -> _Source:
    source = _Source()
    for module, path, tree in _sources():
        source.imports[module] = _imported_names(module, path, tree)
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ClassDef):
                code = _class_attribute(node.body, "code")
                exit_code = _class_attribute(node.body, "exit_code")
                source.classes[f"{module}.{node.name}"] = _Class(
                    qualname=f"{module}.{node.name}",
                    bases=[_qualify(module, _dotted(b), source) for b in node.bases],
                    code=code.value
                    if isinstance(code, ast.Constant) and isinstance(code.value, str)
                    else None,
                    exit_code=getattr(ExitCode, exit_code.attr)
                    if isinstance(exit_code, ast.Attribute)
                    else None,
                    where=where,
                )
            elif isinstance(node, ast.Call) and any(k.arg == "code" for k in node.keywords):
                source.calls.append((module, node, where))
    return source


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _qualify(module: str, name: str, source: _Source) -> str:
    """The qualified name ``name`` stands for in ``module`` (through its imports)."""
    head, _, rest = name.partition(".")
    imported = source.imports.get(module, {}).get(head)
    base = imported if imported is not None else f"{module}.{head}"
    return f"{base}.{rest}" if rest else base


def _resolve(qualname: str, source: _Source, seen: frozenset[str] = frozenset()) -> str | None:
    """The class a qualified name finally names, following re-exports; None if not ours."""
    if qualname in source.classes:
        return qualname
    if qualname in seen:
        return None
    module, _, name = qualname.rpartition(".")
    imported = source.imports.get(module, {}).get(name)
    return _resolve(imported, source, seen | {qualname}) if imported else None


def _error_classes(source: _Source) -> dict[str, type]:
    """The SaharaError tree, rebuilt as Python classes (so that the MRO decides each status)."""
    built: dict[str, type] = {}

    def build(qualname: str) -> type | None:
        if qualname in built:
            return built[qualname]
        info = source.classes[qualname]
        if qualname == ROOT_ERROR:
            bases: list[type] = [Exception]
        else:
            resolved = [_resolve(b, source) for b in info.bases]
            bases = [c for c in (build(r) for r in resolved if r is not None) if c is not None]
            if not bases:
                return None
        namespace: dict[str, Any] = {"where": info.where}
        if info.code is not None:
            namespace["code"] = info.code
        if info.exit_code is not None:
            namespace["exit_code"] = info.exit_code
        built[qualname] = type(qualname, tuple(bases), namespace)
        return built[qualname]

    for qualname in list(source.classes):
        build(qualname)
    return built


def raised_codes() -> dict[str, Raised]:
    """Every code the package raises (a ``*`` in a code stands for a formatted part)."""
    source = _read_package()
    classes = _error_classes(source)
    out: dict[str, Raised] = {}

    def add(code: str, status: int, where: str) -> None:
        entry = out.setdefault(code, Raised())
        entry.statuses.add(STATUS_SET_BY_THE_CLI.get(code, status))
        entry.where.append(where)

    for qualname, cls in classes.items():
        if "code" in vars(cls):
            add(cls.code, cls.exit_code, source.classes[qualname].where)
    for module, call, where in source.calls:
        target = _resolve(_qualify(module, _dotted(call.func), source), source)
        cls = classes.get(target or "")
        if cls is None:
            continue
        value = next(k.value for k in call.keywords if k.arg == "code")
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            add(value.value, cls.exit_code, where)
        elif isinstance(value, ast.JoinedStr):
            parts = [p.value if isinstance(p, ast.Constant) else "*" for p in value.values]
            add("".join(str(p) for p in parts), cls.exit_code, where)
    return out


# -- the codes docs/cli.md lists ----------------------------------------------------------


def documented_codes() -> dict[str, int]:
    """Code -> the exit status it is listed under in the "Error codes" section."""
    text = (DOCS / "cli.md").read_text()
    section = text.split("### Error codes", 1)[1]
    section = re.split(r"^#{2,3} ", section, maxsplit=1, flags=re.M)[0]
    items: list[tuple[int, str]] = []
    status: int | None = None
    for line in section.splitlines():
        heading = _STATUS.match(line)
        if heading:
            status = int(heading.group(1))
            assert getattr(ExitCode, heading.group(2)) == status, line
        elif line.startswith("  - ") and status is not None:
            items.append((status, line[4:]))
        elif line.startswith("    ") and items:
            items[-1] = (items[-1][0], items[-1][1] + " " + line.strip())
        elif line.strip() and not line.startswith(" "):
            status = None
    out: dict[str, int] = {}
    for status, item in items:
        runs = [m.group(1) for m in (_LEAD.match(item), *_CLAUSE.finditer(item)) if m]
        codes = [c for run in runs for c in re.findall(_TOKEN, run)]
        assert codes, f"an item of the error codes that names no code: {item[:60]!r}"
        for token in codes:
            code = token.strip("`")
            assert out.get(code, status) == status, f"{code} is listed under two statuses"
            out[code] = status
    return out


def _matches(pattern: str, code: str) -> bool:
    return re.fullmatch(re.escape(pattern).replace(r"\*", "[a-z0-9_]+"), code) is not None


RAISED = raised_codes()
DOCUMENTED = documented_codes()


def test_the_collectors_see_codes_wherever_they_are_set() -> None:
    """Class attributes in and outside errors.py, ``code=`` arguments, f-string codes."""
    assert RAISED["identity.wrong_password"].statuses == {ExitCode.LOCKED}
    assert RAISED["config.unknown_key"].statuses == {ExitCode.NOT_FOUND}  # MRO, not DFS
    assert RAISED["identity.bad_name"].statuses == {ExitCode.INVALID_DATA}  # code="..."
    assert any("*" in code for code in RAISED)  # code=f"..."
    assert any("errors.py" not in w for r in RAISED.values() for w in r.where)
    assert DOCUMENTED["usage"] == ExitCode.USAGE
    assert DOCUMENTED["aborted"] == ExitCode.INTERRUPTED


def test_every_raised_error_code_is_documented() -> None:
    missing = {
        code: r.where[0]
        for code, r in RAISED.items()
        if not any(_matches(code, d) for d in DOCUMENTED)
    }
    assert not missing, f"add these codes to the Error codes of docs/cli.md: {missing}"


def test_every_documented_error_code_is_raised() -> None:
    raised = set(RAISED)
    never = {code for code in set(DOCUMENTED) if not any(_matches(r, code) for r in raised)}
    assert not never, f"docs/cli.md lists codes nothing raises: {sorted(never)}"


@pytest.mark.parametrize("code", sorted(DOCUMENTED))
def test_error_code_is_listed_under_its_exit_status(code: str) -> None:
    statuses = set().union(*(r.statuses for c, r in RAISED.items() if _matches(c, code)))
    if statuses:
        assert DOCUMENTED[code] in statuses, (
            f"{code} is listed under exit status {DOCUMENTED[code]}; it exits {statuses}"
        )
