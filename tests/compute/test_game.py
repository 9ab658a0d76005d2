"""Verifiable compute end to end on a dev node: a job trained on the fixed-point runner
is claimed, re-executed by a licensee, and challenged; the claimer's home answers every
move. An honest claimer keeps its job and takes the challenger's bond; one whose trace
is wrong at a single operation (of a training step, or of a layer of an answer) loses
its bonds to the challenger and its job is never finalised."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sahara_cli.compute import claims, fixed
from sahara_cli.compute.game import challenge, defend, show_dispute, verify
from sahara_cli.compute.game_results import ChallengeResult
from sahara_cli.compute.lifecycle import finalize
from sahara_cli.compute.verifiable import FixedTrainRequest, infer, train_fixed
from sahara_cli.compute.workflow import Context
from sahara_cli.errors import ClaimHolds, ClaimNotFound, ComputeJobState, ComputeSpecInvalid
from sahara_cli.identity.keys import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.protocol.client import Protocol
from sahara_cli.vault.core import Vault
from sahara_cli.vault.local import LocalBlockstore
from tests.e2e.nodes import free_port

SAH = 10**18


@dataclass
class World:
    url: str
    provider: Signer
    trainer: Signer
    challenger: Signer
    dataset: int
    model: int
    root: Path

    def proto(self) -> Protocol:
        return Protocol(NodeClient(self.url))


def table_text(rows: int = 48) -> str:
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, size=(rows, 3))
    y = 0.5 * x[:, 0] - x[:, 1] + 2 * x[:, 2] + 0.25
    lines = ["a,b,c,y"] + [",".join(f"{v:.4f}" for v in (*r, t)) for r, t in zip(x, y, strict=True)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from sahara_cli.node.rpc.testing import dev_node
    from sahara_cli.node.saps import machine
    from sahara_cli.vault.publish import AddOptions, Registration, add, holder_for
    from tests.unit.test_vault_licensed import key_server

    root = tmp_path_factory.mktemp("game-world")
    with dev_node(root / "node") as (_, rpc):
        node = NodeClient(rpc.url)
        proto = Protocol(node)
        provider, trainer, challenger = (Signer(os.urandom(32)) for _ in range(3))
        for signer in (provider, trainer, challenger):
            node.call("sahara_dev_setBalance", signer.address, hex(100 * SAH))
        src = root / "table.csv"
        src.write_text(table_text())
        program = machine.Program("mlp-infer", (3, 8, 1))
        model_dir = fixed.write_model(
            machine.State.initial(program, machine.init_weights(program, 9)), root / "mlp"
        )
        port = free_port()
        owned = root / "provider-vault"
        with Vault(owned, LocalBlockstore(owned)) as mine:
            items = []
            for path, recursive in ((src, False), (model_dir, True)):
                [item] = add(
                    mine,
                    [path],
                    holder_for(provider.address, None, provider),
                    AddOptions(embedder=None, recursive=recursive),
                    who=provider,
                    proto=proto,
                    registration=Registration(server_url=f"http://127.0.0.1:{port}"),
                ).items
                assert item.asset_id is not None
                items.append(item.asset_id)
        for asset in items:
            offer, _ = proto.offer(provider, asset, "full", price=SAH // 100)
            for buyer in (trainer, challenger):
                proto.buy(buyer, offer)
        with key_server(owned, provider, proto, node.chain_id(), port):
            yield World(rpc.url, provider, trainer, challenger, items[0], items[1], root)
        node.close()


@pytest.fixture
def homes(world: World, tmp_path: Path) -> Iterator[tuple[Context, Context, Context]]:
    """Contexts of the trainer, the challenger and the provider, each with its own
    vault, home and node connection."""
    vaults = [Vault(tmp_path / n, LocalBlockstore(tmp_path / n)) for n in ("t", "c", "p")]
    signers = (world.trainer, world.challenger, world.provider)
    protos = [world.proto() for _ in signers]
    yield tuple(  # type: ignore[misc]
        Context(tmp_path / f"home-{i}", v, lambda p=p: p, lambda s=s: s)  # type: ignore[misc]
        for i, (v, p, s) in enumerate(zip(vaults, protos, signers, strict=True))
    )
    for vault in vaults:
        vault.close()


def request(world: World, **kw: object) -> FixedTrainRequest:
    args: dict[str, object] = {
        "data": [world.dataset],
        "hidden": (8,),
        "steps": 16,
        "batch_size": 4,
        "learning_rate": 0.125,
        "name": f"mlp-{os.urandom(3).hex()}",
        "server_url": "http://127.0.0.1:1",
    }
    args.update(kw)
    return FixedTrainRequest(**args)  # type: ignore[arg-type]


def play(submitter: Context, challenger: Context, ref: str, **kw: object) -> ChallengeResult:
    """The challenger plays the game while the submitter's home defends its claims."""
    stop = threading.Event()
    defender = threading.Thread(target=defend, args=(submitter,), kwargs={"stop": stop})
    defender.start()
    try:
        return challenge(challenger, ref, **kw)  # type: ignore[arg-type]
    finally:
        stop.set()
        defender.join(timeout=30)


