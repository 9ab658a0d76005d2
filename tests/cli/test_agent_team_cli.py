"""``agent team run`` and the network: p2p members listen beyond loopback only with
``--network``."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Invoke


def test_p2p_team_beyond_loopback_needs_network(
    initialised: Path, tmp_path: Path, cli: Invoke
) -> None:
    team = tmp_path / "wide.toml"
    team.write_text('name = "wide"\nmode = "p2p"\nmembers = ["m0", "m1"]\nhost = "0.0.0.0"\n')
    refused = cli("--json", "agent", "team", "run", str(team), "--task", "anything")
    assert refused.exit_code == 2, refused.stderr
    error = refused.error()
    assert error["code"] == "agent.network_not_allowed"
    assert "--network" in error["hint"]
    # With --network the run goes on (and stops at the members this home lacks).
    allowed = cli("--json", "agent", "team", "run", str(team), "--task", "anything", "--network")
    assert allowed.error()["code"] == "agent.team_error"
    assert "no agent named 'm0', 'm1'" in allowed.error()["message"]
