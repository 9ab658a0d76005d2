"""Numbers shown to people: sizes in bytes, amounts in SAH."""

from __future__ import annotations


def human_size(size: int) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 GiB``: binary units, one decimal above bytes."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def format_sah(wei: int) -> str:
    """Wei as SAH with up to 18 decimals, trailing zeros trimmed: 1.5, 0.000001, 10000."""
    sign = "-" if wei < 0 else ""
    whole, frac = divmod(abs(wei), 10**18)
    return sign + f"{whole}.{frac:018d}".rstrip("0").rstrip(".")


_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_seconds(text: str, what: str = "--block-time", *, allow_zero: bool = False) -> float:
    """A duration as seconds: ``1s``, ``500ms``, ``0.5s``, ``2m``, ``1h`` or a plain number
    of seconds (``1``, ``0.25``). ``allow_zero`` accepts 0 (a node's "on every
    transaction"); negative values never pass. Raises ``UsageError``."""
    import re

    from sahara_cli.errors import UsageError

    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*", text.lower())
    if match is None:
        raise UsageError(
            f"{what} must be a duration such as 1s, 500ms or 2m, got {text!r}",
            hint="Write a number of seconds (1, 0.5) or one with a unit: ms, s, m, h.",
        )
    value = float(match.group(1)) * _SECONDS[match.group(2) or "s"]
    if value == 0 and not allow_zero:
        raise UsageError(f"{what} must be positive, got {text!r}")
    return value
