"""Process-wide resources (pools and clients), built once in the lifespan and closed on shutdown."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from payment_service.config import Settings
from payment_service.db import ChangeListener, CommitWaker, asyncpg_dsn, create_engine, create_sessionmaker
from payment_service.kit.clock import Clock, SystemClock
from payment_service.providers.payout_registry import PayoutRegistry
from payment_service.providers.registry import ProviderRegistry


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    http: httpx.AsyncClient
    clock: Clock = field(default_factory=SystemClock)
    provider_credentials: dict[str, dict[str, Any]] = field(default_factory=dict)
    providers: ProviderRegistry | None = None
    """Built from settings and the Vault credentials by :meth:`start_providers`."""
    payout_providers: PayoutRegistry | None = None
    """Payout adapters, built on first use by :meth:`start_payout_providers`."""
    read_sessionmaker: async_sessionmaker[AsyncSession] | None = None
    """Sessions in autocommit for read-only endpoints (``deps.ReadSession``): each statement is its
    own transaction, so a read costs its statement alone, not BEGIN + statement + COMMIT."""
    waker: CommitWaker | None = None
    """NOTIFYs after commit for what the process's transactions asked to wake (``db.wake_after_commit``)."""
    listener: ChangeListener | None = None
    """Long-polls' wake-ups (``GET /v1/payments/{id}?wait=``); connects on the first long-poll."""
    health_connection: Any = None
    """The readiness check's own asyncpg connection (outside the pool: a pool saturated by work is
    busy, not down). Opened by the first check, closed by :meth:`close`."""

    @classmethod
    def build(cls, settings: Settings, *, application_name: str = "payment-service") -> Resources:
        engine = create_engine(settings.db, application_name=application_name)
        waker = CommitWaker(asyncpg_dsn(settings.db.url.get_secret_value()))
        return cls(
            settings=settings,
            engine=engine,
            waker=waker,
            listener=ChangeListener(asyncpg_dsn(settings.db.url.get_secret_value())),
            sessionmaker=create_sessionmaker(engine, waker=waker),
            read_sessionmaker=create_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT")),
            redis=aioredis.Redis.from_url(
                settings.redis.url.get_secret_value(), socket_timeout=2.0, socket_connect_timeout=2.0
            ),
            http=httpx.AsyncClient(timeout=httpx.Timeout(5.0)),
        )

    def start_providers(self) -> ProviderRegistry:
        self.providers = ProviderRegistry.build(self.settings.providers, self.provider_credentials)
        return self.providers

    def start_payout_providers(self) -> PayoutRegistry:
        self.payout_providers = PayoutRegistry.build(self.settings.payouts.providers, self.provider_credentials)
        return self.payout_providers

    async def close(self) -> None:
        if self.providers is not None:
            await self.providers.aclose()
        if self.payout_providers is not None:
            await self.payout_providers.aclose()
        await self.http.aclose()
        await self.redis.aclose()
        if self.health_connection is not None:
            with contextlib.suppress(Exception):
                await self.health_connection.close(timeout=2)
            self.health_connection = None
        if self.waker is not None:
            await self.waker.close()
        if self.listener is not None:
            await self.listener.close()
        await self.engine.dispose()
