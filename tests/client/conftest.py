"""Fixtures for the client tests: ``PaymentServiceClient`` instances on the real app in process.

* ``clients.make(token)`` — a client on the app of ``payments`` (from ``tests/payment``: real
  Postgres/Redis, the provider emulators in process) through ``httpx.ASGITransport``, with a
  recording ``sleep`` so retries never wait for real;
* ``kafka_settings`` (from ``tests/outbox``) — an isolated topic prefix on the real Tansu broker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from payment_service.client import PaymentServiceClient, RetryPolicy
from payment_service.resources import Resources
from tests.conftest import Tokens
from tests.donation.conftest import drain_publications
from tests.outbox.helpers import kafka_settings
from tests.payment.conftest import PaymentsEnv, payments

__all__ = ["kafka_settings", "payments"]

SOCIAL_SCOPES = ["referral_payouts:write", "referral_payouts:read"]
STREAMING_SCOPES = ["donations:write", "donations:read", "payments:write", "payments:read"]


@dataclass
class Sleeps:
    """Stands in for ``asyncio.sleep`` in the client: records the delays, runs an optional hook."""

    delays: list[float] = field(default_factory=list)
    hook: Callable[[], Awaitable[None]] | None = None

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.hook is not None:
            await self.hook()


@dataclass
class Clients:
    app: Any
    tokens: Tokens
    resources: Resources
    sleeps: Sleeps = field(default_factory=Sleeps)

    def make(self, token: str, *, app: Any = None, retry: RetryPolicy | None = None) -> PaymentServiceClient:
        return PaymentServiceClient(
            "http://payments.test",
            token=lambda: token,
            transport=httpx.ASGITransport(app=app or self.app),
            sleep=self.sleeps,
            retry=retry,
        )

    def social(self) -> PaymentServiceClient:
        return self.make(self.tokens.service("social", SOCIAL_SCOPES))

    def streaming(self) -> PaymentServiceClient:
        return self.make(self.tokens.service("streaming", STREAMING_SCOPES))

    def user(self, user_id: str) -> PaymentServiceClient:
        return self.make(self.tokens.user(user_id))


@pytest.fixture
async def clients(payments: PaymentsEnv) -> AsyncIterator[Clients]:
    yield Clients(payments.app, payments.tokens, payments.resources)
    await drain_publications(payments.resources)  # donation alerts are published after COMMIT, in the background
