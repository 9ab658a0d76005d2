"""The session's tiny models and texts for every compute test; torch on one thread (the
models are too small to gain from more, and a shared machine's cores stay free)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sahara_cli.agent.runners.tiny_models import write_tiny_transformers
from tests.compute.merge_helpers import make_adapter, perturbed
from tests.compute.models import texts, tiny_base

__all__ = ["models", "one_thread", "texts", "tiny_base"]


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny models the merge tests share: a base, three perturbed copies, two adapters."""
    root = tmp_path_factory.mktemp("merge")
    base = write_tiny_transformers(root / "base")
    out = {"base": base}
    for i in (1, 2, 3):
        out[f"ft{i}"] = perturbed(base, root / f"ft{i}", seed=i)
    out["ad1"] = make_adapter(base, root / "ad1", 1, r=4)
    out["ad2"] = make_adapter(base, root / "ad2", 2, r=2)
    return out
