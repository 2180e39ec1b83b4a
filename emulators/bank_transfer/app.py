"""``create_app()``: the bank-transfer emulator."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from emulators._common.control import install_fault_handler
from emulators.bank_transfer.routes import build_router, control_router, fault_response
from emulators.bank_transfer.state import BankConfig, BankState


def create_app(
    config: BankConfig | None = None,
    *,
    merchants: dict[str, tuple[str, str]] | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    state = BankState(config, merchants=merchants, webhook_transport=webhook_transport)
    app = FastAPI(title="Bank-transfer emulator", docs_url="/_emulator/docs", openapi_url="/_emulator/openapi.json")
    app.state.emulator = state
    install_fault_handler(app, fault_response)
    app.include_router(build_router(state))
    app.include_router(control_router(state))
    return app


def state_of(app: Any) -> BankState:
    s = app.state.emulator
    assert isinstance(s, BankState)
    return s
