"""Donations against the real Postgres, Redis and the in-process provider emulators.

* ``payments`` (re-exported from ``tests/payment``) wires the app to the emulators and runs the
  worker's steps; ``donations`` adds helpers and waits, at the end of each test, for the alert
  publications still in flight (they run after COMMIT, in the background).
* Wallets are funded straight through the ledger (``external:world`` → ``user:<id>:wallet``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from payment_service.db import transaction
from payment_service.donation import alerts
from payment_service.kit.money import Money
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.resources import Resources
from tests.outbox.helpers import kafka_settings
from tests.payment.conftest import PaymentsEnv, payments

__all__ = ["kafka_settings", "payments"]

RETURN = "https://stream.example/after-payment"


async def fund_wallet(resources: Resources, user: str, kopecks: int) -> None:
    async with transaction(resources.sessionmaker) as session:
        await ledger_service.transfer(
            session,
            postings=[Posting(accounts.external_world(), accounts.user_wallet(user), Money(kopecks, "RUB"))],
            idempotency_key=f"test-fund:{uuid.uuid4()}",
            reference=f"test:{user}",
            reason="wallet_top_up",
            now=datetime.now(UTC),
        )


async def drain_publications(resources: Resources) -> None:
    publisher = alerts.publisher_for(resources.engine.sync_engine)
    if publisher is not None:
        await publisher.drain()


@dataclass
class DonationsEnv:
    env: PaymentsEnv

    @property
    def client(self) -> httpx.AsyncClient:
        return self.env.client

    @property
    def resources(self) -> Resources:
        return self.env.resources

    def headers(self, user: str, key: str | None = None) -> dict[str, str]:
        return self.env.tokens.headers(self.env.tokens.user(user), key=key or uuid.uuid4().hex)

    async def donate(
        self,
        *,
        donor: str = "viewer-1",
        streamer: str = "streamer-1",
        amount: str = "500.00",
        method: str = "bank_card",
        currency: str = "RUB",
        key: str | None = None,
        **body: Any,
    ) -> httpx.Response:
        payload: dict[str, Any] = {
            "streamer_id": streamer,
            "amount": {"value": amount, "currency": currency},
            "method": method,
            "message": "Привет со стрима!",
            "display_name": "Зритель",
        }
        if method != "wallet":
            payload["return_url"] = RETURN
        payload.update(body)
        return await self.client.post("/v1/donations", json=payload, headers=self.headers(donor, key))

    async def scalar(self, sql: str, **params: Any) -> Any:
        return await self.env.scalar(sql, **params)

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.resources.engine.connect() as conn:
            return list(await conn.execute(text(sql), params))

    async def balance(self, code: str) -> int:
        return await self.env.balance(code)

    async def drain(self) -> None:
        await drain_publications(self.resources)


@pytest.fixture
async def donations(payments: PaymentsEnv) -> AsyncIterator[DonationsEnv]:
    env = DonationsEnv(payments)
    try:
        yield env
    finally:
        await env.drain()
