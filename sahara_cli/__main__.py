"""Entry point of the ``sahara`` console script (and ``python -m sahara_cli``).

``sahara --version`` answers here, before Typer or anything heavy is imported.
"""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args in (["--version"], ["--json", "--version"], ["--version", "--json"]):
        from sahara_cli import __version__

        if "--json" in args:
            sys.stdout.write(f'{{"name": "sahara", "version": "{__version__}"}}\n')
        else:
            sys.stdout.write(f"sahara {__version__}\n")
        sys.exit(0)
    import os

    # pydantic looks for plugins in the entry points of every installed distribution when
    # it builds its first model (tens of milliseconds with torch and friends installed);
    # the command line loads none. A caller that wants its plugins sets the variable.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from sahara_cli.commands.main import run

    sys.exit(run(args))


if __name__ == "__main__":
    main()
