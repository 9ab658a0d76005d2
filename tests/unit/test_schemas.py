"""The published JSON Schemas: generated from the result models, and keeping the conventions.

``docs/schemas/`` is written by ``scripts/schemas``; a model that changes without
regenerating fails here. Every schema is then walked for the conventions of
``sahara_cli/results.py`` (snake_case keys, one key per concept, ISO 8601 times, wei as
strings with their SAH), so a nested dataclass cannot slip past them either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from sahara_cli.commands.main import app
from sahara_cli.commands.schema import all_schemas

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
GENERATED = all_schemas(typer.main.get_command(app))
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
AMBIGUOUS = {"id", "asset", "offer", "license", "calls", "fee", "wei", "sah", "chainid"}


def test_published_schemas_match_the_models() -> None:
    published = {p.name: p.read_text() for p in SCHEMAS.glob("*.json")}
    stale = sorted(n for n in GENERATED if published.get(n) != GENERATED[n])
    gone = sorted(set(published) - set(GENERATED))
    assert not stale and not gone, (
        f"docs/schemas is out of date (changed: {stale}, removed: {gone}): run scripts/schemas"
    )


def properties(schema: Any, where: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, key, property schema) of every object property, $defs included."""
    if isinstance(schema, dict):
        for key, sub in (schema.get("properties") or {}).items():
            yield where, key, sub
        for key, sub in schema.items():
            yield from properties(sub, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            yield from properties(sub, f"{where}/{i}")


def variants(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in prop.get("anyOf", [prop]) if v.get("type") != "null"]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_schema_keeps_the_conventions(name: str) -> None:
    schema = json.loads(GENERATED[name])
    for where, key, prop in properties(schema):
        at = f"{name}{where}.{key}"
        assert SNAKE.match(key), f"{at}: keys are snake_case"
        assert key not in AMBIGUOUS, f"{at}: ambiguous key"
        kinds = variants(prop)
        if key.endswith("_at"):
            assert all(v.get("format") == "date-time" for v in kinds), f"{at}: ISO 8601 time"
        if key.endswith("_wei") or key.endswith("_sah"):
            assert all(v.get("type") == "string" for v in kinds), f"{at}: amounts are strings"


def test_the_test_helpers_check_documents_against_their_schema() -> None:
    """tests/schemas.check, which every helper that parses a --json document calls."""
    from tests.schemas import check, command_of

    assert command_of(["--json", "--no-prompt", "vault", "add", "f.txt"]) == ("vault", "add")
    assert command_of(["python", "-m", "sahara_cli", "--json", "node", "start", "--dev"]) == (
        "node",
        "start",
    )
    assert command_of(["--home", "h", "vault", "daemon", "status"]) == ("vault", "daemon", "status")
    assert command_of(["no", "such"]) is None
    check(["balance"], {"error": {"code": "x"}})  # errors keep their own shape
    with pytest.raises(AssertionError, match="sahara balance"):
        check(["balance"], {"balance_wei": 1})
