"""One duration syntax for block times (node and localnet): units, plain seconds, zero."""

from __future__ import annotations

import pytest

from sahara_cli.errors import UsageError
from sahara_cli.units import parse_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("0.5s", 0.5), ("2m", 120.0), ("1h", 3600.0),
     ("3", 3.0), ("0.25", 0.25), (" 1S ", 1.0), (".5", 0.5)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-1", "1d", "1 s s", "s"])
def test_not_a_duration(text: str) -> None:
    with pytest.raises(UsageError, match="must be a duration such as 1s, 500ms"):
        parse_seconds(text)


def test_zero_only_where_allowed() -> None:
    assert parse_seconds("0", allow_zero=True) == 0.0
    assert parse_seconds("0s", allow_zero=True) == 0.0
    with pytest.raises(UsageError, match="--block-time must be positive"):
        parse_seconds("0ms")
