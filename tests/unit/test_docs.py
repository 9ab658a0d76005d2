"""Docs that cannot rot: the exit-code table in docs/cli.md matches the code."""

from __future__ import annotations

import re
from pathlib import Path

from sahara_cli.errors import ExitCode

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_exit_code_table_matches_errors_module() -> None:
    text = (DOCS / "cli.md").read_text()
    rows = dict(re.findall(r"^\|\s*(\d+)\s*\|\s*([A-Z_]+)\s*\|", text, flags=re.M))
    expected = {str(v): k for k, v in vars(ExitCode).items() if k.isupper()}
    assert rows == expected
