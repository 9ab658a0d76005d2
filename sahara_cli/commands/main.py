"""The root ``sahara`` app: global options, the command groups, and error handling."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from sahara_cli import __version__
from sahara_cli.commands._lazy import Entry, LazyGroup
from sahara_cli.commands._state import AppState
from sahara_cli.errors import ExitCode, SaharaError, UsageError

HELP = """\
Run a Sahara AI chain node, keep AI assets in an encrypted vault, and register,
license and attribute them on chain.

Global options may also be given after the command: 'sahara id list --json'.
"""

#: Every command of the root app, in the order ``sahara --help`` lists them: the name, where
#: it lives (``"module:attribute"``: a ``typer.Typer`` group or a command function) and the
#: first paragraph of its help. A command's module is imported only when the command runs,
#: shows its help or is walked; adding a command group is one line here.
COMMANDS: tuple[Entry, ...] = (
    Entry(
        "init",
        "sahara_cli.commands.init:init",
        "Create the home, its config and a first Sahara ID. Safe to run twice.",
    ),
    Entry(
        "doctor",
        "sahara_cli.commands.doctor:doctor",
        "Check Python, packages, the home and its permissions, the config, the node, and\n"
        "the external programs (Kubo, CometBFT, llama.cpp, Node.js): version, where each was\n"
        "found (a setting, the environment, the project's cache or PATH), how to get it.",
    ),
    Entry(
        "setup",
        "sahara_cli.commands.setup:app",
        "Build the pinned Kubo and CometBFT with 'go install' into the project's cache, "
        "where every command finds them.",
    ),
    Entry(
        "balance",
        "sahara_cli.commands.tx:balance",
        "Show the SAH balance of an address or Sahara ID.",
    ),
    Entry(
        "claim",
        "sahara_cli.commands.attribute:claim",
        "Claim all revenue credited to your Sahara ID by the assets you contributed to.",
    ),
    Entry(
        "events",
        "sahara_cli.commands.events:events",
        "List the events of the protocol contracts and the SAPs, newest first, filtered by\n"
        "contract, event, asset, address and block range.",
    ),
    Entry(
        "schema",
        "sahara_cli.commands.schema:schema",
        "Print the JSON Schema of COMMAND's --json document.",
    ),
    Entry(
        "config",
        "sahara_cli.commands.config:app",
        "Show and change settings (file, environment and defaults).",
    ),
    Entry("id", "sahara_cli.commands.id:app", "Manage Sahara IDs: keys, keystores and signatures."),
    Entry("node", "sahara_cli.commands.node:app", "Run the local Sahara chain node and manage it."),
    Entry(
        "localnet",
        "sahara_cli.commands.localnet:app",
        "Run a local network of CometBFT validators (each with its Sahara app) on 127.0.0.1.",
    ),
    Entry(
        "light",
        "sahara_cli.commands.light:app",
        "A light client: headers verified by CometBFT's light client, balances and storage "
        "verified with eth_getProof against them.",
    ),
    Entry("tx", "sahara_cli.commands.tx:app", "Send and inspect transactions."),
    Entry(
        "asset", "sahara_cli.commands.asset:app", "Register AI assets on chain and look them up."
    ),
    Entry(
        "license", "sahara_cli.commands.license:app", "Offer, buy and check licenses of AI assets."
    ),
    Entry(
        "attribute",
        "sahara_cli.commands.attribute:app",
        "Record contributors of assets and see how revenue flows.",
    ),
    Entry("market", "sahara_cli.commands.market:app", "Browse and search license offers."),
    Entry(
        "vault",
        "sahara_cli.commands.vault:app",
        "Encrypted, content-addressed storage for AI assets, on IPFS when you want it.",
    ),
    Entry(
        "model",
        "sahara_cli.commands.model:app",
        "Keep the models agents run: pull from Hugging Face, add files, pick a default.",
    ),
    Entry(
        "agent",
        "sahara_cli.commands.agent:app",
        "Agents: a persona, a model, tools and memory, answering with sources.",
    ),
    Entry(
        "compute",
        "sahara_cli.commands.compute:app",
        "Train and merge models on licensed vault data; the chain records and pays for each job.",
    ),
    Entry(
        "mcp",
        "sahara_cli.commands.mcp:app",
        "Model Context Protocol: vault search, asset and license lookups for any agent.",
    ),
    Entry(
        "provenance",
        "sahara_cli.commands.provenance:app",
        "Answers' records and training jobs on chain: their assets and payouts, checked "
        "against the local records.",
    ),
)


class _Root(LazyGroup):
    entries = COMMANDS


app = typer.Typer(
    cls=_Root,
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
