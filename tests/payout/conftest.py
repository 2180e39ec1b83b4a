"""Payouts against the real Postgres, OpenBao (Vault Transit) and the in-process payout emulators.

``payouts`` builds the app with its own settings (short HTTP timeouts, no retry backoff), both
payout emulators (YooKassa Payouts and the bank) wired in through ``httpx.ASGITransport``, their
webhooks delivered to the app itself (``/v1/webhooks/payouts/<provider>`` from 127.0.0.1), and
the worker's jobs run by the test (``env.submit()``, ``env.sync()``, ``env.schedule()``). The
emulators resolve payouts only when the test says so (``env.settle()``), so every step is
deterministic.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from emulators.bank_transfer.app import create_app as bank_app
from emulators.bank_transfer.state import BankConfig, BankState
from emulators.yookassa_payouts.app import create_app as yookassa_payouts_app
from emulators.yookassa_payouts.state import PayoutsConfig, PayoutsState
from fastapi import FastAPI
from sqlalchemy import text

from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.kit.clock import Clock
from payment_service.kit.money import Money
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.main import create_app
from payment_service.payout import tasks as payout_tasks
from payment_service.providers.payout_registry import PayoutRegistry
from payment_service.providers.ports import account_matches_bic
from payment_service.providers.registry import ProviderRegistry
from payment_service.resources import Resources
from payment_service.streamer_payout import tasks as streamer_tasks
from tests.conftest import Tokens
from tests.ledger.helpers import audit

BASE_URLS = {"yookassa_payouts": "http://yookassa-payouts.emu/v3", "bank_transfer": "http://bank.emu/v1"}
CREDENTIALS = {
    "yookassa_payouts": {"agent_id": "505050", "secret_key": "test_payout_secret"},
    "bank_transfer": {"api_key": "test_bank_key", "webhook_secret": "test_bank_webhook_secret"},
}
FAST: dict[str, Any] = {
    "connect_timeout_seconds": 0.5,
    "read_timeout_seconds": 1.0,
    "total_timeout_seconds": 0.4,
    "max_attempts": 2,
    "backoff_initial_seconds": 0.005,
    "backoff_max_seconds": 0.01,
}
BIC = "044525225"


def bank_account(seed: int) -> str:
    """A 20-digit account that passes the Bank of Russia control check against :data:`BIC`."""
    base = f"40817810{seed:011d}"
    return next(base + str(d) for d in range(10) if account_matches_bic(base + str(d), BIC))


class _LateApp:
    """ASGI app that forwards to the service app once it exists (the emulators need it first)."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class _Ctx:
    def __init__(self, session: Any, resources: Resources) -> None:
        self.session = session
        self.resources = resources
        self.settings = resources.settings
        self.now = resources.clock.now()


