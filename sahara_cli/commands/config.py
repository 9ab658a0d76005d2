"""sahara config: read and change settings in <home>/config.toml."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._output import returns
from sahara_cli.commands._state import state

app = typer.Typer(
    help="Show and change settings (file, environment and defaults).", no_args_is_help=True
)

Key = Annotated[str, typer.Argument(help="Dotted key, e.g. node.rpc_url.", show_default=False)]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@app.command("show")
@returns("sahara_cli.config:ConfigReport")
def show() -> None:
    """Show every setting with its value and where it comes from."""
    from sahara_cli.config import iter_keys, show_config

    st = state()
    report = show_config(st.config(), st.home.config_file)

    def render(console: Console) -> None:
        table = Table(title=f"config: {report.path}", title_justify="left")
        table.add_column("key", style="bold")
        table.add_column("value")
        table.add_column("source", style="dim")
        for info in iter_keys():
            value = getattr(getattr(report.values, info.section), info.name)
            table.add_row(info.key, _text(value), report.sources[info.key])
        console.print(table)

    st.output.result(report, render)


@app.command("get")
@returns("sahara_cli.config:ConfigValue")
def get(key: Key) -> None:
    """Print the effective value of KEY."""
    from sahara_cli.config import get_setting

    st = state()
    got = get_setting(st.config(), key)
    st.output.result(got, lambda console: console.print(_text(got.value), markup=False))


@app.command("set")
@returns("sahara_cli.config:ConfigChange")
def set_(
    key: Key,
    value: Annotated[str, typer.Argument(help="New value; checked before it is written.")],
) -> None:
    """Set KEY to VALUE in the config file (validated, written atomically)."""
    from sahara_cli.config import set_setting

    st = state()
    changed = set_setting(st.home.require().config_file, key, value)
    st.output.result(
        changed,
        lambda console: console.print(f"{key} = {_text(changed.value)!r} [dim]({changed.path})[/]"),
    )


@app.command("unset")
@returns("sahara_cli.config:ConfigRemoval")
def unset(key: Key) -> None:
    """Remove KEY from the config file so its default applies again."""
    from sahara_cli.config import unset_setting

    st = state()
    removal = unset_setting(st.home.require().config_file, key)
    st.output.result(
        removal,
        lambda console: console.print(
            f"{key} removed from {removal.path}"
            if removal.removed
            else f"{key} was not set in the file"
        ),
    )


@app.command("path")
@returns("sahara_cli.config:ConfigLocation")
def path() -> None:
    """Print the path of the config file."""
    from sahara_cli.config import config_location

    st = state()
    where = config_location(st.home.config_file)
    st.output.result(where, lambda console: console.print(str(where.path), markup=False))
