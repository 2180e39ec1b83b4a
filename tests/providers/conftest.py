from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.providers.harness import Harness, build


@pytest.fixture
async def yookassa() -> AsyncIterator[Harness]:
    h = build("yookassa")
    yield h
    await h.adapter.aclose()


@pytest.fixture
async def tbank() -> AsyncIterator[Harness]:
    h = build("tbank")
    yield h
    await h.adapter.aclose()


@pytest.fixture
async def sber() -> AsyncIterator[Harness]:
    h = build("sber")
    yield h
    await h.adapter.aclose()


@pytest.fixture
async def mobile() -> AsyncIterator[Harness]:
    h = build("mobile")
    yield h
    await h.adapter.aclose()
