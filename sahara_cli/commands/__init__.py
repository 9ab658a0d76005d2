"""The ``sahara`` command line: one Typer app per group, thin over the library.

Each command parses its options, calls one library function and renders the result
through :mod:`sahara_cli.commands._output` (a Rich view, or one JSON document).
"""

from sahara_cli.commands._help import install as _install_help

_install_help()
