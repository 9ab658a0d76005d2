"""The ``sahara compute train`` side of ``benchmarks/compute.py``, and its gas table.

:func:`command_world` starts a dev node and a vault holding the benchmark's texts as a
registered dataset (JSON Lines, one text a record, so the workflow cuts them into the
very records the other sides train on), and yields a runner of the workflow the command
calls, ``sahara_cli.compute.workflow.train``: the licence check, the dataset read and
decrypted through the vault, ``train_lora`` with the command's step callback. Its step
times are taken in that callback, as the other sides' are. :func:`gas_rows` records and
finalises a training job through the training SAP and returns the gas of each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sahara_cli.compute.spec import DPSpec, LoraSpec

Runner = Callable[[str, bool, Path, argparse.Namespace], list[float]]


@contextmanager
def command_world(
    texts: list[str], lora: LoraSpec, dp: DPSpec, learning_rate: float
) -> Iterator[tuple[Runner, Callable[[Path, argparse.Namespace], dict[str, Any]]]]:
    """(a runner of one ``compute train`` of ``texts``, the gas measurement)."""
    from sahara_cli.compute.workflow import Context, TrainRequest, train
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.client import NodeClient
    from sahara_cli.node.genesis import dev_keys
    from sahara_cli.node.rpc.testing import dev_node
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.local import LocalBlockstore
    from sahara_cli.vault.publish import AddOptions, Registration, add, holder_for

    with tempfile.TemporaryDirectory(prefix="sahara-bench-command-") as tmp:
        root = Path(tmp)
        with (
            dev_node(root / "node") as (_, rpc),
            Vault(root / "vault", LocalBlockstore(root / "vault")) as vault,
        ):
            proto = Protocol(NodeClient(rpc.url))
            who = Signer(dev_keys(1)[0])
            data = root / "texts.jsonl"
            data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
            [item] = add(
                vault,
                [data],
                holder_for(who.address, None, who),
                AddOptions(embedder=None),
                who=who,
                proto=proto,
                registration=Registration(server_url="http://127.0.0.1:1"),
            ).items
            assert item.asset_id is not None
            ctx = Context(root / "home", vault, lambda: proto, lambda: who)

            def request(
                name: str,
                dp_on: bool,
                base: Path,
                args: argparse.Namespace,
                record: bool,
                steps: int | None = None,
            ) -> Any:
                return TrainRequest(
                    base=str(base),
                    data=[item.asset_id or 0],
                    lora=lora.text(),
                    dp_epsilon=dp.epsilon if dp_on else None,
                    dp_delta=dp.delta,
                    epochs=1,
                    max_steps=steps,
                    batch_size=args.batch,
                    learning_rate=learning_rate,
                    seq_len=args.seq_len,
                    name=name,
                    record=record,
                )

            def run(name: str, dp_on: bool, base: Path, args: argparse.Namespace) -> list[float]:
                stamps: list[float] = []
                train(
                    ctx,
                    request(name, dp_on, base, args, record=False),
                    on_step=lambda _: stamps.append(time.perf_counter()),
                )
                return stamps

            def gas(base: Path, args: argparse.Namespace) -> dict[str, Any]:
                from sahara_cli.compute.lifecycle import finalize

                done = train(ctx, request("bench-gas", False, base, args, record=True, steps=2))
                assert done.transaction is not None and done.job_id is not None
                end = proto.training.get_job(done.job_id).finalize_after
                proto.node.call("sahara_dev_mine", 1, end)
                final = finalize(ctx, str(done.job_id))
                base_fee = int(
                    proto.node.call("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16
                )
                submit_gas, finalize_gas = done.transaction.gas_used, final.transaction.gas_used
                return {
                    "submit_gas": submit_gas,
                    "finalize_gas": finalize_gas,
                    "total_gas": submit_gas + finalize_gas,
                    "base_fee_wei": base_fee,
                    "total_at_base_fee_sah": (submit_gas + finalize_gas) * base_fee / 10**18,
                }

            yield run, gas
