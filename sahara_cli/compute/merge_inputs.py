"""The inputs of a merge: full-weight model folders and peft LoRA adapter folders.

A *full* model folder is what ``save_pretrained`` writes: ``config.json`` and either
``model.safetensors`` or shards listed by ``model.safetensors.index.json``. An *adapter*
folder is what peft's ``save_pretrained`` writes: ``adapter_config.json`` and
``adapter_model.safetensors``. Only the headers are read here; tensors are read one at a
time by the merge. :func:`check_compatible` refuses inputs that cannot be merged, before
anything is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sahara_cli.compute.safetensors_io import SafetensorsFile, TensorInfo
from sahara_cli.errors import ComputeModelInvalid, ComputeModelNotFound, MergeIncompatible

FULL_WEIGHTS = "model.safetensors"
FULL_INDEX = "model.safetensors.index.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
#: Config keys of two adapters that must agree for their deltas to add up.
ADAPTER_KEYS_THAT_MUST_MATCH = ("peft_type", "base_model_name_or_path", "fan_in_fan_out")


@dataclass(frozen=True)
class LoraModule:
    """One adapted module: ``delta = scaling * B @ A`` (B: out x r, A: r x in)."""

    name: str
    a: str
    b: str
    rank: int
    shape: tuple[int, int]


@dataclass
class ModelSource:
    """One input folder, opened: its kind, config and tensor headers."""

    path: Path
    kind: Literal["full", "adapter"]
    config: dict[str, Any]
    files: dict[str, SafetensorsFile]
    where: dict[str, str]  # tensor name -> file name
    index: dict[str, Any] | None = None
    modules: dict[str, LoraModule] = field(default_factory=dict)
    scaling: float = 1.0

    def info(self, name: str) -> TensorInfo:
        return self.files[self.where[name]].tensors[name]

    def float64(self, name: str) -> np.ndarray:
        return self.files[self.where[name]].float64(name)

    def raw(self, name: str) -> np.ndarray:
        return self.files[self.where[name]].raw(name)

    def names(self) -> list[str]:
        return sorted(self.where)

    def fisher_names(self) -> dict[str, tuple[int, ...]]:
        """The tensors a Fisher file for this input holds: its floating-point weights,
        or for an adapter each adapted weight, named ``<module>.weight``."""
        if self.kind == "adapter":
            return {f"{m.name}.weight": m.shape for m in self.modules.values()}
        return {n: self.info(n).shape for n in self.names() if self.info(n).is_float}

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ComputeModelInvalid(
            f"{path} cannot be read as JSON: {exc}", details={"path": str(path)}
        ) from exc
    if not isinstance(value, dict):
        raise ComputeModelInvalid(f"{path} is not a JSON object", details={"path": str(path)})
    return value


def _open_files(path: Path, names: Sequence[str]) -> dict[str, SafetensorsFile]:
    files: dict[str, SafetensorsFile] = {}
    try:
        for name in names:
            if not (path / name).is_file():
                raise ComputeModelInvalid(
                    f"{path} lacks {name}", details={"path": str(path / name)}
                )
            files[name] = SafetensorsFile(path / name)
    except BaseException:
        for f in files.values():
            f.close()
        raise
    return files


def open_source(path: Path) -> ModelSource:
    """Open a model or adapter folder (headers only); raise if it is neither."""
    path = Path(path)
    if not path.is_dir():
        raise ComputeModelNotFound(
            f"no model folder at {path}",
            hint="give a folder written by save_pretrained (a model or a peft adapter)",
            details={"path": str(path)},
        )
    if (path / ADAPTER_CONFIG).is_file():
        return _open_adapter(path)
    if not (path / "config.json").is_file():
        raise ComputeModelInvalid(
            f"{path} holds neither config.json nor {ADAPTER_CONFIG}",
            hint="give a folder written by save_pretrained (a model or a peft adapter)",
            details={"path": str(path)},
        )
    config = _read_json(path / "config.json")
    index: dict[str, Any] | None = None
    if (path / FULL_INDEX).is_file():
        index = _read_json(path / FULL_INDEX)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ComputeModelInvalid(f"{path / FULL_INDEX} has no weight_map")
        where = {str(k): str(v) for k, v in weight_map.items()}
    elif (path / FULL_WEIGHTS).is_file():
        where = {}
    else:
        raise ComputeModelInvalid(
            f"{path} holds no {FULL_WEIGHTS} (nor {FULL_INDEX})",
            hint="save the model with save_pretrained(safe_serialization=True)",
            details={"path": str(path)},
        )
    files = _open_files(path, sorted(set(where.values())) if index else [FULL_WEIGHTS])
    source = ModelSource(path, "full", config, files, where, index)
    if index is None:
        source.where = {n: FULL_WEIGHTS for n in files[FULL_WEIGHTS].tensors}
    else:
        for fname, f in files.items():
            listed = {n for n, w in where.items() if w == fname}
            if listed != set(f.tensors):
                source.close()
                raise ComputeModelInvalid(
                    f"{path / fname} does not hold the tensors {FULL_INDEX} lists for it",
                    details={"path": str(path / fname)},
                )
    return source


def _open_adapter(path: Path) -> ModelSource:
    config = _read_json(path / ADAPTER_CONFIG)
    files = _open_files(path, [ADAPTER_WEIGHTS])
    source = ModelSource(path, "adapter", config, files, {})
    source.where = {n: ADAPTER_WEIGHTS for n in files[ADAPTER_WEIGHTS].tensors}
    try:
        _read_lora(source)
    except BaseException:
        source.close()
        raise
    return source


def _read_lora(source: ModelSource) -> None:
    config, path = source.config, source.path
    if config.get("peft_type") != "LORA":
        raise MergeIncompatible(f"{path} is a {config.get('peft_type')} adapter, not LoRA")
    for key, why in (
        ("use_dora", "DoRA adapters"),
        ("rank_pattern", "per-module ranks (rank_pattern)"),
        ("alpha_pattern", "per-module alphas (alpha_pattern)"),
        ("modules_to_save", "adapters that save whole modules (modules_to_save)"),
    ):
        if config.get(key):
            raise MergeIncompatible(f"{path}: merging does not handle {why}")
    r, alpha = config.get("r"), config.get("lora_alpha")
    if not isinstance(r, int) or r <= 0 or not isinstance(alpha, int | float):
        raise ComputeModelInvalid(f"{path / ADAPTER_CONFIG} lacks a valid r or lora_alpha")
    source.scaling = float(alpha) / (math.sqrt(r) if config.get("use_rslora") else r)
    pairs: dict[str, dict[str, str]] = {}
    for name in source.where:
        for part in ("lora_A", "lora_B"):
            marker = f".{part}."
            if marker in name:
                pairs.setdefault(name.split(marker)[0], {})[part] = name
                break
        else:
            raise MergeIncompatible(
                f"{path}: the adapter tensor {name} is not a LoRA A or B matrix; "
                "merging handles linear LoRA layers only"
            )
    for module, pair in sorted(pairs.items()):
        if set(pair) != {"lora_A", "lora_B"}:
            raise ComputeModelInvalid(f"{path}: {module} lacks its lora_A or lora_B matrix")
        a, b = source.info(pair["lora_A"]), source.info(pair["lora_B"])
        if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[0] != b.shape[1]:
            raise MergeIncompatible(f"{path}: {module} is not a linear LoRA layer")
        source.modules[module] = LoraModule(
            module, pair["lora_A"], pair["lora_B"], a.shape[0], (b.shape[0], a.shape[1])
        )


def check_compatible(sources: Sequence[ModelSource]) -> None:
    """Raise :class:`MergeIncompatible` unless every source has the same tensors."""
    first = sources[0]
    for other in sources[1:]:
        if other.kind != first.kind:
            raise MergeIncompatible(
                f"{first.path} is a {_kind(first)} and {other.path} a {_kind(other)}",
                hint="merge full models with full models, adapters with adapters",
            )
        if first.kind == "full":
            _check_full(first, other)
        else:
            _check_adapter(first, other)


def _kind(source: ModelSource) -> str:
    return "full model" if source.kind == "full" else "LoRA adapter"


def _check_full(first: ModelSource, other: ModelSource) -> None:
    for key in ("model_type", "architectures"):
        if first.config.get(key) != other.config.get(key):
            raise MergeIncompatible(
                f"{first.path} and {other.path} differ in {key}: "
                f"{first.config.get(key)} and {other.config.get(key)}"
            )
    names, others = set(first.where), set(other.where)
    if names != others:
        extra = sorted(names ^ others)[:3]
        raise MergeIncompatible(
            f"{first.path} and {other.path} hold different tensors (e.g. {', '.join(extra)})",
            details={"differ": extra},
        )
    for name in first.names():
        a, b = first.info(name), other.info(name)
        if a.shape != b.shape or a.is_float != b.is_float:
            raise MergeIncompatible(
                f"{name} is {a.dtype}{list(a.shape)} in {first.path} "
                f"and {b.dtype}{list(b.shape)} in {other.path}"
            )


def _check_adapter(first: ModelSource, other: ModelSource) -> None:
    for key in ADAPTER_KEYS_THAT_MUST_MATCH:
        if first.config.get(key) != other.config.get(key):
            raise MergeIncompatible(
                f"the adapters {first.path} and {other.path} differ in {key}: "
                f"{first.config.get(key)!r} and {other.config.get(key)!r}"
            )
    if set(first.modules) != set(other.modules):
        extra = sorted(set(first.modules) ^ set(other.modules))[:3]
        raise MergeIncompatible(
            f"the adapters {first.path} and {other.path} adapt different modules "
            f"(e.g. {', '.join(extra)})",
            hint="merge adapters trained with the same target_modules",
        )
    for name, module in first.modules.items():
        if module.shape != other.modules[name].shape:
            raise MergeIncompatible(
                f"{name} adapts a {module.shape} weight in {first.path} "
                f"and a {other.modules[name].shape} one in {other.path}"
            )
