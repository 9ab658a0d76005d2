"""The tiny models the merge tests share, made once per session; nothing downloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahara_cli.agent.runners.tiny_models import write_tiny_transformers
from tests.compute.merge_helpers import make_adapter, perturbed


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("merge")
    base = write_tiny_transformers(root / "base")
    out = {"base": base}
    for i in (1, 2, 3):
        out[f"ft{i}"] = perturbed(base, root / f"ft{i}", seed=i)
    out["ad1"] = make_adapter(base, root / "ad1", 1, r=4)
    out["ad2"] = make_adapter(base, root / "ad2", 2, r=2)
    return out
