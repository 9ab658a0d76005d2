"""Merge models: weighted average, task arithmetic, TIES and Fisher merging.

:func:`merge_models` merges full-weight model folders or peft LoRA adapter folders
(safetensors) into a new folder of the same form, and returns a :class:`MergeOutcome`
whose ``shares_bps`` are the inputs' weights as basis points summing to 10,000: the
revenue shares of the inputs when the merged model is registered with them as parents.

Tensors are read and merged one name at a time, in float64, and the result is written
as it is computed, so memory holds one tensor of each input, not whole models. Every
check (folders, headers, shapes, arguments) runs before anything is written; the output
is written into a hidden folder beside ``out_dir`` and renamed into place at the end, so
a failed merge leaves no output. mergekit was weighed for this and not used:
``docs/decisions.md`` says why.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from sahara_cli.compute import merge_methods
from sahara_cli.compute.merge_adapters import merge_adapters
from sahara_cli.compute.merge_inputs import (
    FULL_INDEX,
    ModelSource,
    check_compatible,
    open_source,
)
from sahara_cli.compute.safetensors_io import SafetensorsFile, write_streaming
from sahara_cli.errors import (
    ComputeModelNotFound,
    MergeArgumentInvalid,
    MergeIncompatible,
    MergeOutputExists,
    MergeWriteFailed,
)

METHODS = merge_methods.METHODS
TOTAL_BPS = 10_000
#: Files of an input folder that are not copied into the merged one (weights, training
#: state); everything else at its top level (config, tokenizer, generation config) is.
_NOT_COPIED = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".index.json")


@dataclass(frozen=True)
class MergedFile:
    """A file of the merged folder: its name in the folder, SHA-256 and size."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class MergeOutcome:
    """What a merge did. ``shares_bps[i]`` is the share of ``inputs[i]``."""

    method: str
    kind: Literal["full", "adapter"]
    inputs: tuple[Path, ...]
    base: Path | None
    weights: tuple[float, ...]
    shares_bps: tuple[int, ...]
    out_dir: Path
    files: tuple[MergedFile, ...]
    parameters: int
    seconds: float


