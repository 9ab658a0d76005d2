"""The committed end-to-end test contract artifacts are what their sources compile to."""

from __future__ import annotations

import json

import pytest

from tests.e2e.contracts.build import SOURCES, artifact_path, compile_contract, render


def test_there_are_contracts_to_check() -> None:
    assert [source.name for source in SOURCES] == ["Counter.vy"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda source: source.stem)
def test_artifact_matches_a_fresh_compile(source) -> None:
    fresh = compile_contract(source)
    committed = json.loads(artifact_path(source).read_text())
    assert committed["abi"] == fresh["abi"], "ABI drifted: run tests/e2e/contracts/build.py"
    assert committed["bytecode"] == fresh["bytecode"], (
        "bytecode drifted: run tests/e2e/contracts/build.py"
    )
    assert artifact_path(source).read_text() == render(fresh)


def test_counter_has_the_interface_the_suites_use() -> None:
    abi = json.loads(artifact_path(SOURCES[0]).read_text())["abi"]
    names = {entry["name"] for entry in abi if "name" in entry}
    assert {"count", "increment", "set", "fail", "deposit", "double"} <= names
    assert {"Incremented", "Deposited"} <= names
