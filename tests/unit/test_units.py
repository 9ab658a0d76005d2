from __future__ import annotations

import pytest

from sahara_cli.units import human_size


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * 1024**2, "5.0 MiB"),
        (3 * 1024**3 + 1024**3 // 2, "3.5 GiB"),
        (2048 * 1024**4, "2048.0 TiB"),
    ],
)
def test_sizes_read_in_binary_units(size: int, shown: str) -> None:
    assert human_size(size) == shown
