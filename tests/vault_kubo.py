"""A real Kubo daemon for tests, on a temporary repo (loopback only).

The binary is the library's lookup (``SAHARA_IPFS_BIN``, the project's cache where
``scripts/_setup.sh`` and ``sahara setup kubo`` build it, then PATH), done when the module
is imported, because ``tests/conftest.py`` clears every ``SAHARA_*`` variable around
each test. Use it from a test module as::

    @pytest.fixture(scope="module")
    def kubo(tmp_path_factory):
        with running_kubo(tmp_path_factory.mktemp("kubo")) as daemon:
            yield daemon
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sahara_cli.gobin import KUBO
from sahara_cli.vault.kubo import KuboDaemon
from tests.gobin import found_binary

IPFS_BIN: str | None = found_binary(KUBO)


def ipfs_bin() -> str:
    """The Kubo binary; fails the test (like tests/e2e/test_vault_kubo_cids.py) without one."""
    if not IPFS_BIN:
        pytest.fail(
            "Kubo was not found (SAHARA_IPFS_BIN, the cache, PATH): run 'sahara setup kubo', "
            "run the tests through scripts/test, or export SAHARA_IPFS_BIN=/path/to/ipfs",
            pytrace=False,
        )
    if not Path(IPFS_BIN).is_file():
        pytest.fail(f"SAHARA_IPFS_BIN={IPFS_BIN} is not a file", pytrace=False)
    return IPFS_BIN


def new_daemon(base: Path, *, local_only: bool = True, **ports: int | None) -> KuboDaemon:
    """An initialised (not started) daemon on ``base/ipfs``; ports default to 0, which
    lets the kernel pick free ones at start (no race with other tests)."""
    daemon = KuboDaemon(base / "ipfs", ipfs_bin())
    daemon.init(
        local_only=local_only,
        api_port=ports.get("api_port", 0),
        gateway_port=ports.get("gateway_port", 0),
        swarm_port=ports.get("swarm_port", 0),
    )
    return daemon


@contextmanager
def running_kubo(base: Path, *, timeout: float = 30.0) -> Iterator[KuboDaemon]:
    """A started local-only daemon, stopped (no orphan) when the block ends."""
    daemon = new_daemon(base)
    daemon.start(timeout=timeout)
    try:
        yield daemon
    finally:
        daemon.stop()
