"""Checkpoints of a training run, written atomically and checked before a resume.

A checkpoint is a folder ``step-NNNNNNNN`` in the run's checkpoint folder:

- ``adapter.safetensors``: the trainable (LoRA) weights, by parameter name;
- ``optimizer.pt``: the optimizer's state (AdamW's moments and step counts);
- ``rng.pt``: the random states (torch's CPU and CUDA generators, the DP noise generator);
- ``manifest.json``, written last: the format, the hyper-parameter hash and the
  hyper-parameters, the base's config digest, the data digest and data order, the step,
  the losses so far, the tokens seen, opacus's accountant history (DP), and the SHA-256
  of each file above.

It is written into a hidden temporary folder and renamed into place, so a crash leaves
either the whole checkpoint or none; the older ones are removed after the rename.
:func:`load_latest` reads the newest, refuses one of another run
(:class:`~sahara_cli.errors.CheckpointMismatch`) and one whose files do not match its
manifest (:class:`~sahara_cli.errors.CheckpointCorrupt`), and changes nothing on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import CheckpointCorrupt, CheckpointMismatch
from sahara_cli.fsutil import fsync_dir

if TYPE_CHECKING:
    import torch

FORMAT = 1
MANIFEST = "manifest.json"
FILES = ("adapter.safetensors", "optimizer.pt", "rng.pt")
_STEP_DIR = re.compile(r"^step-(\d{8})$")


@dataclass
class RunIdentity:
    """What a checkpoint must match to be resumed: the settings, the base and the data."""

    hparams_hash: str
    hparams: dict[str, Any]
    base_config_sha256: str
    data_sha256: str
    data_order: dict[str, Any]


@dataclass
class Checkpoint:
    """A run's state after ``step`` steps."""

    step: int
    losses: list[float]
    tokens_seen: int
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    accountant_history: list[list[float]] | None
    path: Path | None = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def step_dirs(folder: Path) -> list[tuple[int, Path]]:
    """The checkpoints in ``folder``, oldest first (temporary folders are not listed)."""
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def save(folder: Path, identity: RunIdentity, state: Checkpoint) -> Path:
    """Write ``state`` as the newest checkpoint in ``folder``; return its path."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{state.step:08d}"
    temp = folder / f".step-{state.step:08d}.tmp-{os.getpid()}"
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir()
    try:
        weights = {k: v.detach().to("cpu").contiguous() for k, v in state.weights.items()}
        save_file(weights, str(temp / "adapter.safetensors"))
        torch.save(state.optimizer, temp / "optimizer.pt")
        torch.save(state.rng, temp / "rng.pt")
        files = {}
        for name in FILES:
            _fsync(temp / name)
            files[name] = _sha256(temp / name)
        manifest = {
            "format": FORMAT,
            **vars(identity),
            "step": state.step,
            "losses": state.losses,
            "tokens_seen": state.tokens_seen,
            "accountant_history": state.accountant_history,
            "files": files,
        }
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        _fsync(temp / MANIFEST)
        if final.exists():  # the same step written again: set the old one aside first
            final.rename(folder / f".step-{state.step:08d}.old-{os.getpid()}")
        temp.rename(final)
        fsync_dir(folder)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    for step, path in step_dirs(folder):
        if step != state.step:
            shutil.rmtree(path, ignore_errors=True)
    for old in folder.glob(f".step-{state.step:08d}.old-*"):
        shutil.rmtree(old, ignore_errors=True)
    return final


def corrupt(path: Path, why: str) -> CheckpointCorrupt:
    return CheckpointCorrupt(
        f"the checkpoint {path} is damaged: {why}", details={"path": str(path)}
    )


def load_latest(folder: Path, identity: RunIdentity, device: str) -> Checkpoint | None:
    """The newest checkpoint in ``folder`` after its checks, or None when there is none."""
    found = step_dirs(folder)
    if not found:
        return None
    step, path = found[-1]
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise corrupt(path, f"{MANIFEST} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise corrupt(path, f"{MANIFEST} cannot be read ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise corrupt(path, f"{MANIFEST} is not a format-{FORMAT} manifest")
    _check_identity(path, manifest, identity)
    files = manifest.get("files")
    if not isinstance(files, dict) or manifest.get("step") != step:
        raise corrupt(path, f"{MANIFEST} does not describe this checkpoint")
    for name in FILES:
        file = path / name
        if not file.is_file():
            raise corrupt(path, f"{name} is missing")
        if _sha256(file) != files.get(name):
            raise corrupt(path, f"{name} does not match its SHA-256 in {MANIFEST}")
    return _read(path, manifest, device)


def _check_identity(path: Path, manifest: dict[str, Any], identity: RunIdentity) -> None:
    for key, what in (
        ("hparams_hash", "hyper-parameters"),
        ("base_config_sha256", "base model"),
        ("data_sha256", "training data"),
        ("data_order", "data order"),
    ):
        if manifest.get(key) != getattr(identity, key):
            raise CheckpointMismatch(
                f"the checkpoint {path} is of a run with other {what}, so it cannot be resumed",
                details={
                    "path": str(path),
                    "field": key,
                    "checkpoint": manifest.get(key),
                    "run": getattr(identity, key),
                },
            )


def _read(path: Path, manifest: dict[str, Any], device: str) -> Checkpoint:
    import torch
    from safetensors.torch import load_file

    try:
        weights = load_file(str(path / "adapter.safetensors"), device=device)
        # On the CPU: the optimizer's load_state_dict moves each state to its parameter's
        # device, and keeps AdamW's step counts where it wants them.
        optimizer = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
        rng = torch.load(path / "rng.pt", map_location="cpu", weights_only=True)
        losses = [float(x) for x in manifest["losses"]]
        tokens = int(manifest["tokens_seen"])
    except Exception as exc:  # safetensors, pickle and key errors alike: a damaged file
        raise corrupt(path, f"it cannot be read ({exc})") from None
    return Checkpoint(
        step=int(manifest["step"]),
        losses=losses,
        tokens_seen=tokens,
        weights=weights,
        optimizer=optimizer,
        rng=rng,
        accountant_history=manifest.get("accountant_history"),
        path=path,
    )
