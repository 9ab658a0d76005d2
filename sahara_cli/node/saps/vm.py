"""The Sahara VM: py-evm's newest fork with the SAPs in its precompile table."""

from __future__ import annotations

from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.computation import PragueComputation
from eth.vm.forks.prague.state import PragueState

from sahara_cli.node.saps import precompiles


class SaharaComputation(PragueComputation):
    _precompiles = {**PragueComputation._precompiles, **precompiles()}  # noqa: RUF012


class SaharaState(PragueState):
    computation_class = SaharaComputation


class SaharaVM(PragueVM):
    _state_class = SaharaState
