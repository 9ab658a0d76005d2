"""The Go programs the end-to-end tests run, found the way the CLI finds them."""

from __future__ import annotations

from sahara_cli.errors import SaharaError
from sahara_cli.gobin import GoBinary, find_binary


def found_binary(binary: GoBinary) -> str | None:
    """``binary``'s path by the library's lookup (environment, cache, PATH), or None."""
    try:
        return find_binary(binary)
    except SaharaError:
        return None
