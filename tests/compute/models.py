"""A tiny random causal LM and a small text set for the compute tests, made once per
session with :func:`sahara_cli.compute.tiny.make_tiny_causal_lm` (nothing downloads)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sahara_cli.compute.tiny import make_tiny_causal_lm

_ANIMALS = ("camel", "fox", "lizard", "falcon", "beetle", "gazelle")
_FOODS = ("dates", "seeds", "leaves", "insects", "grass")
_PLACES = ("dunes", "oasis", "canyon", "plateau")


def sample_texts(count: int = 60, seed: int = 0) -> list[str]:
    """Short sentences of one template: text a tiny model learns from in a few steps."""
    rnd = random.Random(seed)
    return [
        f"the {rnd.choice(_ANIMALS)} eats {rnd.choice(_FOODS)} near the "
        f"{rnd.choice(_PLACES)} at dawn."
        for _ in range(count)
    ]


@pytest.fixture(scope="session")
def texts() -> list[str]:
    return sample_texts()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, texts: list[str]) -> Path:
    """A 2-layer, 32-wide Llama with a BPE tokenizer trained on :func:`sample_texts`."""
    return make_tiny_causal_lm(
        tmp_path_factory.mktemp("compute") / "tiny-base", texts, hidden=32, vocab_size=300
    )
