"""Shared helpers for the outbox, inbox and worker tests (real Postgres and Tansu)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.inbox.schemas import IncomingEvent
from payment_service.outbox import envelope
from payment_service.outbox import kafka as outbox_kafka
from payment_service.outbox.events import DiagnosticPing
from payment_service.outbox.service import emit
from payment_service.resources import Resources


def isolated_settings(settings: Settings, **outbox: Any) -> Settings:
    """A copy of ``settings`` with its own topic prefix and consumer group, and short timeouts."""
    s = settings.model_copy(deep=True)
    tag = uuid.uuid4().hex[:8]
    s.kafka.topic_prefix = f"t{tag}."
    s.kafka.consumer_group = f"g{tag}"
    s.kafka.request_timeout_ms = 2000
    s.outbox.publish_timeout_seconds = 4.0
    s.outbox.poll_interval_seconds = 1.0
    s.consumer.max_attempts = 3
    s.consumer.backoff_initial_seconds = 0.05
    s.consumer.backoff_max_seconds = 0.2
    for name, value in outbox.items():
        setattr(s.outbox, name, value)
    return s


@pytest.fixture
def kafka_settings(settings: Settings) -> Settings:
    return isolated_settings(settings)


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool], *, timeout: float, what: str, interval: float = 0.02
) -> float:
    """Poll ``predicate`` until true; returns the seconds it took. Fails the test on timeout."""
    started = time.monotonic()
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


@asynccontextmanager
async def running(loop: Callable[[asyncio.Event], Awaitable[None]]) -> AsyncIterator[asyncio.Event]:
    """Run a ``loop(stop)`` in the background for the block; stop it and wait at the end."""
    stop = asyncio.Event()
    task = asyncio.create_task(loop(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def emit_pings(resources: Resources, key: str, numbers: range | list[int], *, per_tx: int = 1) -> list[uuid.UUID]:
    """Emit DiagnosticPing(n) for ``numbers`` under ``key``, ``per_tx`` events per transaction."""
    ids: list[uuid.UUID] = []
    batch = list(numbers)
    for start in range(0, len(batch), per_tx):
        async with transaction(resources.sessionmaker) as session:
            for n in batch[start : start + per_tx]:
                ids.append(await emit(session, DiagnosticPing(message=f"{key}:{n}", n=n), key=key))
    return ids


async def outbox_counts(resources: Resources) -> tuple[int, int]:
    """(published, pending) outbox rows."""
    async with resources.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE published_at IS NOT NULL) AS published, "
                    "count(*) FILTER (WHERE published_at IS NULL) AS pending FROM outbox_events"
                )
            )
        ).one()
    return int(row.published), int(row.pending)


async def read_topic(
    settings: Settings, topic: str, *, count: int, timeout: float = 20.0, extra_wait: float = 0.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` (logical) from the beginning with a group-less consumer until ``count`` messages
    arrived (then ``extra_wait`` more seconds, to catch duplicates)."""
    consumer = AIOKafkaConsumer(
        outbox_kafka.physical(settings.kafka, topic),
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        if extra_wait:
            end = time.monotonic() + extra_wait
            while time.monotonic() < end:
                for batch in (await consumer.getmany(timeout_ms=100)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


def binary_event(
    *, event_id: str | None = None, source: str = "social-service", type: str = "social.test", data: Any = None
) -> tuple[list[tuple[str, bytes]], bytes]:
    """Headers and value of a binary-mode CloudEvent as another service would send it."""
    headers = envelope.binary_headers(
        id=event_id or str(uuid.uuid4()), source=source, type=type, time=datetime.now(UTC), dataversion=1
    )
    return headers, orjson.dumps(data if data is not None else {})


async def produce(
    settings: Settings, topic: str, messages: list[tuple[str | None, list[tuple[str, bytes]], bytes]]
) -> None:
    """Publish raw (key, headers, value) messages to a logical topic."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, headers, value in messages:
            await producer.send_and_wait(
                outbox_kafka.physical(settings.kafka, topic),
                value=value,
                key=key.encode() if key is not None else None,
                headers=headers,
            )
    finally:
        await producer.stop()


# ── a handler with a visible effect ───────────────────────────────────────────────────────────

EFFECTS_DDL = (
    "CREATE SCHEMA IF NOT EXISTS outbox_tests",
    "CREATE TABLE IF NOT EXISTS outbox_tests.effects ("
    " event_id text NOT NULL, source text NOT NULL, type text NOT NULL, key text, data jsonb,"
    " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())",
)


@pytest.fixture
async def effects(db: Resources) -> AsyncIterator[Resources]:
    """A scratch table (outside ``public``) where test handlers record their effect."""
    async with db.engine.begin() as conn:
        for ddl in EFFECTS_DDL:
            await conn.execute(text(ddl))
        await conn.execute(text("TRUNCATE outbox_tests.effects"))
    yield db
    async with db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE outbox_tests.effects"))


async def record_effect(session: AsyncSession, event: IncomingEvent) -> None:
    """A handler whose effect is one row per run (no unique constraint: a double effect shows)."""
    await session.execute(
        text(
            "INSERT INTO outbox_tests.effects (event_id, source, type, key, data) "
            "VALUES (:id, :source, :type, :key, CAST(:data AS jsonb))"
        ),
        {
            "id": event.id,
            "source": event.source,
            "type": event.type,
            "key": event.key,
            "data": orjson.dumps(event.data).decode(),
        },
    )


async def effect_rows(resources: Resources) -> list[Any]:
    async with resources.engine.connect() as conn:
        return list(
            await conn.execute(
                text("SELECT event_id, source, type, key, data FROM outbox_tests.effects ORDER BY applied_at")
            )
        )
