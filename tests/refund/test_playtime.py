"""The playtime port's HTTP client against the platform API emulator (no database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from emulators.playtime.app import PlaytimeState, create_app
from pydantic import SecretStr

from payment_service.config import PlaytimeSettings
from payment_service.playtime.client import HttpPlaytimeClient
from payment_service.playtime.ports import NoPlaytime, PlaytimePort, PlaytimeUnavailable

SETTINGS = PlaytimeSettings(base_url="http://platform.test", token=SecretStr("t0ken"))


@pytest.fixture
def state() -> PlaytimeState:
    return PlaytimeState(token="t0ken")


@pytest.fixture
async def client(state: PlaytimeState) -> AsyncIterator[HttpPlaytimeClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(state))) as http:
        yield HttpPlaytimeClient(SETTINGS, http=http)


class TestHttpPlaytimeClient:
    async def test_reads_the_minutes_played(self, client: HttpPlaytimeClient, state: PlaytimeState) -> None:
        state.set("user 1", "game 7", 95)

        assert await client.playtime(user_id="user 1", game_id="game 7") == timedelta(minutes=95)
        assert state.requests == [("user 1", "game 7")]  # ids are escaped into the path

    async def test_a_game_never_launched_is_zero(self, client: HttpPlaytimeClient) -> None:
        assert await client.playtime(user_id="u", game_id="g") == timedelta(0)

    async def test_an_outage_is_unavailable_never_zero(self, client: HttpPlaytimeClient, state: PlaytimeState) -> None:
        state.set("u", "g", 10)
        state.failures = 1

        with pytest.raises(PlaytimeUnavailable, match="503"):
            await client.playtime(user_id="u", game_id="g")

    async def test_a_refused_token_is_unavailable(self, state: PlaytimeState) -> None:
        state.token = "another"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(state))) as http:
            with pytest.raises(PlaytimeUnavailable, match="401"):
                await HttpPlaytimeClient(SETTINGS, http=http).playtime(user_id="u", game_id="g")

    async def test_an_unreachable_platform_is_unavailable(self) -> None:
        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
            with pytest.raises(PlaytimeUnavailable, match="unreachable"):
                await HttpPlaytimeClient(SETTINGS, http=http).playtime(user_id="u", game_id="g")

    async def test_an_answer_about_someone_else_is_not_trusted(self) -> None:
        def other(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={"user_id": "x", "game_id": "g", "minutes_played": 1})

        async with httpx.AsyncClient(transport=httpx.MockTransport(other)) as http:
            with pytest.raises(PlaytimeUnavailable, match="another user"):
                await HttpPlaytimeClient(SETTINGS, http=http).playtime(user_id="u", game_id="g")

    async def test_without_a_platform_nothing_is_known(self) -> None:
        port: PlaytimePort = NoPlaytime()

        with pytest.raises(PlaytimeUnavailable, match="not configured"):
            await port.playtime(user_id="u", game_id="g")
