"""The session's tiny model and texts for every compute test; torch on one thread (the
models are too small to gain from more, and a shared machine's cores stay free)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compute.models import texts, tiny_base

__all__ = ["one_thread", "texts", "tiny_base"]


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
