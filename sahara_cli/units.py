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