class MovableClock:
    """The app's and the jobs' clock: real time shifted by ``offset``."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class PayoutsEnv:
    app: FastAPI
    client: httpx.AsyncClient
    resources: Resources
    tokens: Tokens
    yookassa_app: FastAPI
    bank_app: FastAPI
    registry: PayoutRegistry
    clock: MovableClock

    # -- emulators --------------------------------------------------------------------------------
    @property
    def yookassa(self) -> PayoutsState:
        state: PayoutsState = self.yookassa_app.state.emulator
        return state

    @property
    def bank(self) -> BankState:
        state: BankState = self.bank_app.state.emulator
        return state

    async def flush(self) -> None:
        await self.yookassa.webhooks.flush()
        await self.bank.webhooks.flush()

    async def settle(self, outcome: str | None = None) -> None:
        """The providers resolve every pending payout (as planned, or with ``outcome``) and notify us."""
        for pid, rec in list(self.yookassa.payouts.items()):
            if rec.obj["status"] == "pending":
                self.yookassa.settle(
                    pid, outcome if outcome is None or outcome.startswith(("cancel:", "success")) else None
                )
        for tid, t in list(self.bank.transfers.items()):
            if t.status == "processing":
                self.bank.settle(
                    tid, outcome if outcome is None or outcome.startswith(("reject:", "success")) else None
                )
        await self.flush()

    async def card_token(self, card_number: str = "5555555555554444") -> dict[str, str]:
        return self.yookassa.mint_token(card_number)

    # -- worker steps -----------------------------------------------------------------------------
    async def _job(self, job: Any) -> Any:
        async with transaction(self.resources.sessionmaker) as session:
            return await job(_Ctx(session, self.resources))

    async def submit(self) -> Any:
        return await self._job(payout_tasks.submit_due_payouts)

    async def sync(self) -> Any:
        return await self._job(payout_tasks.sync_open_attempts)

    async def schedule(self) -> Any:
        return await self._job(streamer_tasks.create_scheduled_payouts)

    async def health(self) -> Any:
        return await self._job(payout_tasks.report_health)

    # -- HTTP helpers -----------------------------------------------------------------------------
    def user(self, user_id: str, key: str | None = None) -> dict[str, str]:
        return self.tokens.headers(self.tokens.user(user_id), key=key or uuid.uuid4().hex)

    def admin(self, key: str | None = None) -> dict[str, str]:
        return self.tokens.headers(self.tokens.admin(["admin:payouts"]), key=key or uuid.uuid4().hex)

    def social(self, scopes: list[str] | None = None, key: str | None = None) -> dict[str, str]:
        token = self.tokens.service("social", scopes or ["referral_payouts:write", "referral_payouts:read"])
        return self.tokens.headers(token, key=key or uuid.uuid4().hex)

    async def set_up_payee(
        self,
        user_id: str,
        details: dict[str, Any] | None = None,
        *,
        verify: bool = True,
        schedule: str | None = None,
        schedule_day: int | None = None,
        min_payout: str | None = None,
    ) -> dict[str, Any]:
        if details is None:
            token = await self.card_token()
            details = {"method": "bank_card", "card_token": token["payout_token"], "card_last4": token["last4"]}
        body: dict[str, Any] = {"details": details}
        if schedule is not None:
            body.update(schedule=schedule, schedule_day=schedule_day)
        if min_payout is not None:
            body["min_payout"] = {"value": min_payout, "currency": "RUB"}
        r = await self.client.put("/v1/payees/me", json=body, headers=self.user(user_id))
        assert r.status_code == 200, r.text
        if verify:
            r = await self.client.put(
                f"/v1/admin/payees/{user_id}/verification", json={"status": "verified"}, headers=self.admin()
            )
            assert r.status_code == 200, r.text
        return dict(r.json())

    # -- ledger -----------------------------------------------------------------------------------
    async def credit(
        self, account: accounts.AccountSpec, kopecks: int, *, reason: str = "donation", at: datetime | None = None
    ) -> None:
        """Money onto ``account`` the way its earning module books it (a donation: fee split included)."""
        ref = f"test:{uuid.uuid4()}"
        postings = [Posting(accounts.external_world(), account, Money(kopecks, "RUB"))]
        if reason == "donation":
            ref = f"donation:{uuid.uuid4()}"
            postings.append(Posting(accounts.external_world(), accounts.platform_fees(), Money(kopecks // 19, "RUB")))
        async with transaction(self.resources.sessionmaker) as session:
            await ledger_service.transfer(
                session,
                postings=postings,
                idempotency_key=f"test:{uuid.uuid4()}",
                reference=ref,
                reason=reason,
                now=at or self.clock.now(),
            )

    async def balance(self, account: accounts.AccountSpec) -> tuple[int, int]:
        """(posted, available) of ``account`` in minor units."""
        async with self.resources.sessionmaker() as session:
            b = await ledger_service.balance(session, account)
        return b.posted.amount_minor, b.available.amount_minor

    async def audit(self) -> list[str]:
        async with self.resources.sessionmaker() as session:
            return await audit(session)

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.resources.engine.begin() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.resources.engine.connect() as conn:
            return list(await conn.execute(text(sql), params))

    async def events(self, type_: str) -> list[Any]:
        """Outbox rows of ``type_`` (key, payload) in emission order."""
        return await self.rows("SELECT key, payload FROM outbox_events WHERE type = :t ORDER BY seq", t=type_)


@pytest.fixture
async def payouts(settings: Settings, db: Resources, tokens: Tokens) -> AsyncIterator[PayoutsEnv]:
    late = _LateApp()
    hook = httpx.ASGITransport(app=late, client=("127.0.0.1", 443))
    common: dict[str, Any] = {
        "hang_seconds": 2.0,
        "slow_seconds": 0.05,
        "webhook_retry_delays": [0.005, 0.01, 0.02],
        "settle_seconds": None,
    }
    yk = yookassa_payouts_app(
        PayoutsConfig(webhook_url="http://svc.test/v1/webhooks/payouts/yookassa_payouts", **common),
        webhook_transport=hook,
    )
    bank = bank_app(
        BankConfig(webhook_url="http://svc.test/v1/webhooks/payouts/bank_transfer", **common), webhook_transport=hook
    )

    own = settings.model_copy(deep=True)
    for name, base_url in BASE_URLS.items():
        conf = getattr(own.payouts.providers, name)
        for key, value in {"base_url": base_url, **FAST}.items():
            setattr(conf, key, value)
    own.payouts.providers.yookassa_payouts.webhook_ip_allowlist = ["127.0.0.1/32"]
    own.payouts.retry_backoff_seconds = [0.0]
    own.payouts.sync_backoff_seconds = [0.0]
    own.payouts.holding_days = 14
    registry = PayoutRegistry.build(
        own.payouts.providers,
        CREDENTIALS,
        transports={"yookassa_payouts": httpx.ASGITransport(app=yk), "bank_transfer": httpx.ASGITransport(app=bank)},
    )
    previous: tuple[Settings, PayoutRegistry | None, Clock, ProviderRegistry | None] = (
        db.settings,
        db.payout_providers,
        db.clock,
        db.providers,
    )
    clock = MovableClock()
    db.settings, db.payout_providers, db.clock = own, registry, clock
    db.providers = db.providers or ProviderRegistry({}, own.providers)  # wallet donations need no payment provider
    app = create_app(own, resources=db)
    late.app = app
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://svc.test") as client:
                env = PayoutsEnv(app, client, db, tokens, yk, bank, registry, clock)
                yield env
                await env.flush()
    finally:
        db.settings, db.payout_providers, db.clock, db.providers = previous
        await registry.aclose()
