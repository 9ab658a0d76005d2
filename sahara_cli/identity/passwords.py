"""Where the password of a Sahara ID comes from: a file, the environment, or a person.

The order is the same for every caller (the CLI, the TUI, a server): ``--password-file``,
then ``SAHARA_PASSWORD``, then a prompt. A prompt is only possible on a terminal: with
standard input piped or closed (``echo | sahara ...``, ``< /dev/null``, a CI job) the
password would be read in clear from the pipe, so that case fails like ``--no-prompt``,
with the same code (``identity.password_required``) and a hint naming the two sources.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from sahara_cli.errors import PasswordRequired, SecretInvalid

PASSWORD_ENV = "SAHARA_PASSWORD"  # noqa: S105  # the variable name, not a password

#: Asks a person for a password: called with the prompt text and whether to ask twice.
Ask = Callable[[str, bool], str]


def why_no_prompt(*, no_prompt: bool, stdin: TextIO | None = None) -> str | None:
    """Why nobody can be asked (``None`` when a prompt may be shown).

    ``no_prompt`` is the ``--no-prompt`` flag; ``stdin`` (default ``sys.stdin``) must be
    a terminal for a person to type a hidden password into it.
    """
    if no_prompt:
        return "prompting is off (--no-prompt)"
    stream = sys.stdin if stdin is None else stdin
    try:
        terminal = stream is not None and stream.isatty()
    except (ValueError, OSError):  # a closed or detached stream
        terminal = False
    if not terminal:
        return "standard input is not a terminal to ask on"
    return None


def read_password(
    password_file: Path | None,
    *,
    purpose: str,
    ask: Ask | None,
    cannot_ask: str = "prompting is off (--no-prompt)",
    new: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str:
    """A password from ``password_file``, then ``SAHARA_PASSWORD``, then ``ask``.

    ``purpose`` completes "a password is needed to ..."; with ``ask`` None nobody can be
    asked and :class:`PasswordRequired` says why (``cannot_ask``, see
    :func:`why_no_prompt`). A ``new`` password must not be empty.
    """
    from sahara_cli.identity.store import read_secret_file

    env = os.environ if environ is None else environ
    if password_file is not None:
        secret = read_secret_file(password_file, "password", first_line=True)
    elif env.get(PASSWORD_ENV):
        secret = env[PASSWORD_ENV]
    elif ask is None:
        raise PasswordRequired(f"a password is needed to {purpose}, and {cannot_ask}")
    else:
        secret = ask(f"Password to {purpose}", new)
    if new and not secret:
        raise SecretInvalid("the password must not be empty")
    return secret
