"""The protocol contracts as fixtures, for the test modules that load this plugin:
``deployed`` once a module, ``p`` the same contracts rolled back after each test, and
``accts`` its funded accounts."""

from __future__ import annotations

from collections.abc import Iterator

import boa
import pytest

from tests.unit.test_protocol_contracts import Protocol, deploy


@pytest.fixture(scope="module")
def deployed() -> Iterator[Protocol]:
    with boa.swap_env(boa.Env()):
        yield deploy(boa.env)


@pytest.fixture
def p(deployed: Protocol) -> Iterator[Protocol]:
    with deployed.env.anchor():
        yield deployed


@pytest.fixture
def accts(p: Protocol) -> list[str]:
    return p.accounts
