"""``create_app()``: the T-Bank emulator."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from emulators._common.control import control_router, install_fault_handler
from emulators._common.state import EmulatorConfig
from emulators.tbank.routes import build_router, fault_response, pages_router
from emulators.tbank.state import TBankState


def create_app(
    config: EmulatorConfig | None = None,
    *,
    terminals: dict[str, str] | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    state = TBankState(config, terminals=terminals, webhook_transport=webhook_transport)
    app = FastAPI(title="T-Bank emulator", docs_url="/_emulator/docs", openapi_url="/_emulator/openapi.json")
    app.state.emulator = state
    install_fault_handler(app, fault_response)
    app.include_router(build_router(state))
    app.include_router(pages_router(state))
    app.include_router(control_router(state))
    return app


def state_of(app: Any) -> TBankState:
    s = app.state.emulator
    assert isinstance(s, TBankState)
    return s
