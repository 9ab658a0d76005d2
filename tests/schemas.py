"""Every --json document a test reads is checked against the command's published schema.

The app walk runs each command once; the test helpers that parse a command's document
(``Result.json`` in-process, ``CliHome.ok`` and the e2e ``ok`` helpers for processes) call
:func:`check` too, so every shape a command prints in any test (the long-running servers'
too) is held to ``docs/schemas/``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"
#: Global options that take a value (the others are flags).
_VALUED = {"--home"}


@cache
def _schema(name: str) -> dict[str, Any] | None:
    path = SCHEMAS / name
    return json.loads(path.read_text()) if path.exists() else None


def command_of(argv: Sequence[str]) -> tuple[str, ...] | None:
    """The command path in a command line (``sahara --json vault add f`` -> vault add)."""
    args = list(argv)
    for i, arg in enumerate(args[:3]):  # drop the program: 'sahara', 'python -m sahara_cli'
        if arg in {"sahara_cli", "sahara"} or arg.endswith("/sahara"):
            args = args[i + 1 :]
            break
    words: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            if words:
                break
            skip = arg in _VALUED
            continue
        words.append(arg)
    for n in range(min(len(words), 3), 0, -1):  # a command path has at most three words
        if _schema("-".join(words[:n]) + ".json") is not None:
            return tuple(words[:n])
    return None


def check(argv: Sequence[str], document: Any) -> None:
    """Validate ``document`` against the schema of the command ``argv`` ran, if it has one."""
    path = command_of(argv)
    if path is None or not isinstance(document, dict) or "error" in document:
        return
    schema = _schema("-".join(path) + ".json")
    assert schema is not None
    try:
        jsonschema.validate(document, schema)
    except jsonschema.ValidationError as exc:
        raise AssertionError(
            f"'sahara {' '.join(path)}' printed a document its schema refuses: {exc.message}"
            f" at {'/'.join(map(str, exc.absolute_path)) or 'the top'}"
        ) from None
