"""``create_app()``: the Game Catalog emulator as a FastAPI app (in process via ASGITransport, or served)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from emulators.catalog.routes import api_router, control_router
from emulators.catalog.state import CatalogConfig, CatalogState


def create_app(config: CatalogConfig | None = None) -> FastAPI:
    state = CatalogState(config=config or CatalogConfig())
    app = FastAPI(title="Game Catalog emulator", docs_url="/_emulator/docs", openapi_url="/_emulator/openapi.json")
    app.state.emulator = state
    app.include_router(api_router(state))
    app.include_router(control_router(state))
    return app


def state_of(app: Any) -> CatalogState:
    s = app.state.emulator
    assert isinstance(s, CatalogState)
    return s