def balance(world: World, who: Signer) -> int:
    return int(world.proto().node.call("eth_getBalance", who.address, "latest"), 16)


def test_a_dishonest_training_step_loses_its_bonds_and_its_job(
    world: World, homes: tuple[Context, Context, Context]
) -> None:
    trainer, challenger_ctx, _ = homes
    proto = world.proto()
    job = train_fixed(trainer, request(world, corrupt_op=45))
    assert job.runner == "fixed" and job.operations == 16 * 8 and job.claim_id is not None
    assert job.last_loss < job.first_loss
    checked = verify(challenger_ctx, str(job.job_id))
    assert checked.input_root_matches and not checked.output_root_matches
    assert not checked.matches and checked.claimer == world.trainer.address
    bonds = proto.training.get_job(job.job_id or 0).bond_wei + job.bond_wei
    before = balance(world, world.challenger)
    result = play(trainer, challenger_ctx, str(job.job_id))
    assert result.winner == "challenger" and result.reason == "one-step"
    # Operation 45 is step 5's 'back1' (8 operations a step), wrong in the claimed trace.
    assert result.first_difference == 45 and result.training_step == 5
    assert result.operation == "back1"
    assert result.rounds == 7  # ceil(log2 128)
    spent = sum(_fee(proto, m.tx_hash) for m in result.moves if m.by == world.challenger.address)
    assert balance(world, world.challenger) - before == result.payout_wei - spent
    assert result.payout_wei == bonds
    assert proto.training.get_job(job.job_id or 0).status == "rejected"
    assert proto.disputes.get_claim(job.claim_id).status == "rejected"
    with pytest.raises(ComputeJobState, match="rejected"):
        finalize(trainer, str(job.job_id), wait=True)
    shown = show_dispute(challenger_ctx, result.dispute_id)
    assert shown.turn == "resolved" and shown.winner == world.challenger.address
    assert [m.kind for m in shown.moves][:2] == ["challenge", "bisect"]
    assert shown.moves[-1].kind == "one-step" and shown.hi == shown.lo + 1 == 46


def test_an_honest_job_survives_a_challenge_and_is_finalised(
    world: World, homes: tuple[Context, Context, Context]
) -> None:
    trainer, challenger_ctx, _ = homes
    proto = world.proto()
    job = train_fixed(trainer, request(world))
    assert verify(challenger_ctx, str(job.job_id)).matches
    with pytest.raises(ClaimHolds):
        challenge(challenger_ctx, str(job.job_id))
    bond = proto.disputes.parameters()[0]
    result = play(trainer, challenger_ctx, str(job.job_id), force=True)
    assert result.winner == "claimer" and result.payout_wei == bond
    assert proto.training.get_job(job.job_id or 0).status == "pending"
    assert proto.disputes.get_claim(job.claim_id or 0).status == "open"
    # Past the window (it moved on by the dispute's length): a block at its end.
    proto.node.call("sahara_dev_mine", 1, proto.training.get_job(job.job_id or 0).finalize_after)
    done = finalize(trainer, str(job.job_id))
    assert done.asset_id > 0 and done.claim_id == job.claim_id and done.claim_bond_wei == bond
    assert proto.disputes.get_claim(job.claim_id or 0).status == "accepted"


def test_a_dishonest_answer_loses_its_bond(
    world: World, homes: tuple[Context, Context, Context]
) -> None:
    _, challenger_ctx, provider = homes
    honest = infer(provider, world.model, [0.5, -0.25, 1.0])
    assert verify(challenger_ctx, f"claim:{honest.claim_id}").matches
    weights = fixed.read_model(
        (world.root / "mlp" / fixed.MODEL_FILE).read_bytes(), "the test's model"
    )
    expected = np.asarray([[0.5, -0.25, 1.0]])
    for i in range(2):
        expected = expected @ (weights[f"w{i}"] / 65536) + weights[f"b{i}"] / 65536
        expected = np.maximum(expected, 0) if i == 0 else expected
    assert abs(honest.output[0] - expected[0, 0]) < 1e-3
    # Layer 1's output (operation 2, linear1) is corrupted in the claimed trace.
    lying = infer(provider, world.model, [0.5, -0.25, 1.0], corrupt_op=2)
    assert lying.output != honest.output
    result = play(provider, challenger_ctx, f"claim:{lying.claim_id}")
    assert result.winner == "challenger" and result.operation == "linear1"
    assert result.rounds <= 3  # at most ceil(log2 5)
    local = claims.load(provider.home_root, lying.claim_id or 0)
    assert local is not None and local.corrupt == 2