def shares_bps(weights: Sequence[float]) -> tuple[int, ...]:
    """Weights as basis points that sum to exactly 10,000 (largest remainder).

    Each share is ⌊10,000·wᵢ/Σw⌋, computed exactly on the floats' rational values; the
    basis points left over go one each to the largest remainders, the earlier input
    first among equal ones. The same weights always give the same shares.
    """
    exact = [Fraction(w) for w in weights]
    total = sum(exact, Fraction(0))
    scaled = [TOTAL_BPS * w / total for w in exact]
    floors = [math.floor(s) for s in scaled]
    left = TOTAL_BPS - sum(floors)
    order = sorted(range(len(scaled)), key=lambda i: (-(scaled[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return tuple(floors)


def _check_arguments(
    inputs: Sequence[Path],
    method: str,
    weights: Sequence[float] | None,
    density: float,
    lam: float,
) -> tuple[str, tuple[float, ...]]:
    method = method.replace("_", "-")
    if method not in METHODS:
        raise MergeArgumentInvalid(
            f"unknown merge method {method!r}", hint=f"use one of: {', '.join(METHODS)}"
        )
    least = 1 if method in merge_methods.NEEDS_BASE else 2
    if len(inputs) < least:
        raise MergeArgumentInvalid(f"{method} merges at least {least} models; got {len(inputs)}")
    if weights is None:
        weights = [1.0] * len(inputs)
    if len(weights) != len(inputs):
        raise MergeArgumentInvalid(
            f"{len(weights)} weights for {len(inputs)} models",
            hint="give one weight per model, in the same order",
        )
    if not all(math.isfinite(w) and w > 0 for w in weights):
        raise MergeArgumentInvalid(
            f"the weights must be positive numbers; got {list(weights)}",
            hint="each weight is a model's part of the merge and of its revenue",
        )
    if not 0 < density <= 1:
        raise MergeArgumentInvalid(f"density must be in (0, 1]; got {density}")
    if not math.isfinite(lam):
        raise MergeArgumentInvalid(f"the scale λ must be a finite number; got {lam}")
    return method, tuple(float(w) for w in weights)


def merge_models(
    inputs: Sequence[Path],
    out_dir: Path,
    *,
    method: str,
    weights: Sequence[float] | None = None,
    base: Path | None = None,
    density: float = 0.2,
    lam: float = 1.0,
    fisher: Sequence[Path] | None = None,
    fisher_texts: Sequence[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> MergeOutcome:
    """Merge ``inputs`` (model or adapter folders) into the new folder ``out_dir``.

    - ``method``: ``average`` | ``task-arithmetic`` | ``ties`` | ``fisher``.
    - ``weights``: one positive number per input (default all 1). ``average`` and
      ``fisher`` normalise them; ``task-arithmetic`` and ``ties`` use them as given.
      Either way ``shares_bps`` is them normalised.
    - ``base``: the model the inputs were fine-tuned from, for ``task-arithmetic`` and
      ``ties`` over full models (adapters carry their base: their ΔW is the task vector).
    - ``density``: the fraction of each task vector TIES keeps; ``lam``: the scale λ of
      the merged task vector.
    - ``fisher``: one safetensors file of diagonal Fisher values per input (see
      :func:`sahara_cli.compute.fisher.fisher_diagonal`), or ``fisher_texts`` to compute
      them here on those texts (needs torch and each input's tokenizer).
    - ``on_progress(done, total)`` is called after each tensor (or adapted module).
    """
    started = time.monotonic()
    inputs = [Path(p) for p in inputs]
    out_dir = Path(out_dir)
    method, used = _check_arguments(inputs, method, weights, density, lam)
    if out_dir.exists():
        raise MergeOutputExists(f"{out_dir} exists already", details={"path": str(out_dir)})
    sources: list[ModelSource] = []
    extras: list[ModelSource] = []
    fisher_files: list[SafetensorsFile] = []
    scratch: tempfile.TemporaryDirectory[str] | None = None
    try:
        for path in inputs:
            sources.append(open_source(path))
        check_compatible(sources)
        kind = sources[0].kind
        _check_base_and_fisher(kind, method, base, fisher, fisher_texts, len(inputs))
        if base is not None:
            extras.append(open_source(Path(base)))
            check_compatible([sources[0], extras[0]])
        if method == "fisher":
            if fisher is None:
                scratch = tempfile.TemporaryDirectory(prefix="sahara-fisher-")
                fisher = _compute_fishers(inputs, fisher_texts or (), Path(scratch.name))
            fisher_files = _open_fishers(sources[0], fisher)
        files, count = _write(
            out_dir, sources, extras[0] if extras else None, fisher_files, method, used,
            density, lam, on_progress,
        )  # fmt: skip
    finally:
        for s in (*sources, *extras):
            s.close()
        for f in fisher_files:
            f.close()
        if scratch is not None:
            scratch.cleanup()
    return MergeOutcome(
        method=method,
        kind=kind,
        inputs=tuple(inputs),
        base=Path(base) if base is not None else None,
        weights=used,
        shares_bps=shares_bps(used),
        out_dir=out_dir,
        files=files,
        parameters=count,
        seconds=time.monotonic() - started,
    )


def _write(
    out_dir: Path,
    sources: Sequence[ModelSource],
    base: ModelSource | None,
    fishers: Sequence[SafetensorsFile],
    method: str,
    weights: Sequence[float],
    density: float,
    lam: float,
    on_progress: Callable[[int, int], None] | None,
) -> tuple[tuple[MergedFile, ...], int]:
    """Merge into a hidden folder beside ``out_dir``, then rename it into place."""
    tmp = out_dir.parent / f".{out_dir.name}.partial-{secrets.token_hex(4)}"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise _write_failed(out_dir, exc) from exc
    try:
        _copy_side_files(sources[0].path, tmp)
        if sources[0].kind == "adapter":
            count = merge_adapters(
                sources, tmp, method=method, weights=weights, density=density, lam=lam,
                fishers=fishers, on_progress=on_progress,
            )  # fmt: skip
        else:
            count = _merge_full(
                sources, base, fishers, tmp, method, weights, density, lam, on_progress
            )
        files = _hash_files(tmp)
        if out_dir.exists():
            raise MergeOutputExists(f"{out_dir} appeared while merging")
        tmp.rename(out_dir)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_failed(out_dir, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files, count


def _write_failed(out_dir: Path, exc: OSError) -> MergeWriteFailed:
    return MergeWriteFailed(
        f"cannot write the merged model to {out_dir}: {exc.strerror or exc}",
        details={"path": str(out_dir)},
    )


def _check_base_and_fisher(
    kind: str,
    method: str,
    base: Path | None,
    fisher: Sequence[Path] | None,
    fisher_texts: Sequence[str] | None,
    n: int,
) -> None:
    if kind == "adapter" and base is not None:
        raise MergeArgumentInvalid(
            "adapters are merged without --base: their own base model is the base",
        )
    if kind == "full" and method in merge_methods.NEEDS_BASE and base is None:
        raise MergeArgumentInvalid(
            f"{method} needs the base model the inputs were fine-tuned from",
            hint="give it with --base",
        )
    if method not in merge_methods.NEEDS_BASE and base is not None:
        raise MergeArgumentInvalid(f"{method} takes no base model")
    if method != "fisher":
        if fisher is not None or fisher_texts is not None:
            raise MergeArgumentInvalid("Fisher values are used by the fisher method only")
        return
    if (fisher is None) == (fisher_texts is None):
        raise MergeArgumentInvalid(
            "fisher needs either one Fisher file per model or texts to compute them on"
        )
    if fisher is not None and len(fisher) != n:
        raise MergeArgumentInvalid(f"{len(fisher)} Fisher files for {n} models")
    if fisher_texts is not None and not any(t.strip() for t in fisher_texts):
        raise MergeArgumentInvalid("no texts to compute the Fisher information on")


def _compute_fishers(inputs: Sequence[Path], texts: Sequence[str], where: Path) -> list[Path]:
    from sahara_cli.compute.fisher import fisher_diagonal, save_fisher

    paths = []
    for i, path in enumerate(inputs):
        out = where / f"fisher-{i}.safetensors"
        save_fisher(out, fisher_diagonal(path, texts))
        paths.append(out)
    return paths


def _open_fishers(first: ModelSource, paths: Sequence[Path]) -> list[SafetensorsFile]:
    files: list[SafetensorsFile] = []
    try:
        for path in paths:
            if not Path(path).is_file():
                raise ComputeModelNotFound(f"no Fisher file at {path}")
            files.append(SafetensorsFile(Path(path)))
            for name, shape in first.fisher_names().items():
                got = files[-1].tensors.get(name)
                if got is None or got.shape != shape:
                    raise MergeIncompatible(
                        f"the Fisher file {path} has no {list(shape)} tensor {name}",
                        hint="compute the Fisher values on the model they are given with",
                    )
    except BaseException:
        for f in files:
            f.close()
        raise
    return files


def _merge_full(
    sources: Sequence[ModelSource],
    base: ModelSource | None,
    fishers: Sequence[SafetensorsFile],
    tmp: Path,
    method: str,
    weights: Sequence[float],
    density: float,
    lam: float,
    on_progress: Callable[[int, int], None] | None,
) -> int:
    first = sources[0]
    total, done, count = len(first.where), 0, 0

    def merged(name: str) -> np.ndarray:
        if not first.info(name).is_float:
            raw = first.raw(name)
            for other in (*sources[1:], *([base] if base else [])):
                if not np.array_equal(other.raw(name), raw):
                    raise MergeIncompatible(
                        f"the integer tensor {name} differs between {first.path} and "
                        f"{other.path}; it cannot be merged"
                    )
            return np.array(raw)
        thetas = [s.float64(name) for s in sources]
        if method == "average":
            return merge_methods.average(thetas, weights)
        if method == "fisher":
            fs = [f.float64(name) for f in fishers]
            return merge_methods.fisher(thetas, fs, weights)
        assert base is not None
        theta0 = base.float64(name)
        taus = [t - theta0 for t in thetas]
        if method == "ties":
            tau = merge_methods.ties(taus, weights, density, lam)
        else:
            tau = merge_methods.task_arithmetic(taus, weights, lam)
        out: np.ndarray = theta0 + tau
        return out

    def stream(names: Sequence[str]) -> Iterator[tuple[str, np.ndarray]]:
        nonlocal done
        for name in names:
            value = merged(name)
            done += 1
            if on_progress is not None:
                on_progress(done, total)
            yield name, value

    sizes = 0
    for fname, f in first.files.items():
        names = sorted(f.tensors)
        layout = [(n, f.tensors[n].dtype, f.tensors[n].shape) for n in names]
        count += write_streaming(tmp / fname, layout, stream(names), f.metadata or {"format": "pt"})
        sizes += sum(f.tensors[n].end - f.tensors[n].begin for n in names)
    if first.index is not None:
        index = dict(first.index)
        index["metadata"] = {**(index.get("metadata") or {}), "total_size": sizes}
        (tmp / FULL_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return count


def _copy_side_files(source: Path, tmp: Path) -> None:
    for path in sorted(source.iterdir()):
        if path.is_file() and not path.name.endswith(_NOT_COPIED):
            if path.name.startswith(("optimizer", "scheduler", "trainer_state", "rng_state")):
                continue
            shutil.copy2(path, tmp / path.name)


def _hash_files(folder: Path) -> tuple[MergedFile, ...]:
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out.append(
            MergedFile(path.relative_to(folder).as_posix(), digest.hexdigest(), path.stat().st_size)
        )
    return tuple(out)
