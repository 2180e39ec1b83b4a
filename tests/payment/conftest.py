"""Payments against the real database and the in-process provider emulators.

The emulators' webhooks are delivered to the app itself (``/v1/webhooks/<provider>``) through an
ASGI transport, so a test sees the same path a real notification takes; the worker's jobs are
run by the test (``worker.apply_webhooks()``, ``worker.sync()``, ``worker.expire()``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from emulators._common.state import BaseState, EmulatorConfig
from fastapi import FastAPI
from sqlalchemy import text

from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.jobs import JobContext
from payment_service.main import create_app
from payment_service.payment import tasks as payment_tasks
from payment_service.provider_event import service as provider_event_service
from payment_service.providers.registry import ProviderRegistry
from payment_service.resources import Resources
from tests.conftest import Tokens
from tests.providers.harness import BASE_URLS, CREDENTIALS, FAST

PROVIDERS = ("yookassa", "tbank", "sber", "mobile")


class _LateApp:
    """ASGI app that forwards to the service app once it exists (emulators need it first)."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@dataclass
class Emulators:
    apps: dict[str, Any]

    def state(self, provider: str) -> BaseState:
        state: BaseState = self.apps[provider].state.emulator
        return state

    async def flush(self) -> None:
        for app in self.apps.values():
            await app.state.emulator.webhooks.flush()


@dataclass
class WorkerSteps:
    resources: Resources

    async def apply_webhooks(self) -> int:
        async with transaction(self.resources.sessionmaker) as session:
            return await provider_event_service.process_received(session, now=self.resources.clock.now())

    async def _job(self, job: Any) -> Any:
        async with transaction(self.resources.sessionmaker) as session:
            ctx = JobContext(
                session=session,
                now=self.resources.clock.now(),
                settings=self.resources.settings,
                resources=self.resources,
            )
            return await job(ctx)

    async def sync(self) -> Any:
        return await self._job(payment_tasks.sync_open_attempts)

    async def expire(self) -> Any:
        return await self._job(payment_tasks.expire_payments)


@dataclass
class PaymentsEnv:
    app: FastAPI
    client: httpx.AsyncClient
    emulators: Emulators
    worker: WorkerSteps
    resources: Resources
    tokens: Tokens

    async def pay(self, provider: str, provider_payment_id: str, **kw: Any) -> None:
        await self.emulators.state(provider).complete_action(provider_payment_id, **kw)
        await self.emulators.flush()

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.resources.engine.begin() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def balance(self, code: str, currency: str = "RUB") -> int:
        """Signed sum of posted entries of an account (credit positive), straight from the entries."""
        value = await self.scalar(
            "SELECT COALESCE(sum(e.amount), 0) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
            "WHERE a.code = :code AND a.currency = :cur AND e.phase = 'posted'",
            code=code,
            cur=currency,
        )
        return int(value)


@pytest.fixture
async def payments(settings: Settings, db: Resources, tokens: Tokens) -> AsyncIterator[PaymentsEnv]:
    from emulators.mobile.app import create_app as mobile_app
    from emulators.sber.app import create_app as sber_app
    from emulators.tbank.app import create_app as tbank_app
    from emulators.yookassa.app import create_app as yookassa_app

    late = _LateApp()
    factories = {"yookassa": yookassa_app, "tbank": tbank_app, "sber": sber_app, "mobile": mobile_app}
    apps = {}
    for name in PROVIDERS:
        config = EmulatorConfig(
            public_base_url="http://" + BASE_URLS[name].split("/")[2],
            webhook_url=f"http://svc.test/v1/webhooks/{name}",
            hang_seconds=2.0,
            slow_seconds=0.05,
            webhook_retry_delays=[0.005, 0.01, 0.02],
        )
        apps[name] = factories[name](config, webhook_transport=httpx.ASGITransport(app=late, client=("127.0.0.1", 443)))

    own = settings.model_copy(deep=True)
    for name in PROVIDERS:
        conf = getattr(own.providers, name)
        for key, value in {"base_url": BASE_URLS[name], **FAST}.items():
            setattr(conf, key, value)
    own.providers.yookassa.webhook_ip_allowlist = ["127.0.0.1/32"]
    registry = ProviderRegistry.build(
        own.providers, CREDENTIALS, transports={n: httpx.ASGITransport(app=apps[n]) for n in PROVIDERS}
    )
    previous_settings, previous_providers = db.settings, db.providers
    db.providers = registry
    app = create_app(own, resources=db)
    late.app = app
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://svc.test") as client:
                yield PaymentsEnv(app, client, Emulators(apps), WorkerSteps(db), db, tokens)
    finally:
        db.settings, db.providers = previous_settings, previous_providers
        await registry.aclose()
