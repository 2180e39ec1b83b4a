"""Refunds against the real database, the in-process provider emulators and the playtime emulator.

Same wiring as ``tests/payment/conftest.py`` (emulator webhooks come back to the app through an
ASGI transport; the test runs the worker's steps), plus:

* ``env.faults`` — a transport in front of each provider emulator that can lose the answer of
  the next refund calls (the provider did the work, we never hear) or lose the request itself
  (the provider never saw it): timeouts without sleeping;
* ``env.playtime`` — the platform's playtime API emulator, wired to the app's playtime port;
* ``env.paid(...)`` — a succeeded payment, paid through the emulator like a customer would;
* ``env.audit()`` — the ledger's global invariants (checked at the end of every scenario).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from emulators._common.state import BaseState, EmulatorConfig
from emulators.playtime.app import PlaytimeState
from emulators.playtime.app import create_app as playtime_app
from fastapi import FastAPI
from sqlalchemy import text

from payment_service.config import PlaytimeSettings, Settings
from payment_service.db import transaction
from payment_service.jobs import JobContext
from payment_service.main import create_app
from payment_service.playtime.client import HttpPlaytimeClient
from payment_service.provider_event import service as provider_event_service
from payment_service.providers.registry import ProviderRegistry
from payment_service.refund import tasks as refund_tasks
from payment_service.refund.endpoints import get_playtime
from payment_service.resources import Resources
from tests.conftest import Tokens
from tests.ledger.helpers import audit
from tests.providers.harness import BASE_URLS, CREDENTIALS, FAST

PROVIDERS = ("yookassa", "tbank", "sber", "mobile")
REFUND_CALL = {"yookassa": "/refunds", "tbank": "/Cancel", "sber": "/refund.do", "mobile": "/refunds"}
RETURN = "https://store.example/return"


@dataclass
class _Fault:
    provider: str
    count: int
    lose_request: bool


@dataclass
class Faults:
    """Lose refund calls on the way to (or back from) a provider emulator."""

    pending: list[_Fault] = field(default_factory=list)

    def lose_answer(self, provider: str, count: int = 1) -> None:
        """The provider refunds, but its answer never arrives (a read timeout)."""
        self.pending.append(_Fault(provider, count, lose_request=False))

    def lose_request(self, provider: str, count: int = 1) -> None:
        """The request never reaches the provider, and the caller cannot tell (a read timeout)."""
        self.pending.append(_Fault(provider, count, lose_request=True))

    def take(self, provider: str, request: httpx.Request) -> _Fault | None:
        if request.method != "POST" or not request.url.path.endswith(REFUND_CALL[provider]):
            return None
        for fault in self.pending:
            if fault.provider == provider and fault.count > 0:
                fault.count -= 1
                return fault
        return None


class FaultyTransport(httpx.AsyncBaseTransport):
    def __init__(self, provider: str, inner: httpx.AsyncBaseTransport, faults: Faults) -> None:
        self.provider, self.inner, self.faults = provider, inner, faults

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fault = self.faults.take(self.provider, request)
        if fault is not None and fault.lose_request:
            raise httpx.ReadTimeout("request lost (test fault)", request=request)
        response = await self.inner.handle_async_request(request)
        if fault is not None:
            await response.aread()
            raise httpx.ReadTimeout("answer lost (test fault)", request=request)
        return response


class _LateApp:
    """ASGI app that forwards to the service app once it exists (emulators need it first)."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@dataclass
class WorkerSteps:
    resources: Resources

    async def apply_webhooks(self) -> int:
        async with transaction(self.resources.sessionmaker) as session:
            return await provider_event_service.process_received(session, now=self.resources.clock.now())

    async def sync_refunds(self) -> Any:
        async with transaction(self.resources.sessionmaker) as session:
            ctx = JobContext(
                session=session,
                now=self.resources.clock.now(),
                settings=self.resources.settings,
                resources=self.resources,
            )
            return await refund_tasks.sync_open_refunds(ctx)


