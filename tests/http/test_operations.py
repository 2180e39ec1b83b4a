"""Health probes, metrics and overload protection."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI

from payment_service.config import Settings
from payment_service.devstack import OpenBao, Tansu
from payment_service.main import create_app
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
        assert all(r.headers["retry-after"] == "1" and r.json()["code"] == "overloaded" for r in shed)
        assert health.status_code == 200
