"""``sahara compute`` as a user runs it: train on a dataset of one's own vault, list and
show the job, interrupt a run with ``compute cancel`` and resume it with the same
command, finalise the job into a model asset; each document checked against its schema."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahara_cli.compute.tiny import make_tiny_causal_lm
from tests.compute.models import sample_texts
from tests.e2e.cli_home import CliHome, dev_node

pytestmark = pytest.mark.e2e

PASSWORD = "compute-pw"
TRAIN = ("--lora", "r=4,alpha=8", "--batch-size", "4", "--seq-len", "16", "--lr", "5e-3")


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CliHome, Path, int]]:
    root = tmp_path_factory.mktemp("compute-cli")
    work = root / "work"
    work.mkdir()
    texts = sample_texts(80, seed=5)
    (work / "dunes.txt").write_text("\n\n".join(texts))
    base = make_tiny_causal_lm(work / "tiny-llama", texts, hidden=32, vocab_size=300)
    home = CliHome(root / "home", work, password=PASSWORD, timeout=300)
    home.ok("init")
    with dev_node(home):
        added = home.ok("vault", "add", "dunes.txt", "--register")["items"][0]
        yield home, base, int(added["asset_id"])


def test_train_show_and_finalise(user: tuple[CliHome, Path, int]) -> None:
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol

    home, base, dataset = user
    trained = home.ok(
        "compute", "train", "--base", str(base), "--data", str(dataset), "--max-steps", "6",
        "--name", "dunes-a", *TRAIN,
    )  # fmt: skip
    assert trained["steps"] == 6 and len(trained["losses"]) == 6
    assert trained["state"] == "pending" and trained["input_ids"] == [dataset]
    assert trained["transaction"]["status"] == "success"
    job = trained["job_id"]
    listed = home.ok("compute", "jobs")["jobs"]
    assert [j["job_id"] for j in listed] == [job] and listed[0]["state"] == "pending"
    shown = home.ok("compute", "show", str(job))
    assert shown["metrics"]["steps"] == 6 and shown["weights_bps"] == [10_000]
    _, error = home.fails("compute", "finalize", str(job))
    assert error["code"] == "compute.job_state" and "open to challenges" in error["message"]
    # Past the challenge window: a block at its end (the chain's clock, not a sleep).
    node = NodeClient(home.env["SAHARA_NODE_RPC_URL"])
    node.call("sahara_dev_mine", 1, Protocol(node).training.get_job(job).finalize_after)
    done = home.ok("compute", "finalize", str(job))
    assert done["parents"] == [dataset]
    asset = home.ok("asset", "show", str(done["asset_id"]))
    assert asset["parents"] == [dataset]
    assert home.ok("compute", "jobs")["jobs"][0]["asset_id"] == done["asset_id"]
    _, error = home.fails("compute", "show", "no-such-job")
    assert error["code"] == "compute.job_not_found"


def test_cancel_checkpoints_a_run_and_the_same_command_resumes(
    user: tuple[CliHome, Path, int],
) -> None:
    home, base, dataset = user
    args = [
        "compute", "train", "--base", str(base), "--data", str(dataset),
        "--max-steps", "600", "--epochs", "1000", "--name", "dunes-long", *TRAIN,
    ]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "sahara_cli", "--json", "--no-prompt", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=home.environ(),
        cwd=home.workdir,
    )
    try:
        # Once the run has written its first checkpoint, cancel it.
        deadline = time.monotonic() + 120
        jobs_dir = home.root / "compute" / "jobs"
        key = None
        while key is None:
            assert time.monotonic() < deadline, "the run never wrote a checkpoint"
            assert process.poll() is None, process.communicate()
            for folder in jobs_dir.glob("*") if jobs_dir.is_dir() else []:
                record = json.loads((folder / "job.json").read_text())
                if record["name"] == "dunes-long" and any((folder / "checkpoints").glob("*")):
                    key = folder.name
            time.sleep(0.1)
        running = {"job_key": key}
        stopped = home.ok("compute", "cancel", running["job_key"])
        assert stopped["stopped"] is True
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert json.loads(err.strip().splitlines()[-1])["error"]["code"] == "compute.interrupted"
    state = {j["job_key"]: j["state"] for j in home.ok("compute", "jobs")["jobs"]}
    assert state[running["job_key"]] == "interrupted"
    # The same command resumes from the checkpoint (a shorter run of it here would be
    # another job: the settings are part of the job's key).
    resumed = home.ok(*args[: -len(TRAIN)], *TRAIN, "--no-record")
    assert resumed["resumed_from_step"] is not None and resumed["resumed_from_step"] > 0
    assert resumed["job_key"] == running["job_key"] and resumed["state"] == "trained"
