"""The committed protocol artifacts are what the Vyper sources compile to, and they agree
with each other and with the deployment manifest."""

from __future__ import annotations

import re
from pathlib import Path

import boa
import pytest
from eth_utils import is_checksum_address

from sahara_cli.protocol import artifacts
from sahara_cli.protocol.artifacts import (
    CONSTANT_NAMES,
    CONTRACTS_DIR,
    NAMES,
    addresses,
    artifact,
    constant_mismatches,
    sap_addresses,
)

#: The other contracts each source names by address constant.
REFERENCES = {
    "AssetRegistry": {"ATTRIBUTION", "TRAINING_SAP"},
    "Receipts": {"ATTRIBUTION"},
    "Licensing": {"REGISTRY", "ATTRIBUTION", "INFERENCE_SAP"},
    "Attribution": {"REGISTRY", "RECEIPTS"},
    "Provenance": {"REGISTRY", "LICENSING"},
}
CONSTANT = re.compile(r"^(\w+): constant\(address\) = (0x[0-9a-fA-F]{40})", re.MULTILINE)


def test_check_mode_passes_on_the_committed_artifacts() -> None:
    """``artifacts --check`` recompiles every contract and finds nothing stale."""
    assert artifacts.main(["--check"]) == 0


def test_the_manifest_names_each_contract_once() -> None:
    """deployment.json has every contract at distinct checksummed addresses."""
    manifest = addresses()
    assert set(manifest) == set(NAMES)
    assert len({a.lower() for a in manifest.values()}) == len(NAMES)
    assert all(is_checksum_address(a) for a in manifest.values())


@pytest.mark.parametrize("name", NAMES)
def test_address_constants_match_the_manifest(name: str) -> None:
    """Each source names the contracts it calls, at their manifest addresses."""
    source = CONTRACTS_DIR / f"{name}.vy"
    found = dict(CONSTANT.findall(source.read_text()))
    assert set(found) == REFERENCES[name]
    for const, value in found.items():
        assert value == {**addresses(), **sap_addresses()}[CONSTANT_NAMES[const]]
    assert constant_mismatches(source) == []


def test_constant_mismatches_reports_a_wrong_address(tmp_path: Path) -> None:
    """The constants check is not vacuous: a wrong address is reported by name."""
    source = CONTRACTS_DIR / "Licensing.vy"
    wrong = "0x5A4A000000000000000000000000000000000009"
    text = source.read_text().replace(addresses()["Attribution"], wrong)
    bad = tmp_path / "Licensing.vy"
    bad.write_text(text)
    problems = constant_mismatches(bad)
    assert len(problems) == 1
    assert "ATTRIBUTION" in problems[0]
    assert wrong in problems[0]


@pytest.mark.parametrize("name", NAMES)
def test_artifact_fields_are_consistent(name: str) -> None:
    """The artifact names its contract and compiler, and its runtime is in its bytecode."""
    import vyper

    built = artifact(name)
    assert built["contract"] == name
    assert built["compiler"] == f"vyper {vyper.__version__}"
    bytecode, runtime = built["bytecode"], built["bytecode_runtime"]
    assert bytecode.startswith("0x")
    assert runtime.startswith("0x")
    assert len(runtime) > 2
    assert runtime[2:] in bytecode[2:]
    assert len(bytecode) > len(runtime)


@pytest.mark.parametrize("name", NAMES)
def test_deploying_the_bytecode_leaves_the_runtime(name: str) -> None:
    """Running the deployment bytecode leaves exactly bytecode_runtime at the address."""
    built = artifact(name)
    env = boa.Env()
    address, output = env.deploy_code(bytecode=bytes.fromhex(built["bytecode"][2:]))
    assert bytes(output).hex() == built["bytecode_runtime"][2:]
    assert bytes(env.get_code(address)).hex() == built["bytecode_runtime"][2:]


@pytest.mark.parametrize("name", NAMES)
def test_the_abi_matches_the_sources_external_functions(name: str) -> None:
    """Every ``@external`` function of the source is in the committed ABI, and no more."""
    source = (CONTRACTS_DIR / f"{name}.vy").read_text()
    externals = set(re.findall(r"@external\n(?:@\w+\n)*def (\w+)\(", source))
    publics = set(re.findall(r"^(\w+): public\(", source, re.MULTILINE))
    functions = {e["name"] for e in artifact(name)["abi"] if e["type"] == "function"}
    assert functions == externals | publics
