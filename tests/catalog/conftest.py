"""The Game Catalog emulator in process, and clients of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from emulators.catalog.app import create_app, state_of
from emulators.catalog.state import CatalogConfig, CatalogState

from payment_service.catalog.client import HttpCatalogClient
from payment_service.config import CatalogSettings

BASE_URL = "http://catalog.emu"


def catalog_settings(**overrides: Any) -> CatalogSettings:
    values: dict[str, Any] = {
        "base_url": BASE_URL,
        "timeout_seconds": 0.5,
        "max_attempts": 2,
        "retry_backoff_seconds": 0.0,
        "cache_ttl_seconds": 60,
    }
    values.update(overrides)
    return CatalogSettings(**values)


@pytest.fixture
def catalog_app() -> Any:
    return create_app(CatalogConfig(hang_seconds=2.0))


@pytest.fixture
def catalog_state(catalog_app: Any) -> CatalogState:
    return state_of(catalog_app)


@pytest.fixture
async def catalog_http(catalog_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=catalog_app)) as http:
        yield http


@pytest.fixture
def catalog_client(catalog_http: httpx.AsyncClient) -> HttpCatalogClient:
    return HttpCatalogClient(catalog_settings(), catalog_http)
