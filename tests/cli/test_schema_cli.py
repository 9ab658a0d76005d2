"""sahara schema: prints the published JSON Schema of a command's --json document."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.conftest import Invoke

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_schema_prints_the_published_schema(cli: Invoke, home: Path) -> None:
    result = cli("--json", "schema", "doctor")
    assert result.exit_code == 0, result.stderr
    printed = result.json()
    assert printed == json.loads((SCHEMAS / "doctor.json").read_text())
    assert printed["title"] == "sahara doctor"
    jsonschema.Draft202012Validator.check_schema(printed)
    # and the command's own document is valid under it
    doctor = cli("--json", "doctor")
    jsonschema.validate(json.loads(doctor.stdout), printed)


def test_schema_of_an_unknown_command_lists_the_known_ones(cli: Invoke, home: Path) -> None:
    result = cli("--json", "schema", "no", "such")
    assert result.exit_code == 2
    error = result.error()
    assert error["code"] == "usage"
    assert "doctor" in error["hint"]
