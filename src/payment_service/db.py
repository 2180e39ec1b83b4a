"""Database engine, sessions, and the one place that commits.

One transaction per request and per job: the request's unit of work (``kit/unit_of_work``)
or the job wrapper commits on success and rolls back on error. Services only ``flush()``;
the single exception is :func:`checkpoint`, which commits before a call to a provider so that
no transaction stays open across the network and the attempt exists before we call out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from payment_service.config import DatabaseSettings


def sqlalchemy_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (as DATABASE_URL usually is) and use asyncpg."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def asyncpg_dsn(url: str) -> str:
    """The same URL for raw asyncpg connections (LISTEN/NOTIFY, benchmarks)."""
    return sqlalchemy_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


def create_engine(settings: DatabaseSettings, *, application_name: str = "payment-service") -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(settings.url.get_secret_value()),
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        pool_pre_ping=False,
        echo=settings.echo,
        connect_args={
            "server_settings": {
                "application_name": application_name,
                "statement_timeout": str(settings.statement_timeout_ms),
            },
        },
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work for jobs and scripts: commit on success, roll back on any error."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def checkpoint(session: AsyncSession) -> None:
    """Commit what the request has done so far, before calling a provider.

    The only commit a service may make (see module docstring). After it, the session opens a
    new transaction on first use, in which the provider's answer is applied.
    """
    await session.commit()
