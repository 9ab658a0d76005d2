"""Checkpoint folders on their own: atomic replacement, leftovers, and round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sahara_cli.compute import checkpoints
from sahara_cli.errors import CheckpointMismatch

IDENTITY = checkpoints.RunIdentity(
    hparams_hash="0x" + "ab" * 32,
    hparams={"seed": 0},
    base_config_sha256="c" * 64,
    data_sha256="d" * 64,
    data_order={"rule": "shuffle", "blocks": 4},
)


def state(step: int, value: float) -> checkpoints.Checkpoint:
    return checkpoints.Checkpoint(
        step=step,
        losses=[value] * step,
        tokens_seen=step * 16,
        weights={"lora_A": torch.full((2, 3), value)},
        optimizer={"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
        rng={"cpu": torch.get_rng_state()},
        accountant_history=[[1.1, 0.25, step]],
    )


def test_newest_checkpoint_replaces_the_older_and_reads_back(tmp_path: Path) -> None:
    checkpoints.save(tmp_path, IDENTITY, state(4, 1.0))
    checkpoints.save(tmp_path, IDENTITY, state(8, 2.0))
    checkpoints.save(tmp_path, IDENTITY, state(8, 3.0))  # the same step again
    (tmp_path / ".step-00000012.tmp-1").mkdir()  # a write cut short: not a checkpoint
    assert [p.name for p in sorted(tmp_path.iterdir())] == [".step-00000012.tmp-1", "step-00000008"]
    loaded = checkpoints.load_latest(tmp_path, IDENTITY, "cpu")
    assert loaded is not None and loaded.step == 8 and loaded.tokens_seen == 128
    assert torch.equal(loaded.weights["lora_A"], torch.full((2, 3), 3.0))
    assert loaded.losses == [3.0] * 8 and loaded.accountant_history == [[1.1, 0.25, 8]]


def test_empty_or_missing_folder_has_no_checkpoint(tmp_path: Path) -> None:
    assert checkpoints.load_latest(tmp_path / "none", IDENTITY, "cpu") is None
    assert checkpoints.load_latest(tmp_path, IDENTITY, "cpu") is None


def test_other_data_order_is_a_mismatch(tmp_path: Path) -> None:
    checkpoints.save(tmp_path, IDENTITY, state(4, 1.0))
    other = checkpoints.RunIdentity(**{**vars(IDENTITY), "data_order": {"rule": "poisson"}})
    with pytest.raises(CheckpointMismatch, match="data order"):
        checkpoints.load_latest(tmp_path, other, "cpu")
