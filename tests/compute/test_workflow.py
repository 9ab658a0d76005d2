"""The training workflow end to end on a dev node: a provider's dataset is licensed, a
model is trained on it and recorded through the training SAP, the model earns through an
API license, and the provider's share arrives to the wei. Training without a license that
opens the data is refused before anything is decrypted."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sahara_cli.compute import jobs
from sahara_cli.compute.lifecycle import finalize, list_jobs, show_job
from sahara_cli.compute.workflow import (
    Context,
    TrainRequest,
    share_bps,
    train,
    training_weights,
)
from sahara_cli.errors import (
    BondTooSmall,
    ComputeJobState,
    TrainingNotLicensed,
    VaultItemNotFound,
)
from sahara_cli.identity.keys import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.protocol.client import Protocol
from sahara_cli.vault.core import Vault
from sahara_cli.vault.local import LocalBlockstore
from tests.compute.models import sample_texts
from tests.e2e.nodes import free_port

pytest_plugins = ("tests.compute.models",)

SAH = 10**18


@dataclass
class World:
    proto: Protocol
    provider: Signer
    trainer: Signer
    customer: Signer
    dataset: int
    server: str
    root: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from sahara_cli.node.rpc.testing import dev_node
    from sahara_cli.vault.publish import AddOptions, Registration, add, holder_for
    from tests.unit.test_vault_licensed import key_server

    root = tmp_path_factory.mktemp("train-world")
    with dev_node(root / "node") as (_, rpc):
        node = NodeClient(rpc.url)
        proto = Protocol(node)
        provider, trainer, customer = (Signer(os.urandom(32)) for _ in range(3))
        for signer in (provider, trainer, customer):
            node.call("sahara_dev_setBalance", signer.address, hex(100 * SAH))
        src = root / "dunes.txt"
        src.write_text("\n\n".join(sample_texts(80, seed=3)))
        port = free_port()
        owned = root / "provider-vault"
        with Vault(owned, LocalBlockstore(owned)) as mine:
            [item] = add(
                mine,
                [src],
                holder_for(provider.address, None, provider),
                AddOptions(embedder=None),
                who=provider,
                proto=proto,
                registration=Registration(server_url=f"http://127.0.0.1:{port}"),
            ).items
        assert item.asset_id is not None
        with key_server(owned, provider, proto, node.chain_id(), port) as url:
            yield World(proto, provider, trainer, customer, item.asset_id, url, root)
        node.close()


@pytest.fixture
def trainer_vault(world: World, tmp_path: Path) -> Iterator[Vault]:
    root = tmp_path / "trainer-vault"
    with Vault(root, LocalBlockstore(root)) as vault:
        yield vault


def ctx_for(world: World, vault: Vault, home: Path) -> Context:
    return Context(home, vault, lambda: world.proto, lambda: world.trainer)


def request(world: World, base: Path, **kw: object) -> TrainRequest:
    args: dict[str, object] = {
        "base": str(base),
        "data": [world.dataset],
        "lora": "r=4,alpha=8",
        "max_steps": 12,
        "batch_size": 4,
        "learning_rate": 5e-3,
        "seq_len": 16,
        "name": "dune-tuned",
        "server_url": "http://127.0.0.1:1",
    }
    args.update(kw)
    return TrainRequest(**args)  # type: ignore[arg-type]


def test_shares_are_basis_points_that_sum_to_ten_thousand() -> None:
    assert share_bps([1, 1, 1]) == [3334, 3333, 3333]
    assert share_bps([3, 1]) == [7500, 2500]
    assert sum(share_bps([7, 13, 1_000_000])) == 10_000
    assert min(share_bps([1, 10**9])) == 1


def test_training_without_a_data_licence_decrypts_nothing(
    world: World,
    trainer_vault: Vault,
    tiny_base: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[str] = []
    for method in ("stream", "data_key", "write_out"):
        real = getattr(Vault, method)

        def spy(
            self: Vault, *a: object, _real: object = real, _m: str = method, **k: object
        ) -> object:
            opened.append(_m)
            return _real(self, *a, **k)  # type: ignore[operator]

        monkeypatch.setattr(Vault, method, spy)
    ctx = ctx_for(world, trainer_vault, tmp_path)
    with pytest.raises(TrainingNotLicensed) as caught:
        train(ctx, request(world, tiny_base))
    assert caught.value.details["reason"] == "none"
    # An API license pays for answers: still no data.
    offer, _ = world.proto.offer(world.provider, world.dataset, "api", price=1_000)
    world.proto.buy(world.trainer, offer, 2)
    with pytest.raises(TrainingNotLicensed) as caught:
        train(ctx, request(world, tiny_base))
    assert caught.value.details["reason"] == "api-only"
    assert opened == []
    assert list(jobs.all_jobs(tmp_path)) == []


def test_a_trained_model_is_recorded_finalised_and_pays_its_data_provider(
    world: World, trainer_vault: Vault, tiny_base: Path, tmp_path: Path
) -> None:

    proto = world.proto
    offer, _ = proto.offer(world.provider, world.dataset, "full", price=SAH // 100)
    proto.buy(world.trainer, offer)
    # The dataset is not in the trainer's vault yet: training fetches it from the
    # provider's vault server (the asset's URI), which checks the license first.
    with pytest.raises(VaultItemNotFound):
        trainer_vault.find(f"asset:{world.dataset}")
    ctx = ctx_for(world, trainer_vault, tmp_path / "home")
    # A bond below the chain's minimum is refused before any work: no job, no asset.
    assets = proto.asset_count()
    with pytest.raises(BondTooSmall):
        train(ctx, request(world, tiny_base, bond_wei=10**15))
    assert list(jobs.all_jobs(tmp_path / "home")) == [] and proto.asset_count() == assets
    result = train(ctx, request(world, tiny_base))
    assert trainer_vault.find(f"asset:{world.dataset}").origin == "licensed"
    assert result.steps == 12 and len(result.losses) == 12
    assert result.job_id is not None and result.state == "pending"
    assert result.weights_bps == [10_000] and result.epsilon is None
    # Checkpoints serve a resume only: none is left once the run ended.
    assert not (jobs.job_dir(tmp_path / "home", result.job_key) / "checkpoints").exists()
    job = proto.training.get_job(result.job_id)
    assert job.cid == result.output_cid and job.inputs == [world.dataset]
    assert job.hparams == result.hparams_hash and job.uri == "http://127.0.0.1:1"
    # The adapter is in the trainer's vault, encrypted to the trainer.
    item = trainer_vault.find(result.output_cid or "")
    assert item.encrypted and item.holder == world.trainer.address
    assert [j.job_id for j in list_jobs(ctx).jobs] == [result.job_id]
    shown = show_job(ctx, str(result.job_id))
    assert shown.metrics["steps"] == 12 and shown.state == "pending"
    # provenance verify finds this home's record of the job and checks it with the chain.
    from sahara_cli.agent.provenance_verify import verify_provenance
    from sahara_cli.errors import ProvenanceMismatch

    checked = verify_provenance(proto, tmp_path / "home", f"job:{result.job_id}")
    assert checked.verified and "local job hparams" in {c.name for c in checked.checks}
    local = jobs.load(tmp_path / "home", result.job_key)
    jobs.mark(local, tmp_path / "home", inputs=[world.dataset + 1])
    with pytest.raises(ProvenanceMismatch):
        verify_provenance(proto, tmp_path / "home", f"job:{result.job_id}")
    jobs.mark(local, tmp_path / "home", inputs=[world.dataset])
    # The same command again does not train twice.
    with pytest.raises(ComputeJobState, match="recorded as job"):
        train(ctx, request(world, tiny_base))
    with pytest.raises(ComputeJobState, match="open to challenges"):
        finalize(ctx, str(result.job_id))
    proto.node.call("sahara_dev_mine", 1, job.finalize_after)
    done = finalize(ctx, str(result.job_id))
    model = proto.asset(done.asset_id)
    assert model.owner == world.trainer.address and model.parents == [world.dataset]
    assert trainer_vault.find(result.output_cid or "").asset_id == done.asset_id

    # The model earns through an API license; 30% flows up to the dataset's provider.
    api, _ = proto.offer(world.trainer, done.asset_id, "api", price=10_001)
    licence, _ = proto.buy(world.customer, api, 3)
    before = proto.attribution.claimable(world.provider.address)
    proto.licensing.meter(world.trainer, licence, 3)
    earned = proto.attribution.claimable(world.provider.address) - before
    assert earned == 30_003 * 3_000 // 10_000
    balance = int(proto.node.call("eth_getBalance", world.provider.address, "latest"), 16)
    owed = proto.attribution.claimable(world.provider.address)
    _, tx = proto.attribution.claim(world.provider)
    after = int(proto.node.call("eth_getBalance", world.provider.address, "latest"), 16)
    assert after == balance + owed - tx.fee


def test_base_and_datasets_share_a_model_by_their_weights() -> None:
    from sahara_cli.compute.data import Dataset

    def d(size: int) -> Dataset:
        return Dataset(1, "x", ["a"], size, "0x")

    assert training_weights(0, [d(300), d(100)]) == [7500, 2500]
    weights = training_weights(9, [d(300), d(100)])
    assert weights[0] == 3333 and sum(weights) == 10_000


def test_two_trained_adapters_merge_into_a_model_that_pays_both_by_weight(
    world: World, trainer_vault: Vault, tiny_base: Path, tmp_path: Path
) -> None:
    from sahara_cli.compute.merging import MergeRequest, merge
    from sahara_cli.vault.licensed import get

    proto = world.proto
    if not proto.has_access(world.dataset, world.trainer.address, "full"):
        offer, _ = proto.offer(world.provider, world.dataset, "full", price=SAH // 100)
        proto.buy(world.trainer, offer)
    get(trainer_vault, str(world.dataset), tmp_path / "d.txt", unlock=lambda: world.trainer,
        protocol=lambda: proto, source=world.server)  # fmt: skip
    ctx = ctx_for(world, trainer_vault, tmp_path / "home")
    models = []
    for seed in (1, 2):
        trained = train(ctx, request(world, tiny_base, name=f"m{seed}", seed=seed, max_steps=4))
        assert trained.job_id is not None
        end = proto.training.get_job(trained.job_id).finalize_after
        proto.node.call("sahara_dev_mine", 1, end)
        models.append(finalize(ctx, str(trained.job_id)).asset_id)
    merged = merge(
        ctx,
        MergeRequest(models=[f"asset:{m}" for m in models], method="average", weights=[3, 1]),
    )
    assert merged.weights_bps == [7_500, 2_500] and merged.input_ids == models
    job = proto.training.get_job(merged.job_id or 0)
    assert (job.kind, job.inputs, job.weights_bps) == ("merge", models, [7_500, 2_500])
    proto.node.call("sahara_dev_mine", 1, job.finalize_after)
    asset = finalize(ctx, str(merged.job_id)).asset_id
    assert proto.asset(asset).parents == models
    assert proto.attribution.parent_weights(asset) == [7_500, 2_500]
    # A local folder cannot be recorded as an input.
    with pytest.raises(Exception, match="local folder"):
        merge(ctx, MergeRequest(models=[str(tiny_base), f"asset:{models[0]}"], method="average"))


def test_a_dead_runs_pid_reused_by_another_program_is_neither_running_nor_signalled(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from sahara_cli.compute.lifecycle import cancel

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job = jobs.LocalJob(
            key="00aa11bb22cc", kind="train", name="x", base="b", base_asset=0, inputs=[1],
            hparams={}, hparams_hash="0x" + "00" * 32, state="running", pid=other.pid,
        )  # fmt: skip
        job.save(tmp_path)
        assert job.live_state() == "interrupted"
        ctx = Context(tmp_path, None, lambda: None, lambda: None)  # type: ignore[arg-type]
        with pytest.raises(ComputeJobState, match="not recorded on chain"):
            cancel(ctx, job.key)
        assert other.poll() is None  # never signalled
    finally:
        other.kill()
        other.wait()


def test_jobs_are_listed_without_a_node(tmp_path: Path) -> None:
    from sahara_cli.errors import NodeUnreachable

    def no_node() -> Protocol:
        raise NodeUnreachable("no node at http://127.0.0.1:9")

    job = jobs.LocalJob(
        key="00aa11bb22dd", kind="train", name="x", base="b", base_asset=0, inputs=[1],
        hparams={}, hparams_hash="0x" + "00" * 32, state="recorded", job_id=4,
    )  # fmt: skip
    job.save(tmp_path)
    ctx = Context(tmp_path, None, no_node, lambda: None)  # type: ignore[arg-type]
    listed = list_jobs(ctx).jobs
    assert [(j.job_id, j.state) for j in listed] == [(4, "recorded")]
