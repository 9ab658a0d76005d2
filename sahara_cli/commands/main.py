"""The root ``sahara`` app: global options, the command groups, and error handling."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from sahara_cli import __version__
from sahara_cli.commands import agent as agent_cmd
from sahara_cli.commands import asset as asset_cmd
from sahara_cli.commands import attribute as attribute_cmd
from sahara_cli.commands import config as config_cmd
from sahara_cli.commands import doctor as doctor_cmd
from sahara_cli.commands import events as events_cmd
from sahara_cli.commands import id as id_cmd
from sahara_cli.commands import init as init_cmd
from sahara_cli.commands import license as license_cmd
from sahara_cli.commands import light as light_cmd
from sahara_cli.commands import localnet as localnet_cmd
from sahara_cli.commands import market as market_cmd
from sahara_cli.commands import mcp as mcp_cmd
from sahara_cli.commands import model as model_cmd
from sahara_cli.commands import node as node_cmd
from sahara_cli.commands import schema as schema_cmd
from sahara_cli.commands import setup as setup_cmd
from sahara_cli.commands import tx as tx_cmd
from sahara_cli.commands import vault as vault_cmd
from sahara_cli.commands._state import AppState
from sahara_cli.errors import ExitCode, SaharaError, UsageError

HELP = """\
Run a Sahara AI chain node, keep AI assets in an encrypted vault, and register,
license and attribute them on chain.

Global options may also be given after the command: 'sahara id list --json'.
"""

app = typer.Typer(
    name="sahara",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


_json_requested = False


def _version(value: bool) -> None:
    if value:
        if _json_requested:
            typer.echo(f'{{"name": "sahara", "version": "{__version__}"}}')
        else:
            typer.echo(f"sahara {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="SAHARA_HOME",
            help="Home directory for config, keys and data.",
            show_default="per-user data dir",
        ),
    ] = None,
    json_mode: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON document on stdout; errors as JSON on stderr."),
    ] = False,
    no_prompt: Annotated[
        bool, typer.Option("--no-prompt", help="Never ask: fail when input would be needed.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log more to stderr (-vv for debug).")
    ] = 0,
    version: Annotated[  # noqa: ARG001  # handled by its eager callback
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    state = AppState(
        home_flag=home, json=json_mode, no_prompt=no_prompt, debug=debug, verbose=verbose
    )
    ctx.obj = state
    from sahara_cli.log import setup_logging

    setup_logging(state.home.logs_dir, verbose=verbose, debug=debug)


app.add_typer(config_cmd.app, name="config")
app.add_typer(id_cmd.app, name="id")
app.command("init")(init_cmd.init)
app.command("doctor")(doctor_cmd.doctor)
app.add_typer(setup_cmd.app, name="setup")
app.add_typer(node_cmd.app, name="node")
app.add_typer(localnet_cmd.app, name="localnet")
app.add_typer(light_cmd.app, name="light")
app.add_typer(tx_cmd.app, name="tx")
app.command("balance")(tx_cmd.balance)
app.add_typer(asset_cmd.app, name="asset")
app.add_typer(license_cmd.app, name="license")
app.add_typer(attribute_cmd.app, name="attribute")
app.command("claim")(attribute_cmd.claim)
app.add_typer(market_cmd.app, name="market")
app.command("events")(events_cmd.events)
app.add_typer(vault_cmd.app, name="vault")
app.add_typer(model_cmd.app, name="model")
app.add_typer(agent_cmd.app, name="agent")
app.add_typer(mcp_cmd.app, name="mcp")
app.command("schema")(schema_cmd.schema)

GLOBAL_FLAGS = ("--json", "--no-prompt", "--debug")


def hoist_global_flags(argv: Sequence[str]) -> list[str]:
    """Move global boolean flags given after the command to the front."""
    args = list(argv)
    end = args.index("--") if "--" in args else len(args)
    hoisted = [a for a in args[:end] if a in GLOBAL_FLAGS]
    rest = [a for a in args[:end] if a not in GLOBAL_FLAGS]
    return list(dict.fromkeys(hoisted)) + rest + args[end:]


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return the exit status; never raises."""
    from typer._click import exceptions as click_exc
    from typer.exceptions import Abort

    from sahara_cli.commands._output import Output

    args = hoist_global_flags(sys.argv[1:] if argv is None else argv)
    flags = set(args[: args.index("--")] if "--" in args else args)
    output = Output(json_mode="--json" in flags, debug="--debug" in flags)
    global _json_requested  # noqa: PLW0603  # read by the eager --version callback
    _json_requested = output.json_mode
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="sahara", standalone_mode=False)
    except SaharaError as exc:
        _log_error(exc)
        output.error(exc)
        if output.debug:
            import traceback

            traceback.print_exc()
        return exc.exit_code
    except click_exc.NoArgsIsHelpError as exc:
        if output.json_mode:
            output.error(
                UsageError("no command given", hint="Run 'sahara --help' for the commands.")
            )
            return ExitCode.USAGE
        sys.stdout.write(exc.format_message() + "\n")
        return ExitCode.OK
    except click_exc.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx else "sahara"
        output.error(UsageError(exc.format_message(), hint=f"Run '{path} --help' for usage."))
        return ExitCode.USAGE
    except click_exc.ClickException as exc:
        output.error(SaharaError(exc.format_message()))
        return exc.exit_code
    except (Abort, KeyboardInterrupt, EOFError):
        output.error(SaharaError("aborted", code="aborted"))
        return ExitCode.INTERRUPTED
    except Exception as exc:  # a bug: say so in one line, the traceback only with --debug
        import traceback

        _log_error(exc)
        if output.debug:
            traceback.print_exc()
        output.error(
            SaharaError(
                f"internal error: {type(exc).__name__}: {exc}",
                code="internal",
                hint="Rerun with --debug for the traceback, and please report it.",
            )
        )
        return ExitCode.ERROR
    return result if isinstance(result, int) else ExitCode.OK


def _log_error(exc: BaseException) -> None:
    import logging

    logging.getLogger("sahara").debug("command failed", exc_info=exc)
