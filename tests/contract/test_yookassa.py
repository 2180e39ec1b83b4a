"""Contract cases for yookassa: emulator always, sandbox when its credentials are set."""

from __future__ import annotations

from tests.contract.cases import ContractCases


class TestContract(ContractCases):
    provider = "yookassa"
