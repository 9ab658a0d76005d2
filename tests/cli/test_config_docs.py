"""docs/config.md lists exactly the keys that ``sahara config show`` has."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import Invoke

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
ROW = re.compile(r"^\| `([a-z_]+\.[a-z_]+)` \| (.+?) \| `(SAHARA_[A-Z_]+)` \|", re.MULTILINE)


def test_config_md_lists_every_key_of_config_show(cli: Invoke, home: Path) -> None:
    document = cli("--json", "config", "show").json()
    shown = {f"{section}.{key}" for section, keys in document["values"].items() for key in keys}
    rows = {key: env for key, _, env in ROW.findall(DOC.read_text())}
    assert sorted(shown - set(rows)) == [], "keys of 'config show' missing from docs/config.md"
    assert sorted(set(rows) - shown) == [], "docs/config.md lists keys 'config show' lacks"
    for key, env in rows.items():
        assert env == "SAHARA_" + key.replace(".", "_").upper(), f"{key}: wrong variable {env}"
