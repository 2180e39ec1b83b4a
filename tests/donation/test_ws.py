"""The streamer's alert WebSocket on a real uvicorn (loopback port), fed through Redis pub/sub.

Alerts are produced through the REST API (wallet donations) on the same app; the WebSocket
client is ``websockets``. Checks: every alert exactly once and in order across a forced
reconnect with resume, an alert whose pub/sub message was lost still arrives (from the log),
duplicates are dropped, two API instances both get each alert (fan-out), heartbeat, and 1008
for every wrong token.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.donation import alerts
from payment_service.donation import repository as donation_repository
from payment_service.main import create_app
from payment_service.resources import Resources
from tests.donation.conftest import DonationsEnv, fund_wallet
from tests.live_server import Live, serve

STREAMER = "streamer-ws"
VIEWER = "viewer-ws"
TIMEOUT = 10.0


@pytest.fixture
def fast_ws(settings: Settings, db: Resources) -> Iterator[None]:
    """Short heartbeat and catch-up periods for the duration of a test."""
    own = settings.model_copy(deep=True)
    own.donations.ws_heartbeat_seconds = 0.3
    own.donations.ws_catch_up_seconds = 60.0  # the gap detection, not the periodic re-read, must find lost alerts
    previous, db.settings = db.settings, own
    try:
        yield
    finally:
        db.settings = previous


@pytest.fixture
async def live(donations: DonationsEnv, fast_ws: None) -> AsyncIterator[Live]:
    async with serve(donations.env.app) as running:
        yield running


async def overlay_token(env: DonationsEnv, streamer: str = STREAMER) -> str:
    r = await env.client.post("/v1/donations/overlay-token", headers=env.headers(streamer))
    assert r.status_code == 201, r.text
    return r.headers["overlay-token"]


async def donate(env: DonationsEnv, n: int = 1, *, streamer: str = STREAMER) -> list[int]:
    ids = []
    for _ in range(n):
        r = await env.donate(donor=VIEWER, streamer=streamer, method="wallet", amount="10.00")
        assert r.status_code == 201, r.text
        ids.append(r.json()["alert_id"])
    return ids


async def frames(ws: ClientConnection, *, until_alert: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """Every frame until the alert with id ``until_alert`` arrived."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = orjson.loads(await ws.recv())
            got.append(frame)
            if frame["type"] == "alert" and frame["id"] >= until_alert:
                return got


def alert_ids(got: list[dict[str, Any]]) -> list[int]:
    return [f["id"] for f in got if f["type"] == "alert"]


