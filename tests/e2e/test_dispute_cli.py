"""The dispute game as users run it: a licensee trains on the fixed-point runner with a
wrong operation (a drill) while its home defends the claim in the background; the
data's owner verifies the job, challenges it and wins the bonds; the job is rejected.
Bad input (an unknown claim, a bond too small, a challenge after the window, a claim
that holds) gets one clear error, and no bond moves."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahara_cli.node.client import NodeClient
from tests.e2e.cli_home import CliHome
from tests.e2e.nodes import free_port
from tests.e2e.test_vault_cli import _serve

pytestmark = pytest.mark.e2e

PASSWORD = "protocol test password"
SAMPLE = Path(__file__).resolve().parents[2] / "sahara_cli" / "samples" / "sensors.csv"
FIXED = ("compute", "train", "--runner", "fixed", "--hidden", "8", "--max-steps", "32")


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CliHome, CliHome, int]]:
    root = tmp_path_factory.mktemp("dispute-cli")
    owner = CliHome(root / "owner", root, password=PASSWORD, timeout=180)
    owner.env["SAHARA_VAULT_SERVE_ADDR"] = f"127.0.0.1:{free_port()}"
    owner.ok("init")
    port = free_port()
    owner.env["SAHARA_NODE_RPC_URL"] = f"http://127.0.0.1:{port}"
    owner.ok("node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}")
    server = _serve(owner)
    try:
        trainer = CliHome(root / "trainer", root, password=PASSWORD, timeout=180)
        trainer.env["SAHARA_NODE_RPC_URL"] = owner.env["SAHARA_NODE_RPC_URL"]
        trainer.ok("init")
        address = trainer.ok("id", "show", "--no-chain")["address"]
        owner.ok("tx", "send", "--to", address, "--value", "10")
        added = owner.ok("vault", "add", str(SAMPLE), "--register", "--kind", "dataset")
        dataset = int(added["items"][0]["asset_id"])
        offer = owner.ok("license", "offer", str(dataset), "--type", "full", "--price", "1")
        trainer.ok("license", "buy", str(offer["offer_id"]), "--yes")
        yield owner, trainer, dataset
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
        owner.run("node", "stop")


def _defend(home: CliHome) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sahara_cli", "--json", "--no-prompt", "compute", "defend"],
        env=home.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _balance(home: CliHome) -> int:
    return int(home.ok("balance")["balance_wei"])


def test_a_wrong_job_is_challenged_and_loses_its_bonds(homes: tuple[CliHome, CliHome, int]) -> None:
    owner, trainer, dataset = homes
    job = trainer.ok(*FIXED, "--data", str(dataset), "--name", "drill", "--drill-corrupt-op", "100")
    assert job["runner"] == "fixed" and job["operations"] == 32 * 8 and job["claim_id"]
    defender = _defend(trainer)
    try:
        result = owner.ok("compute", "challenge", str(job["job_id"]))
    finally:
        defender.send_signal(signal.SIGINT)
        out, err = defender.communicate(timeout=30)
    assert defender.returncode == 0, err
    assert result["winner"] == "challenger" and result["first_difference"] == 100
    assert result["rounds"] == 8 and result["operation"] == "loss"  # 100 = 12 * 8 + 4
    kinds = [m["kind"] for m in result["moves"]]
    assert kinds[0] == "challenge" and kinds[-1] == "one-step"
    assert kinds.count("bisect") == kinds.count("respond") == 8
    defended = __import__("json").loads(out)
    assert [m["kind"] for m in defended["moves"]] == ["bisect"] * 8
    assert defended["lost"] == [result["dispute_id"]]
    shown = owner.ok("compute", "dispute", "show", str(result["dispute_id"]))
    assert shown["turn"] == "resolved" and shown["hi"] == 101
    shown_job = trainer.ok("compute", "show", str(job["job_id"]))
    assert shown_job["state"] == "rejected" and shown_job["claim_id"] == job["claim_id"]
    assert shown_job["claim_status"] == "rejected" and shown_job["dispute_id"] is None
    checked = owner.ok("compute", "verify", str(job["job_id"]))
    assert not checked["matches"] and checked["status"] == "rejected"
    # A resolved claim cannot be challenged again; its job never finalises.
    code, error = owner.fails("compute", "challenge", str(job["job_id"]))
    assert code == 7 and error["code"] == "compute.job_state" and "rejected" in error["message"]
    _, error = trainer.fails("compute", "finalize", str(job["job_id"]))
    assert error["code"] == "compute.job_state"


def test_bad_challenges_are_refused_and_move_no_bond(homes: tuple[CliHome, CliHome, int]) -> None:
    owner, trainer, dataset = homes
    code, error = owner.fails("compute", "verify", "claim:99")
    assert code == 3 and error["code"] == "compute.claim_not_found"
    code, error = owner.fails("compute", "dispute", "show", "99")
    assert code == 3 and error["code"] == "compute.claim_not_found"
    job = trainer.ok(*FIXED, "--data", str(dataset), "--name", "honest")
    # An honest claim re-executes to its output: no bond is sent without --force.
    before = _balance(owner)
    code, error = owner.fails("compute", "challenge", str(job["job_id"]))
    assert code == 7 and error["code"] == "compute.claim_holds"
    code, error = owner.fails(
        "compute", "challenge", str(job["job_id"]), "--force", "--bond", "0.0001"
    )
    assert code == 2 and error["code"] == "compute.bond_too_small"
    assert _balance(owner) == before  # refused before anything was sent
    # Past the window (the chain's clock moved by a block at its end): too late.
    node = NodeClient(owner.env["SAHARA_NODE_RPC_URL"])
    deadline = owner.ok("compute", "show", str(job["job_id"]))["finalize_after_at"]
    from datetime import datetime

    node.call("sahara_dev_mine", 1, int(datetime.fromisoformat(deadline).timestamp()))
    code, error = owner.fails("compute", "challenge", str(job["job_id"]), "--force")
    assert code == 7 and "window closed" in error["message"]
    done = trainer.ok("compute", "finalize", str(job["job_id"]))
    assert done["claim_id"] == job["claim_id"] and int(done["claim_bond_wei"]) > 0
    # The trained model is an asset now: its answers can be claimed and re-executed.
    answer = trainer.ok("compute", "infer", str(done["asset_id"]), "--input", "2.0,0.5,0.3")
    assert answer["claim_id"] and answer["operations"] == 3 and len(answer["output"]) == 1
    checked = trainer.ok("compute", "verify", f"claim:{answer['claim_id']}")
    assert checked["matches"] and checked["kind"] == "inference"
    code, error = trainer.fails("compute", "infer", str(done["asset_id"]), "--input", "1,2")
    assert code == 2 and error["code"] == "compute.spec_invalid"
