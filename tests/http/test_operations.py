"""Health probes, metrics and overload protection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import httpx
import pytest
import sqlalchemy
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from payment_service.config import Settings
from payment_service.deps import ReadSession
from payment_service.devstack import OpenBao, Tansu
from payment_service.main import create_app
from payment_service.middleware import InFlightLimitMiddleware
from payment_service.resources import Resources
from tests.conftest import Tokens


class TestHealth:
    async def test_live(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/health/live")).json() == {"status": "ok"}

    async def test_ready_when_everything_answers(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/health/ready")

        assert r.status_code == 200, r.text
        assert set(r.json()["checks"]) == {"postgres", "redis", "broker", "vault"}

    async def test_readiness_flips_when_a_dependency_goes_away(self, settings: Settings, tmp_path: object) -> None:
        broker = Tansu().start()
        vault = OpenBao().start()
        own = settings.model_copy(deep=True)
        own.kafka.bootstrap_servers = broker.bootstrap_servers
        own.vault.addr = vault.addr
        resources = Resources.build(own)
        app = create_app(own, resources=resources)
        try:
            async with LifespanManager(app):
                c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
                assert (await c.get("/health/ready")).status_code == 200

                broker.stop()
                down = await c.get("/health/ready")
                assert down.status_code == 503
                assert down.json()["failed"] == ["broker"]

                vault.stop()
                both = await c.get("/health/ready")
                assert both.status_code == 503
                assert both.json()["failed"] == ["broker", "vault"]

                broker = Tansu(port=broker.port).start()
                vault = OpenBao(port=vault.port).start()
                assert (await c.get("/health/ready")).status_code == 200
        finally:
            broker.stop()
            vault.stop()
            await resources.close()

    async def test_not_ready_while_shutting_down(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        app.state.shutting_down = True

        r = await client.get("/health/ready")

        assert r.status_code == 503
        assert r.json()["status"] == "shutting_down"

    async def test_metrics_have_red_per_route_template(self, client: httpx.AsyncClient, tokens: Tokens) -> None:
        await client.get("/v1/me", headers=tokens.headers(tokens.user()))

        text = (await client.get("/metrics")).text

        assert 'http_requests_total{method="GET",route="/v1/me",status="200"}' in text
        assert "http_request_duration_seconds_bucket" in text


class TestOverload:
    @pytest.fixture
    async def small_app(self, settings: Settings, db: Resources) -> FastAPI:
        own = settings.model_copy(deep=True)
        own.http.max_in_flight = 3
        application = create_app(own, resources=db)
        slow = APIRouter()

        @slow.get("/v1/_test/slow")
        async def slow_route() -> dict[str, str]:
            await asyncio.sleep(0.3)
            return {"ok": "yes"}

        @slow.post("/v1/webhooks/_test/ping")
        async def webhook_route() -> dict[str, str]:
            return {"ok": "webhook"}

        application.include_router(slow)
        return application

    async def test_beyond_the_limit_requests_get_503_with_retry_after(self, small_app: FastAPI) -> None:
        async with LifespanManager(small_app):
            c = httpx.AsyncClient(transport=httpx.ASGITransport(app=small_app), base_url="http://t")

            responses = await asyncio.gather(*(c.get("/v1/_test/slow") for _ in range(8)))
            health = await c.get("/health/live")

        ok = [r for r in responses if r.status_code == 200]
        shed = [r for r in responses if r.status_code == 503]
        assert len(ok) == 3
        assert len(shed) == 5
        assert all(1 <= int(r.headers["retry-after"]) <= 30 and r.json()["code"] == "overloaded" for r in shed)
        assert health.status_code == 200

    async def test_provider_webhooks_have_capacity_of_their_own(self, small_app: FastAPI) -> None:
        async with LifespanManager(small_app):
            c = httpx.AsyncClient(transport=httpx.ASGITransport(app=small_app), base_url="http://t")
            busy = [asyncio.create_task(c.get("/v1/_test/slow")) for _ in range(3)]
            await asyncio.sleep(0.05)  # the three slow requests hold the whole general budget

            refused = await c.get("/v1/_test/slow")
            webhook = await c.post("/v1/webhooks/_test/ping", content=b"{}")
            await asyncio.gather(*busy)

        assert refused.status_code == 503
        assert webhook.status_code == 200  # served from the webhooks' own budget
        assert webhook.json() == {"ok": "webhook"}


async def _status_through(limiter: InFlightLimitMiddleware, method: str, path: str) -> int:
    """The status a bodiless request gets through ``limiter`` (ASGI, no server)."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    await limiter(scope, receive, send)
    return statuses[0]


class TestNewWorkFirst:
    """Under overload new work (mutating /v1 requests) is refused before reads and webhooks."""

    async def test_beyond_the_new_work_budget_a_post_is_refused_and_a_read_still_served(self) -> None:
        release = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["method"] == "POST" and scope["path"] == "/v1/payments":
                await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        limiter = InFlightLimitMiddleware(app, limit=4, new_work_limit=1)

        def call(method: str, path: str) -> Coroutine[Any, Any, int]:
            return _status_through(limiter, method, path)

        first = asyncio.create_task(call("POST", "/v1/payments"))
        await asyncio.sleep(0.01)  # the first checkout holds the new-work budget

        second = await call("POST", "/v1/payments")
        read = await call("GET", "/v1/payments/abc")
        webhook = await call("POST", "/v1/webhooks/yookassa")
        release.set()
        assert await first == 200
        after = await call("POST", "/v1/payments")

        assert (second, read, webhook, after) == (503, 200, 200, 200)
        assert limiter.in_flight == limiter.new_work_in_flight == limiter.webhooks_in_flight == 0