@dataclass
class RefundsEnv:
    app: FastAPI
    client: httpx.AsyncClient
    apps: dict[str, Any]
    worker: WorkerSteps
    resources: Resources
    tokens: Tokens
    faults: Faults
    playtime: PlaytimeState

    def emulator(self, provider: str) -> BaseState:
        state: BaseState = self.apps[provider].state.emulator
        return state

    async def flush(self) -> None:
        for app in self.apps.values():
            await app.state.emulator.webhooks.flush()

    def user(self, user_id: str, key: str | None = None) -> dict[str, str]:
        return self.tokens.headers(self.tokens.user(user_id), key=key or uuid.uuid4().hex)

    def admin(self, key: str | None = None, scopes: list[str] | None = None) -> dict[str, str]:
        return self.tokens.headers(self.tokens.admin(scopes), key=key or uuid.uuid4().hex)

    async def paid(
        self,
        provider: str = "yookassa",
        *,
        user: str = "u1",
        amount: str = "499.00",
        game_id: str | None = "game-1",
        **body: Any,
    ) -> dict[str, Any]:
        """A succeeded one-stage payment, paid through the provider emulator."""
        payload: dict[str, Any] = {
            "amount": {"value": amount, "currency": "RUB"},
            "method": "mobile" if provider == "mobile" else "bank_card",
            "description": "Game key",
            "return_url": RETURN,
            "provider": provider,
            "metadata": {"game_id": game_id} if game_id else {},
        }
        if provider == "mobile":
            payload["payer_phone"] = "79161234567"
        payload.update(body)
        r = await self.client.post("/v1/payments", json=payload, headers=self.user(user))
        assert r.status_code == 201, r.text
        payment = r.json()
        ppid = await self.scalar(
            "SELECT provider_payment_id FROM payment_attempts WHERE payment_id = :p ORDER BY number DESC LIMIT 1",
            p=uuid.UUID(payment["id"]),
        )
        await self.emulator(provider).complete_action(str(ppid), card_number=None, outcome=None)
        await self.flush()
        await self.worker.apply_webhooks()
        r = await self.client.get(f"/v1/payments/{payment['id']}", headers=self.user(user))
        assert r.json()["status"] == "succeeded", r.text
        return dict(r.json())

    async def refund(
        self,
        payment_id: str,
        *,
        user: str = "u1",
        amount: str | None = None,
        destination: str | None = None,
        headers: dict[str, str] | None = None,
        reason: str = "Игра не запускается",
    ) -> httpx.Response:
        body: dict[str, Any] = {"payment_id": payment_id, "reason": reason}
        if amount is not None:
            body["amount"] = {"value": amount, "currency": "RUB"}
        if destination is not None:
            body["destination"] = destination
        return await self.client.post("/v1/refunds", json=body, headers=headers or self.user(user))

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.resources.engine.begin() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.resources.engine.begin() as conn:
            return list((await conn.execute(text(sql), params)).all())

    async def balance(self, code: str, currency: str = "RUB") -> int:
        """Signed sum of posted entries of an account (credit positive), straight from the entries."""
        value = await self.scalar(
            "SELECT COALESCE(sum(e.amount), 0) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
            "WHERE a.code = :code AND a.currency = :cur AND e.phase = 'posted'",
            code=code,
            cur=currency,
        )
        return int(value)

    async def events(self, key: str) -> list[str]:
        return [r[0] for r in await self.rows("SELECT type FROM outbox_events WHERE key = :k ORDER BY seq", k=key)]

    async def payloads(self, event_type: str) -> list[dict[str, Any]]:
        import orjson

        rows = await self.rows("SELECT payload FROM outbox_events WHERE type = :t ORDER BY seq", t=event_type)
        return [r[0] if isinstance(r[0], dict) else orjson.loads(r[0]) for r in rows]

    async def make_due(self) -> None:
        """Let the status sync look at every open refund now (instead of waiting for its back-off)."""
        await self.scalar(
            "UPDATE refunds SET next_sync_at = now() - interval '1 second', "
            "last_called_at = last_called_at - interval '1 hour', created_at = created_at - interval '1 hour' "
            "WHERE status IN ('processing', 'unknown') RETURNING 1"
        )

    async def audit(self) -> list[str]:
        async with self.resources.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            return await audit(raw.driver_connection)  # type: ignore[arg-type]

    def provider_refunds(self, provider: str) -> int:
        """What the emulated provider really refunded (its truth ledger)."""
        return sum(e.amount_minor for e in self.emulator(provider).ledger if e.kind == "refund")


@pytest.fixture
async def refunds(settings: Settings, db: Resources, tokens: Tokens) -> AsyncIterator[RefundsEnv]:
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
        conf.max_attempts = 1  # a lost answer stays lost (no in-call retry)
    own.providers.yookassa.webhook_ip_allowlist = ["127.0.0.1/32"]
    faults = Faults()
    registry = ProviderRegistry.build(
        own.providers,
        CREDENTIALS,
        transports={n: FaultyTransport(n, httpx.ASGITransport(app=apps[n]), faults) for n in PROVIDERS},
    )
    playtime_state = PlaytimeState(token="platform-token")
    playtime_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=playtime_app(playtime_state)))
    playtime = HttpPlaytimeClient(
        PlaytimeSettings(base_url="http://platform.test", token="platform-token"),  # type: ignore[arg-type]
        http=playtime_http,
    )
    previous_providers = db.providers
    db.providers = registry
    app = create_app(own, resources=db)
    app.dependency_overrides[get_playtime] = lambda: playtime
    late.app = app
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://svc.test") as client:
                yield RefundsEnv(app, client, apps, WorkerSteps(db), db, tokens, faults, playtime_state)
    finally:
        db.providers = previous_providers
        await registry.aclose()
        await playtime_http.aclose()