async def hello(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        frame = orjson.loads(await ws.recv())
    assert frame["type"] == "hello", frame
    return frame


class TestResume:
    async def test_every_alert_exactly_once_across_a_forced_reconnect(
        self, donations: DonationsEnv, live: Live
    ) -> None:
        await fund_wallet(donations.resources, VIEWER, 1000_00)
        token = await overlay_token(donations)
        received: list[int] = []

        async with connect(f"{live.url}?token={token}") as ws:
            assert (await hello(ws))["last_event_id"] == 0
            await donate(donations, 3)
            received += alert_ids(await frames(ws, until_alert=3))
            ws.transport.abort()  # the overlay's network drops: no close handshake

        await donate(donations, 2)  # 4, 5 while nobody is connected

        jwt = donations.env.tokens.user(STREAMER)
        async with connect(
            f"{live.url}?last_event_id={received[-1]}", additional_headers={"Authorization": f"Bearer {jwt}"}
        ) as ws:
            assert (await hello(ws))["last_event_id"] == 3
            received += alert_ids(await frames(ws, until_alert=5))  # replayed from the log

            publisher = alerts.publisher_for(donations.resources.engine.sync_engine)
            assert publisher is not None

            async def lost(rows: Any) -> None:
                return None

            publisher.publish_frames = lost  # type: ignore[method-assign]  # alert 6's pub/sub message is lost
            try:
                await donate(donations, 1)
                await publisher.drain()
            finally:
                del publisher.publish_frames
            assert await donations.scalar("SELECT alert_published_at IS NOT NULL FROM donations WHERE alert_seq = 6")
            await donate(donations, 1)  # 7 arrives live; the gap makes the connection read 6 from the log
            received += alert_ids(await frames(ws, until_alert=7))

            async with transaction(donations.resources.sessionmaker) as session:
                again = await donation_repository.alerts_after(session, streamer_id=STREAMER, after=5, limit=10)
            await publisher.publish(again)  # a second publication of 6 and 7: dropped
            await donate(donations, 1)
            received += alert_ids(await frames(ws, until_alert=8))

        assert received == [1, 2, 3, 4, 5, 6, 7, 8]

    async def test_without_a_resume_position_the_stream_starts_after_the_newest_alert(
        self, donations: DonationsEnv, live: Live
    ) -> None:
        await fund_wallet(donations.resources, VIEWER, 1000_00)
        token = await overlay_token(donations)
        await donate(donations, 2)

        async with connect(f"{live.url}?token={token}") as ws:
            assert (await hello(ws))["last_event_id"] == 2
            await donate(donations, 1)
            got = await frames(ws, until_alert=3)

        assert alert_ids(got) == [3]
        assert got[-1]["amount"] == {"value": "10.00", "currency": "RUB"}
        assert got[-1]["display_name"] == "Зритель"

    async def test_another_streamers_alerts_are_not_delivered(self, donations: DonationsEnv, live: Live) -> None:
        await fund_wallet(donations.resources, VIEWER, 1000_00)
        token = await overlay_token(donations)

        async with connect(f"{live.url}?token={token}") as ws:
            await hello(ws)
            await donate(donations, 1, streamer="someone-else")
            await donate(donations, 1)
            got = await frames(ws, until_alert=1)

        assert [(f["streamer_id"], f["id"]) for f in got if f["type"] == "alert"] == [(STREAMER, 1)]


class TestFanOut:
    async def test_two_api_instances_both_deliver_each_alert_through_redis(
        self, donations: DonationsEnv, live: Live, settings: Settings, db: Resources
    ) -> None:
        await fund_wallet(donations.resources, VIEWER, 1000_00)
        token = await overlay_token(donations)
        second_app = create_app(settings, resources=db)  # another API process: its own hub and connection

        async with (
            serve(second_app) as second,
            connect(f"{live.url}?token={token}") as a,
            connect(f"{second.url}?token={token}") as b,
        ):
            await hello(a)
            await hello(b)
            await donate(donations, 2)
            got_a = alert_ids(await frames(a, until_alert=2))
            got_b = alert_ids(await frames(b, until_alert=2))

        assert got_a == got_b == [1, 2]


class TestRedisFailure:
    async def test_alerts_still_arrive_after_the_hub_lost_its_redis_connection(
        self, donations: DonationsEnv, live: Live
    ) -> None:
        await fund_wallet(donations.resources, VIEWER, 1000_00)
        token = await overlay_token(donations)
        redis = donations.resources.redis
        db = redis.connection_pool.connection_kwargs.get("db", 0)

        async with connect(f"{live.url}?token={token}") as ws:
            await hello(ws)
            await donate(donations, 1)
            first = alert_ids(await frames(ws, until_alert=1))
            clients = await redis.client_list(_type="pubsub")
            ours = [c for c in clients if int(c.get("db", -1)) == db]
            for client in ours:  # only this test worker's subscriptions (its own Redis db number)
                await redis.client_kill_filter(_id=client["id"])
            await donate(donations, 1)  # published while the hub reconnects and resubscribes (or after)
            second = alert_ids(await frames(ws, until_alert=2))

        assert ours
        assert first + second == [1, 2]


class TestHeartbeat:
    async def test_pings_come_on_time_and_a_client_ping_is_answered(self, donations: DonationsEnv, live: Live) -> None:
        token = await overlay_token(donations)

        async with connect(f"{live.url}?token={token}") as ws:
            await hello(ws)
            async with asyncio.timeout(TIMEOUT):
                server_ping = orjson.loads(await ws.recv())
                await ws.send(orjson.dumps({"type": "ping"}).decode())
                while (answer := orjson.loads(await ws.recv()))["type"] == "ping":
                    pass

        assert server_ping == {"type": "ping", "last_event_id": 0}
        assert answer == {"type": "pong", "last_event_id": 0}


class TestRefusals:
    async def close_code(self, url: str, **kw: Any) -> tuple[int | None, str | None]:
        async with connect(url, **kw) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(TIMEOUT):
                    await ws.recv()
        rcvd = closed.value.rcvd
        return (rcvd.code, rcvd.reason) if rcvd else (None, None)

    async def test_missing_or_wrong_tokens_are_closed_with_1008(self, donations: DonationsEnv, live: Live) -> None:
        old = await overlay_token(donations)
        await overlay_token(donations)  # rotation: the old token stops working
        service = donations.env.tokens.service("streaming", ["donations:write"])
        mine = donations.env.tokens.user(STREAMER)
        forged = mine[:-4] + ("AAAA" if not mine.endswith("AAAA") else "BBBB")

        results = {
            "none": await self.close_code(live.url),
            "garbage": await self.close_code(f"{live.url}?token=nonsense"),
            "unknown overlay": await self.close_code(f"{live.url}?token=dov_{uuid.uuid4().hex}"),
            "rotated overlay": await self.close_code(f"{live.url}?token={old}"),
            "forged jwt": await self.close_code(f"{live.url}?token={forged}"),
            "service token": await self.close_code(live.url, additional_headers={"Authorization": f"Bearer {service}"}),
            "another stream": await self.close_code(f"{live.url}?token={mine}&streamer_id=other-streamer"),
            "bad resume id": await self.close_code(f"{live.url}?token={mine}&last_event_id=-1"),
        }

        assert {name: code for name, (code, _) in results.items()} == dict.fromkeys(results, 1008)
        assert results["service token"][1] == "stream_scope_refused"
        assert results["rotated overlay"][1] == "invalid_stream_token"

    async def test_the_right_stream_named_explicitly_is_accepted(self, donations: DonationsEnv, live: Live) -> None:
        mine = donations.env.tokens.user(STREAMER)

        async with connect(f"{live.url}?token={mine}&streamer_id={STREAMER}") as ws:
            assert (await hello(ws))["streamer_id"] == STREAMER
