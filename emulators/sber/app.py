"""``create_app()``: the Sber emulator."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from emulators._common.control import control_router, install_fault_handler
from emulators._common.state import EmulatorConfig
from emulators.sber.routes import build_router, fault_response, pages_router
from emulators.sber.state import SberState


def create_app(
    config: EmulatorConfig | None = None,
    *,
    merchants: dict[str, tuple[str, str]] | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    state = SberState(config, merchants=merchants, webhook_transport=webhook_transport)
    app = FastAPI(title="Sber emulator", docs_url="/_emulator/docs", openapi_url="/_emulator/openapi.json")
    app.state.emulator = state
    install_fault_handler(app, fault_response)
    app.include_router(build_router(state))
    app.include_router(pages_router(state))
    app.include_router(control_router(state))
    return app


def state_of(app: Any) -> SberState:
    s = app.state.emulator
    assert isinstance(s, SberState)
    return s
