"""``create_app()``: the YooKassa Payouts emulator as a FastAPI app (in-process via ASGITransport or served)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from emulators._common.control import install_fault_handler
from emulators.yookassa_payouts.routes import build_router, control_router, fault_response
from emulators.yookassa_payouts.state import PayoutsConfig, PayoutsState


def create_app(
    config: PayoutsConfig | None = None,
    *,
    agents: dict[str, str] | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    state = PayoutsState(config, agents=agents, webhook_transport=webhook_transport)
    app = FastAPI(title="YooKassa Payouts emulator", docs_url="/_emulator/docs", openapi_url="/_emulator/openapi.json")
    app.state.emulator = state
    install_fault_handler(app, fault_response)
    app.include_router(build_router(state))
    app.include_router(control_router(state))
    return app


def state_of(app: Any) -> PayoutsState:
    s = app.state.emulator
    assert isinstance(s, PayoutsState)
    return s
