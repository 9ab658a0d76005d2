"""At 80 columns, text output never folds or cuts a hash, address, CID or URL."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console, Group
from rich.table import Table

from sahara_cli.commands._whole import WholeValues
from tests.cli.test_app_walk import MADE, protocol_setup, vault_setup
from tests.conftest import PASSWORD, Invoke

HASH = "0x" + "9f" * 32
ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
URL = "http://127.0.0.1:8545/v1/chat/completions"
TOKEN = re.compile(r"0x[0-9a-fA-F]+…?|baf[a-z2-7]+…?|https?://[^\s…]+…?")
LONG = re.compile(r"0x[0-9a-fA-F]{40,}|baf[a-z2-7]{40,}|https?://\S+")


def printed(*renderables: Any, width: int = 80) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, highlight=False, soft_wrap=True)
    console.push_render_hook(WholeValues(console))
    console.print(*renderables)
    return buffer.getvalue()


def whole(text: str, *values: str) -> None:
    lines = text.splitlines()
    for value in values:
        assert any(value in line for line in lines), f"{value} is cut or folded in:\n{text}"


def test_a_key_value_grid_keeps_a_hash_whole() -> None:
    grid = Table(show_header=False, box=None)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("transaction hash", HASH)
    grid.add_row("block hash", HASH)
    whole(printed(grid), HASH)


def test_a_wide_list_keeps_every_value_whole_and_wraps_prose() -> None:
    table = Table()
    for column in ("id", "tx", "owner", "cid", "url", "description"):
        table.add_column(column, overflow="fold")
    table.add_row("1", HASH, ADDRESS, CID, URL, "a description long enough to wrap " * 3)
    text = printed(Group(table))
    whole(text, HASH, ADDRESS, CID, URL)


def test_a_table_that_fits_is_laid_out_as_before() -> None:
    def table() -> Table:
        grid = Table(box=None)
        grid.add_column("id")
        grid.add_column("owner", overflow="fold")
        grid.add_row("1", ADDRESS)
        return grid

    buffer = io.StringIO()
    Console(file=buffer, width=80, highlight=False, soft_wrap=True).print(table())
    assert printed(table()) == buffer.getvalue()


def long_values(document: Any) -> Iterator[str]:
    if isinstance(document, dict):
        for value in document.values():
            yield from long_values(value)
    elif isinstance(document, list):
        for value in document:
            yield from long_values(value)
    elif isinstance(document, str):
        yield from LONG.findall(document)


@pytest.fixture(scope="module")
def live_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from sahara_cli.node.rpc.testing import dev_node

    with dev_node(tmp_path_factory.mktemp("node")) as (_, server):
        yield server.url


COMMANDS = {
    "id list": lambda: ["id", "list"],
    "id show": lambda: ["id", "show"],
    "node status": lambda: ["node", "status"],
    "node accounts": lambda: ["node", "accounts"],
    "tx show": lambda: ["tx", "show", MADE["tx"]],
    "asset list": lambda: ["asset", "list"],
    "asset show": lambda: ["asset", "show", MADE["asset"]],
    "attribute show": lambda: ["attribute", "show", MADE["asset"]],
    "license list": lambda: ["license", "list", "--mine"],
    "license show": lambda: ["license", "show", MADE["api_license"]],
    "market list": lambda: ["market", "list"],
    "events": lambda: ["events", "--limit", "20"],
    "vault ls": lambda: ["vault", "ls"],
    "vault status": lambda: ["vault", "status"],
    "config show": lambda: ["config", "show"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_text_output_keeps_long_values_whole_at_80_columns(
    name: str,
    cli: Invoke,
    initialised: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    live_node: str,
) -> None:
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    monkeypatch.setenv("SAHARA_NODE_RPC_URL", live_node)
    protocol_setup(cli, live_node, tmp_path)
    MADE["api_license"] = MADE["buy"]
    vault_setup(cli, tmp_path)
    sent = cli("--json", "tx", "send", "--to", ADDRESS, "--value", "0.01").json()
    MADE["tx"] = sent["tx"]["hash"] if "tx" in sent else sent["hash"]
    args = COMMANDS[name]()
    document = cli("--json", *args).json()
    text = cli(*args, env={"COLUMNS": "80"})
    assert text.exit_code == 0, text.stderr
    # Each hash, address, CID or URL printed is one of the document's values, whole, or
    # a deliberate abbreviation (ending in an ellipsis) of one printed in full elsewhere.
    values = set(long_values(document))
    tokens = [t for t in TOKEN.findall(text.stdout) if len(t) >= 20]
    assert tokens or name in {"config show", "vault status", "market list"}, "no long value printed"
    cut = [t for t in tokens if not t.endswith("…") and t.rstrip(".,;)") not in values]
    assert not cut, f"cut or folded: {cut}\n{text.stdout}"
