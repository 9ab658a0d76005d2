"""sahara config: read and change settings in <home>/config.toml."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._state import state

app = typer.Typer(
    help="Show and change settings (file, environment and defaults).", no_args_is_help=True
)

Key = Annotated[str, typer.Argument(help="Dotted key, e.g. node.rpc_url.", show_default=False)]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@app.command("show")
def show() -> None:
    """Show every setting with its value and where it comes from."""
    st = state()
    loaded = st.config()
    file = st.home.config_file
    values: dict[str, dict[str, Any]] = {}
    for info, value, _ in loaded.items():
        values.setdefault(info.section, {})[info.name] = value
    data = {
        "path": str(file),
        "exists": file.exists(),
        "values": values,
        "sources": {info.key: source for info, _, source in loaded.items()},
    }

    def render(console: Console) -> None:
        table = Table(title=f"config: {file}", title_justify="left")
        table.add_column("key", style="bold")
        table.add_column("value")
        table.add_column("source", style="dim")
        for info, value, source in loaded.items():
            table.add_row(info.key, _text(value), source)
        console.print(table)

    st.output.result(data, render)


@app.command("get")
def get(key: Key) -> None:
    """Print the effective value of KEY."""
    st = state()
    loaded = st.config()
    value = loaded.get(key)
    source = loaded.sources.get(key, "default")
    st.output.result(
        {"key": key, "value": value, "source": source},
        lambda console: console.print(_text(value), markup=False),
    )


@app.command("set")
def set_(
    key: Key,
    value: Annotated[str, typer.Argument(help="New value; checked before it is written.")],
) -> None:
    """Set KEY to VALUE in the config file (validated, written atomically)."""
    from sahara_cli.config import set_value

    st = state()
    home = st.home.require()
    typed = set_value(home.config_file, key, value)
    st.output.result(
        {"key": key, "value": typed, "path": str(home.config_file)},
        lambda console: console.print(f"{key} = {_text(typed)!r} [dim]({home.config_file})[/]"),
    )


@app.command("unset")
def unset(key: Key) -> None:
    """Remove KEY from the config file so its default applies again."""
    from sahara_cli.config import unset_value

    st = state()
    home = st.home.require()
    removed = unset_value(home.config_file, key)
    st.output.result(
        {"key": key, "removed": removed, "path": str(home.config_file)},
        lambda console: console.print(
            f"{key} removed from {home.config_file}"
            if removed
            else f"{key} was not set in the file"
        ),
    )


@app.command("path")
def path() -> None:
    """Print the path of the config file."""
    st = state()
    file = st.home.config_file
    st.output.result(
        {"path": str(file), "exists": file.exists()},
        lambda console: console.print(str(file), markup=False),
    )
