"""``create_app()``: the YooKassa emulator as a FastAPI app (in-process via ASGITransport or served)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from emulators._common.control import control_router, install_fault_handler
from emulators._common.state import EmulatorConfig
from emulators.yookassa.routes import build_router, checkout_router, fault_response
from emulators.yookassa.state import YooKassaState


def create_app(
    config: EmulatorConfig | None = None,
    *,
    shops: dict[str, str] | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    state = YooKassaState(config, shops=shops, webhook_transport=webhook_transport)
    app = FastAPI(title="YooKassa emulator", docs_url="/_emulator/docs", openapi_url="/_emulator/openapi.json")
    app.state.emulator = state
    install_fault_handler(app, fault_response)
    app.include_router(build_router(state))
    app.include_router(checkout_router(state))
    app.include_router(control_router(state))
    return app


def state_of(app: Any) -> YooKassaState:
    s = app.state.emulator
    assert isinstance(s, YooKassaState)
    return s
