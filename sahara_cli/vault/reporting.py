"""How the vault's long workflows report progress without knowing who is watching.

A workflow takes a :class:`Reporter`: ``progress(description, total)`` opens a byte
count and yields ``advance(n_bytes)``; ``status(message)`` names a slow step and yields
a function to update its text. The CLI passes its output (a bar and a spinner on a
terminal, silence for scripts); other programs pass their own, or nothing
(:data:`SILENT`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

__all__ = ["SILENT", "Reporter", "Silent"]


class Reporter(Protocol):
    def progress(
        self, description: str, total: int | None
    ) -> AbstractContextManager[Callable[[int], None]]: ...

    def status(self, message: str) -> AbstractContextManager[Callable[[str], None]]: ...


class Silent:
    """A reporter that says nothing."""

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:  # noqa: ARG002
        yield lambda _n: None

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:  # noqa: ARG002
        yield lambda _msg: None


SILENT: Reporter = Silent()
