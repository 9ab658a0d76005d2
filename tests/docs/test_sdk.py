"""The public API of ``sahara_cli``: every name imports, is documented in docs/sdk.md,
and ``import sahara_cli`` stays light."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sahara_cli

SDK_PAGE = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
PUBLIC = [name for name in sahara_cli.__all__ if name != "__version__"]


def test_the_lazy_table_and_all_name_the_same_things() -> None:
    assert sorted(sahara_cli._EXPORTS) == sorted(PUBLIC)
    assert len(set(sahara_cli.__all__)) == len(sahara_cli.__all__)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_imports(name: str) -> None:
    value = getattr(sahara_cli, name)
    attr = sahara_cli._EXPORTS[name].partition(":")[2]
    assert value.__name__ == (attr or name), f"sahara_cli.{name} is {value!r}"
    assert name in dir(sahara_cli)


def test_every_public_name_is_documented() -> None:
    text = SDK_PAGE.read_text()
    table = text.split("## The public API", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", table))
    assert listed >= set(sahara_cli.__all__), sorted(set(sahara_cli.__all__) - listed)
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))
    unused = [name for name in PUBLIC if not re.search(rf"\b{name}\b", code)]
    assert not unused, f"docs/sdk.md has no example using {unused}"


def test_the_entry_point_stays_small() -> None:
    assert len(sahara_cli.__all__) <= 32, "a new public name is a promise: keep the list short"


def test_the_workflow_table_names_what_each_function_returns() -> None:
    """The page's table of workflows says what each returns; the signature agrees."""
    text = SDK_PAGE.read_text()
    table = text.split("| function | the command it is | returns |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)\(.*?\| `(\w+)` \|$", table, flags=re.M)
    assert len(rows) >= 10, table
    for name, returns in rows:
        assert name in sahara_cli.__all__, f"{name} is in the table but not exported"
        annotation = inspect.signature(getattr(sahara_cli, name)).return_annotation
        assert annotation == returns, f"{name} returns {annotation}, the page says {returns}"


def test_unknown_names_fail_like_any_module() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        sahara_cli.Nope  # noqa: B018
    with pytest.raises(ImportError):
        exec("from sahara_cli import Nope", {})


def test_import_loads_nothing_else() -> None:
    probe = "import sys, json, sahara_cli\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert {m for m in loaded if m.startswith("sahara_cli")} == {"sahara_cli"}
    assert not loaded & {"pydantic", "typer", "rich"}
