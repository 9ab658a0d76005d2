"""KuboDaemon and find_ipfs against the real Kubo binary: init, start, status, stop,
and the ways a start fails (a port in use, a daemon that exits, no binary).

Every daemon runs on a temporary repo with loopback addresses and is stopped in a
``finally``; each test checks that its process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sahara_cli.errors import (
    VaultBackendError,
    VaultBackendUnreachable,
    VaultError,
    VaultExists,
    VaultKuboMissing,
    VaultNotSetUp,
    VaultPortInUse,
)
from sahara_cli.vault.kubo import (
    KuboBlockstore,
    KuboDaemon,
    find_ipfs,
    multiaddr_to_url,
)
from tests.vault_kubo import ipfs_bin, new_daemon


def gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether ``pid`` has exited (reaped here when it is this process's child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


# -- no daemon needed ----------------------------------------------------------------------


def test_find_ipfs_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ipfs_bin()
    monkeypatch.delenv("SAHARA_IPFS_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("SAHARA_CACHE", str(tmp_path / "no-cache"))
    with pytest.raises(VaultKuboMissing, match="not found") as caught:
        find_ipfs()
    assert caught.value.code == "vault.kubo_missing"
    assert "go install" in (caught.value.hint or "")
    monkeypatch.setenv("SAHARA_IPFS_BIN", real)
    assert find_ipfs() == real
    assert find_ipfs(real) == real
    with pytest.raises(VaultKuboMissing, match=r"vault\.ipfs_bin"):
        find_ipfs(str(tmp_path / "no-such-ipfs"))
    (tmp_path / "ipfs").symlink_to(real)
    monkeypatch.delenv("SAHARA_IPFS_BIN")
    assert find_ipfs() == str(tmp_path / "ipfs")


def test_missing_binary(tmp_path: Path) -> None:
    daemon = KuboDaemon(tmp_path / "ipfs", str(tmp_path / "no-such-ipfs"))
    with pytest.raises(VaultKuboMissing, match="no-such-ipfs"):
        daemon.init()
    (daemon.repo / "config").write_text(json.dumps({"Identity": {"PeerID": "x"}}))
    with pytest.raises(VaultKuboMissing, match="no-such-ipfs"):
        daemon.start()
    assert not daemon.pid_file.exists()


def test_multiaddr_to_url() -> None:
    assert multiaddr_to_url("/ip4/127.0.0.1/tcp/5001") == "http://127.0.0.1:5001"
    assert multiaddr_to_url("/ip4/0.0.0.0/tcp/5001") == "http://127.0.0.1:5001"
    assert multiaddr_to_url("/ip6/::1/tcp/5001") == "http://[::1]:5001"
    assert multiaddr_to_url("/dns4/ipfs.local/tcp/80/http") == "http://ipfs.local:80"
    with pytest.raises(VaultBackendError, match="unix"):
        multiaddr_to_url("/unix/tmp/api.sock")


def test_init_local_only(tmp_path: Path) -> None:
    daemon = KuboDaemon(tmp_path / "ipfs", ipfs_bin())
    peer = daemon.init(local_only=True)
    config = json.loads(daemon.config_file.read_text())
    assert peer.startswith("12D3")
    assert config["Identity"]["PeerID"] == peer == daemon.peer_id
    assert config["Bootstrap"] == []
    assert config["Routing"]["Type"] == "none"
    assert config["Discovery"]["MDNS"]["Enabled"] is False
    assert config["AutoConf"]["Enabled"] is False
    assert config["Plugins"]["Plugins"]["telemetry"]["Config"]["Mode"] == "off"
    addresses = config["Addresses"]
    for addr in [addresses["API"], addresses["Gateway"], *addresses["Swarm"]]:
        assert addr.startswith("/ip4/127.0.0.1/tcp/")
        assert int(addr.rsplit("/", 1)[1]) > 0  # picked at init: stable across restarts
    assert daemon.api_url == multiaddr_to_url(addresses["API"])
    assert daemon.config_file.stat().st_mode & 0o777 == 0o600
    status = daemon.status()
    assert status["running"] is False
    assert status["peer_id"] == peer
    with pytest.raises(VaultExists, match="exists already") as caught:
        daemon.init()
    assert caught.value.code == "vault.kubo_repo_exists"


def test_init_for_the_network(tmp_path: Path) -> None:
    daemon = KuboDaemon(tmp_path / "ipfs", ipfs_bin())
    daemon.init(local_only=False)
    config = json.loads(daemon.config_file.read_text())
    assert config["Bootstrap"], "a network repo keeps Kubo's bootstrap peers"
    assert config.get("Routing", {}).get("Type") != "none"
    assert config["Addresses"]["API"].startswith("/ip4/127.0.0.1/")
    assert config["Addresses"]["Gateway"].startswith("/ip4/127.0.0.1/")
    assert config["Plugins"]["Plugins"]["telemetry"]["Config"]["Mode"] == "off"


def test_start_without_repo(tmp_path: Path) -> None:
    daemon = KuboDaemon(tmp_path / "ipfs", ipfs_bin())
    with pytest.raises(VaultNotSetUp, match="no IPFS repo") as caught:
        daemon.start()
    assert caught.value.code == "vault.kubo_no_repo"
    assert daemon.stop() is None
    assert daemon.status()["running"] is False


def test_api_url_of_a_dynamic_port_needs_the_daemon(tmp_path: Path) -> None:
    daemon = new_daemon(tmp_path)  # port 0: chosen at each start
    with pytest.raises(VaultBackendUnreachable, match="not running"):
        _ = daemon.api_url


# -- real daemons --------------------------------------------------------------------------


@pytest.mark.e2e
def test_start_status_stop(tmp_path: Path) -> None:
    daemon = KuboDaemon(tmp_path / "ipfs", ipfs_bin())
    daemon.init(local_only=True)
    try:
        status = daemon.start(timeout=30)
        pid = status["pid"]
        assert status["running"] is True
        assert isinstance(pid, int)
        assert daemon.pid_file.read_text().strip() == str(pid)
        assert status["api_url"] == daemon.api_url
        assert status["peer_id"] == daemon.peer_id
        assert status["version"] == "0.39.0"
        assert status["repo_size"] > 0
        assert daemon.log_file.is_file()
        # The API works, and a second start leaves the running daemon alone.
        with KuboBlockstore(daemon.api_url) as store:
            assert store.stat().blocks >= 0
        assert daemon.start()["pid"] == pid
    finally:
        stopped = daemon.stop()
    assert stopped == pid
    assert gone(pid)
    assert not daemon.pid_file.exists()
    assert daemon.status()["running"] is False
    assert daemon.stop() is None
    # It starts again on the same repo (same ports, picked at init).
    try:
        again = daemon.start(timeout=30)
        assert again["api_url"] == status["api_url"]
    finally:
        daemon.stop()
    assert gone(again["pid"])


@pytest.mark.e2e
def test_stop_when_the_daemon_already_died(tmp_path: Path) -> None:
    daemon = new_daemon(tmp_path)
    try:
        pid = daemon.start(timeout=30)["pid"]
        os.kill(pid, signal.SIGKILL)
        assert gone(pid)
        assert daemon.status()["running"] is False
        assert daemon.stop() is None  # no error; the stale pid file goes
        assert not daemon.pid_file.exists()
        # A killed daemon leaves repo.lock and api behind; a new start copes.
        again = daemon.start(timeout=30)
        assert again["running"] is True
        assert again["pid"] != pid
    finally:
        daemon.stop()
    assert gone(again["pid"])


@pytest.mark.e2e
def test_stop_kills_a_daemon_that_ignores_sigterm(tmp_path: Path) -> None:
    daemon = new_daemon(tmp_path)
    try:
        pid = daemon.start(timeout=30)["pid"]
        os.kill(pid, signal.SIGSTOP)  # a stopped process does not act on SIGTERM
        assert daemon.stop(timeout=0.5) == pid
    finally:
        daemon.stop()
    assert gone(pid)
    assert not (daemon.repo / "api").exists()


@pytest.mark.e2e
def test_crashed_daemon_reports_its_log(tmp_path: Path) -> None:
    daemon = new_daemon(tmp_path)
    (daemon.repo / "version").write_text("999\n")  # a repo from a newer Kubo
    with pytest.raises(VaultError) as caught:
        daemon.start(timeout=30)
    err = caught.value
    assert err.code == "vault.kubo_start_failed"
    assert err.message.startswith("the IPFS daemon exited with status 1 before it was ready:")
    assert "lower than your repos (999)" in err.message
    assert "\n" not in err.message
    assert str(daemon.log_file) in (err.hint or "")
    assert any("999" in line for line in err.details["log"])
    assert not daemon.pid_file.exists()
    assert daemon.status()["running"] is False


@pytest.mark.e2e
@pytest.mark.parametrize("which", ["api_port", "swarm_port"])
def test_port_in_use(tmp_path: Path, which: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        daemon = new_daemon(tmp_path, **{which: port})
        try:
            with pytest.raises(VaultPortInUse) as caught:
                daemon.start(timeout=30)
        finally:
            daemon.stop()
    err = caught.value
    assert err.code == "vault.kubo_port_in_use"
    key = {"api_port": "Addresses.API", "swarm_port": "Addresses.Swarm"}[which]
    assert err.message == (
        f"the IPFS daemon cannot listen on 127.0.0.1:{port} ({key}): the port is in use"
    )
    assert key in (err.hint or "")
    assert not daemon.pid_file.exists()


@pytest.mark.e2e
def test_a_daemon_started_outside_sahara_is_seen(tmp_path: Path) -> None:
    daemon = new_daemon(tmp_path)
    env = {**os.environ, "IPFS_PATH": str(daemon.repo), "IPFS_TELEMETRY": "off"}
    outside = subprocess.Popen(
        [ipfs_bin(), "daemon"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while not daemon.status()["running"]:
            assert outside.poll() is None, "ipfs daemon exited"
            assert time.monotonic() < deadline, "ipfs daemon did not start"
            time.sleep(0.05)
        status = daemon.status()
        assert status["pid"] is None  # not ours: no pid file
        assert status["peer_id"] == daemon.peer_id
        assert daemon.start()["api_url"] == status["api_url"]  # left as it is
        assert not daemon.pid_file.exists()
        assert daemon.stop() is None  # sahara stops only what it started
        assert outside.poll() is None
    finally:
        outside.terminate()
        outside.wait(timeout=10)
