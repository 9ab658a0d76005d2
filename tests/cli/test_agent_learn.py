"""``sahara agent learn`` through the CLI: the agent's ID is unlocked to read its sealed
feedback (a clear error, and nothing trained, when no password can be asked for); the
adapter is then named by ``agent show`` and used by ``agent chat``."""

from __future__ import annotations

from pathlib import Path

from tests.compute.learning import learning_agent
from tests.conftest import Invoke


def test_learn_unlocks_the_agent_id_and_the_agent_chats_with_its_adapter(
    cli: Invoke, initialised: Path, password_file: Path, tmp_path: Path
) -> None:
    name = learning_agent(tmp_path)
    adapters = initialised / "agents" / name / "adapters"

    locked = cli("--json", "--no-prompt", "agent", "learn", name, "--max-steps", "2")
    assert locked.exit_code != 0
    assert locked.error()["code"] == "identity.password_required"
    assert not adapters.exists()

    args = ["agent", "learn", name, "--max-steps", "3", "--no-record"]
    done = cli("--json", *args, "--password-file", str(password_file)).json()
    assert done["examples"] == 1 and done["steps"] == 3 and done["recorded"] is False
    assert done["not_recorded"] == "--no-record"
    assert Path(done["adapter_path"]).parent == adapters

    shown = cli("--json", "agent", "show", name).json()["spec"]["adapter"]
    assert shown["cid"] == done["adapter_cid"] and shown["job"] == done["job_key"]
    text = cli("agent", "show", name)
    assert "[adapter]" in text.stdout and done["adapter_cid"] in text.stdout

    answer = cli("--json", "agent", "chat", name, "--message", "Add 2 and 3.", "--max-tokens", "4")
    assert answer.exit_code == 0, answer.stderr

    again = cli("agent", "learn", name, "--max-steps", "2", "--password-file", str(password_file))
    assert again.exit_code == 0, again.stderr
    assert "learned from 1 example (sft)" in again.stdout