class TestParking:
    """A long-poll's wait (``request.state.park_in_flight``) does not hold an in-flight slot."""

    async def test_a_parked_request_leaves_its_slot_to_others_and_takes_it_back(self) -> None:
        release, parked = asyncio.Event(), asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["path"] == "/v1/payments/waiting":
                async with scope["state"]["park_in_flight"]():
                    parked.set()
                    await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        limiter = InFlightLimitMiddleware(app, limit=1)

        def call(path: str) -> Coroutine[Any, Any, int]:
            return _status_through(limiter, "GET", path)

        waiting = asyncio.create_task(call("/v1/payments/waiting"))
        await asyncio.wait_for(parked.wait(), 5)
        assert (limiter.in_flight, limiter.parked) == (0, 1)
        assert await call("/v1/me") == 200  # the only slot is free while the long-poll waits
        release.set()
        assert await waiting == 200
        assert (limiter.in_flight, limiter.parked) == (0, 0)


class TestReadSession:
    async def test_a_read_only_endpoint_runs_its_statements_outside_any_transaction(
        self, settings: Settings, db: Resources
    ) -> None:
        application = create_app(settings, resources=db)
        probe = APIRouter()

        @probe.get("/v1/_test/read")
        async def read_route(session: ReadSession) -> dict[str, object]:
            one = (await session.execute(text("SELECT 1"))).scalar_one()
            driver = (await (await session.connection()).get_raw_connection()).driver_connection
            return {"one": one, "in_transaction": driver.is_in_transaction()}

        application.include_router(probe)
        async with LifespanManager(application):
            c = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t")
            r = await c.get("/v1/_test/read")

        assert r.json() == {"one": 1, "in_transaction": False}


class TestRetryAfter:
    """The Retry-After of a shed request grows with the overload and is spread out."""

    def make(self) -> InFlightLimitMiddleware:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            return None

        return InFlightLimitMiddleware(app, limit=1, retry_after_seconds=1, max_retry_after_seconds=30)

    def test_a_light_overload_asks_for_a_second_or_two(self) -> None:
        limiter = self.make()
        for _ in range(100):
            limiter.completed.add(1000.5)
        for _ in range(10):
            limiter.shed.add(1000.5)

        waits = {limiter.retry_after_for(1001.2) for _ in range(200)}

        assert waits <= {1, 2}

    def test_a_crowd_of_refused_clients_is_spread_over_many_seconds(self) -> None:
        limiter = self.make()
        for _ in range(30):
            limiter.completed.add(1000.5)  # 30 requests completed in the last second ...
        for _ in range(3000):
            limiter.shed.add(1000.5)  # ... and 3000 were refused: ~100 s of work, capped at 30

        waits = [limiter.retry_after_for(1001.2) for _ in range(500)]

        assert min(waits) >= 1
        assert max(waits) <= 30
        assert len(set(waits)) > 20  # spread over the whole window

    def test_between_the_bounds_the_waits_vary(self) -> None:
        limiter = self.make()
        for _ in range(10):
            limiter.completed.add(1000.5)
        for _ in range(99):
            limiter.shed.add(1000.5)  # with this request 100 refused: ~10 s of work at the current rate

        waits = [limiter.retry_after_for(1001.2) for _ in range(500)]

        assert min(waits) >= 1
        assert max(waits) == 10
        assert len(set(waits)) > 5  # spread, not one second for everybody


class TestSaturatedPool:
    """Every pooled connection busy is overload: 503 database_busy with Retry-After, and readiness
    stays 200 (its check has a connection of its own)."""

    @pytest.fixture
    async def tight(self, settings: Settings) -> AsyncIterator[tuple[FastAPI, asyncio.Event]]:
        own = settings.model_copy(deep=True)
        own.db.pool_size = 1
        own.db.max_overflow = 0
        own.db.pool_timeout_seconds = 0.2
        resources = Resources.build(own, application_name="test-tight-pool")
        release = asyncio.Event()
        application = create_app(own, resources=resources)
        hold = APIRouter()

        @hold.get("/v1/_test/hold")
        async def hold_route() -> dict[str, str]:
            async with resources.engine.connect() as conn:  # takes the only pooled connection
                await conn.execute(sqlalchemy.text("SELECT 1"))
                await release.wait()
            return {"ok": "held"}

        @hold.get("/v1/_test/query")
        async def query_route() -> dict[str, str]:
            async with resources.engine.connect() as conn:
                await conn.execute(sqlalchemy.text("SELECT 1"))
            return {"ok": "queried"}

        application.include_router(hold)
        try:
            yield application, release
        finally:
            release.set()
            await resources.close()

    async def test_a_request_that_gets_no_connection_is_a_503_with_retry_after(
        self, tight: tuple[FastAPI, asyncio.Event], tokens: Tokens
    ) -> None:
        application, release = tight
        async with LifespanManager(application):
            c = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t")
            holder = asyncio.create_task(c.get("/v1/_test/hold"))
            await asyncio.sleep(0.1)

            read = await c.get("/v1/_test/query")
            write = await c.post(  # the unit of work claims the Idempotency-Key first: no connection
                "/v1/_test/query", json={}, headers=tokens.headers(tokens.user("pool-1"), key="pool-key-1")
            )
            ready = await c.get("/health/ready")
            release.set()
            await holder

        for answer in (read, write):
            assert answer.status_code == 503, answer.text
            assert answer.json()["code"] == "database_busy"
            assert answer.headers["retry-after"] == "2"
        assert ready.status_code == 200, ready.text