def test_bad_references_and_specs_are_refused(
    world: World, homes: tuple[Context, Context, Context]
) -> None:
    trainer, challenger_ctx, _ = homes
    with pytest.raises(ClaimNotFound):
        verify(challenger_ctx, "claim:999")
    with pytest.raises(ClaimNotFound):
        verify(challenger_ctx, "banana")
    with pytest.raises(ComputeSpecInvalid, match="power of two"):
        train_fixed(trainer, request(world, learning_rate=0.1))


def _fee(proto: Protocol, tx_hash: str) -> int:
    receipt = proto.node.receipt(tx_hash) or {}
    return int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)


def test_a_claimer_that_does_not_answer_loses_by_timeout(
    world: World, homes: tuple[Context, Context, Context]
) -> None:
    trainer, challenger_ctx, _ = homes
    proto = world.proto()
    job = train_fixed(trainer, request(world, corrupt_op=3))
    results: list[ChallengeResult] = []
    # No defender runs: the claimer never reveals. The chain's clock is moved past the
    # move's deadline by a block (no sleep); the challenger then calls the timeout.
    playing = threading.Thread(
        target=lambda: results.append(challenge(challenger_ctx, str(job.job_id)))
    )
    playing.start()
    claim = job.claim_id or 0
    for _ in range(200):
        if proto.disputes.get_claim(claim).dispute:
            break
        threading.Event().wait(0.05)
    dispute = proto.disputes.get_dispute(proto.disputes.get_claim(claim).dispute)
    proto.node.call("sahara_dev_mine", 1, dispute.deadline + 1)
    playing.join(timeout=60)
    (result,) = results
    assert result.winner == "challenger" and result.reason == "timeout"
    assert result.rounds == 0 and result.ended_on is None
    assert [m.kind for m in result.moves] == ["challenge", "timeout"]
    assert proto.training.get_job(job.job_id or 0).status == "rejected"


def test_a_dishonest_challenger_loses_to_an_honest_claimer(
    world: World, homes: tuple[Context, Context, Context]
) -> None:
    trainer, challenger_ctx, _ = homes
    job = train_fixed(trainer, request(world, steps=4))
    # The challenger disagrees with every root from position 20 on, though they are right.
    result = play(trainer, challenger_ctx, str(job.job_id), force=True, lie_at=20)
    assert result.winner == "claimer" and result.reason == "one-step"
    assert result.ended_on == 19 and result.first_difference is None


def test_an_interrupted_challenge_resumes_its_own_dispute(
    world: World, homes: tuple[Context, Context, Context]
) -> None:
    trainer, challenger_ctx, _ = homes
    proto = world.proto()
    job = train_fixed(trainer, request(world, corrupt_op=60))
    stop = threading.Event()
    defender_stop = threading.Event()
    defender = threading.Thread(target=defend, args=(trainer,), kwargs={"stop": defender_stop})
    defender.start()
    try:
        # Ctrl-C after the claimer's first reveal: the dispute stays open on chain.
        on_move = lambda move: stop.set() if move.kind == "bisect" else None  # noqa: E731
        with pytest.raises(KeyboardInterrupt):
            challenge(challenger_ctx, str(job.job_id), on_move=on_move, stop=stop)
        open_dispute = proto.disputes.get_claim(job.claim_id or 0).dispute
        assert open_dispute
        # The same command again plays on in that dispute, with no second bond.
        result = challenge(challenger_ctx, str(job.job_id))
    finally:
        defender_stop.set()
        defender.join(timeout=30)
    assert result.dispute_id == open_dispute and result.winner == "challenger"
    assert [m.kind for m in result.moves].count("challenge") == 1
    assert result.first_difference == 60


def test_a_job_recorded_without_its_claim_is_claimed_by_the_same_command(
    world: World, homes: tuple[Context, Context, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sahara_cli.errors import NodeUnreachable
    from sahara_cli.protocol.clients.disputes import DisputeClient

    trainer, challenger_ctx, _ = homes
    real = DisputeClient.claim

    def down(*_a: object, **_k: object) -> object:
        raise NodeUnreachable("the node went away between the two transactions")

    monkeypatch.setattr(DisputeClient, "claim", down)
    with pytest.raises(NodeUnreachable):
        train_fixed(trainer, request(world, name="interrupted"))
    monkeypatch.setattr(DisputeClient, "claim", real)
    job = train_fixed(trainer, request(world, name="interrupted"))
    assert job.claim_id and job.job_id
    assert world.proto().disputes.claim_of("training", job.job_id) == job.claim_id
    assert verify(challenger_ctx, str(job.job_id)).matches
