"""``agent learn`` on a dev node: a published agent's learning is recorded through the
training SAP with the agent's asset as its input, and the agent spec names the job; a
second run on the same feedback is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sahara_cli.agent.spec import AgentStore
from sahara_cli.compute.lifecycle import show_job
from sahara_cli.compute.workflow import Context
from sahara_cli.errors import ComputeJobState
from sahara_cli.identity.keys import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.protocol.client import Protocol
from sahara_cli.vault.core import Vault
from sahara_cli.vault.local import LocalBlockstore
from tests.compute.test_learn import FEEDBACK, rate, request, save_agent, tiny_hf_model

__all__ = ["tiny_hf_model"]

SAH = 10**18


def test_a_published_agent_records_its_learning_on_chain(
    tmp_path: Path, tiny_hf_model: Path
) -> None:
    from sahara_cli.agent.learn import learn
    from sahara_cli.node.rpc.testing import dev_node
    from sahara_cli.vault.publish import AddOptions, Registration, add, holder_for

    signer = Signer(os.urandom(32))
    home = tmp_path / "home"
    with dev_node(tmp_path / "node") as (_, rpc):
        node = NodeClient(rpc.url)
        proto = Protocol(node)
        node.call("sahara_dev_setBalance", signer.address, hex(10 * SAH))
        root = tmp_path / "vault"
        with Vault(root, LocalBlockstore(root)) as vault:
            card = tmp_path / "pupil.json"
            card.write_text('{"name": "pupil"}')
            [item] = add(
                vault,
                [card],
                holder_for(signer.address, None, signer),
                AddOptions(embedder=None),
                who=signer,
                proto=proto,
                registration=Registration(kind="agent", server_url="http://127.0.0.1:1"),
            ).items
            assert item.asset_id is not None
            spec = save_agent(home, tiny_hf_model)
            AgentStore(home).save(
                spec.model_copy(update={"asset_id": item.asset_id}), overwrite=True
            )
            rate(home, signer, FEEDBACK)
            ctx = Context(home, vault, lambda: proto, lambda: signer)

            result = learn(ctx, request(max_steps=4, server_url="http://127.0.0.1:2"))

            assert result.recorded and result.job_id is not None
            assert result.not_recorded is None and result.transaction is not None
            assert result.input_ids == [item.asset_id] and result.weights_bps == [10_000]
            job = proto.training.get_job(result.job_id)
            assert job.inputs == [item.asset_id] and job.cid == result.adapter_cid
            assert job.hparams == result.hparams_hash and job.status == "pending"
            assert job.uri == "http://127.0.0.1:2"
            assert job.bond_wei == result.bond_wei > 0
            learned = AgentStore(home).load("pupil")
            assert learned.adapter is not None and learned.adapter.job_id == result.job_id
            detail = show_job(ctx, result.job_key)
            assert detail.job_id == result.job_id
            assert detail.metrics["examples"] == 3 and detail.metrics["objective"] == "sft"

            with pytest.raises(ComputeJobState, match="learned from this feedback already"):
                learn(ctx, request(max_steps=4))
        node.close()
