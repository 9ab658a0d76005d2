"""The ports a localnet saves lie outside the range outgoing connections take."""

from __future__ import annotations

import random
import socket

import pytest

from sahara_cli.node import localnet
from sahara_cli.node.localnet import ephemeral_low, saved_port


def test_saved_ports_are_below_the_ephemeral_range() -> None:
    used: set[int] = set()
    for _ in range(50):
        port = saved_port(used)
        assert port not in used
        assert port < ephemeral_low()
        used.add(port)


class Draws(random.Random):
    """Draws the given ports in turn (a named stand-in for the random generator)."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__(0)
        self.ports = ports

    def randint(self, a: int, b: int) -> int:
        return self.ports.pop(0)


def test_a_taken_or_used_port_is_never_saved() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        used = saved_port(set())
        other = saved_port({used})
        # The draws: a port another program listens on, one the localnet already uses,
        # then a free one.
        assert saved_port({used}, rng=Draws([busy, used, other])) == other


def test_a_full_range_falls_back_to_a_port_the_system_picks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(localnet, "port_free", lambda port: False)
    port = saved_port(set())
    assert port >= ephemeral_low()


def test_the_ephemeral_range_is_read_from_the_system() -> None:
    low = ephemeral_low()
    assert 1024 <= low <= 65535
