"""The catalog's change events invalidate the cache: through the inbox, and through Kafka (Tansu)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from payment_service import worker
from payment_service.catalog import tasks as catalog_tasks
from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.inbox import service as inbox_service
from payment_service.inbox.consumer import EventConsumer
from payment_service.inbox.schemas import IncomingEvent
from payment_service.inbox.service import PermanentError
from payment_service.resources import Resources
from tests.outbox.helpers import binary_event, kafka_settings, produce, running, wait_until

__all__ = ["kafka_settings"]

ITEM_KEY = "catalog:v1:item:game-1001"


def change(data: Any, *, source: str = "game-catalog", event_id: str | None = None) -> IncomingEvent:
    return IncomingEvent(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type="catalog.price_changed",
        data=data,
        topic=catalog_tasks.TOPIC,
        partition=0,
        offset=0,
        key="game-1001",
    )


@pytest.fixture
def bound(db: Resources) -> Iterator[Resources]:
    catalog_tasks.bind_redis(db.redis)
    yield db
    catalog_tasks.bind_redis(None)


async def cache_something(db: Resources) -> None:
    await db.redis.hset(ITEM_KEY, "RU", "{}")
    await db.redis.hset("catalog:v1:item:game-2002", "RU", "{}")


class TestHandler:
    async def test_forgets_the_item_in_every_region_once_per_event(self, bound: Resources) -> None:
        await cache_something(bound)
        await bound.redis.hset(ITEM_KEY, "KZ", "{}")
        event = change({"item_id": "game-1001", "region": "RU"})

        async with transaction(bound.sessionmaker) as session:
            assert await inbox_service.process(session, event, catalog_tasks.handle_catalog_change)
        async with transaction(bound.sessionmaker) as session:
            assert not await inbox_service.process(session, event, catalog_tasks.handle_catalog_change)

        assert not await bound.redis.exists(ITEM_KEY)
        assert await bound.redis.exists("catalog:v1:item:game-2002")
        assert await bound.redis.get("catalog:v1:gen:game-1001") == b"1"

    async def test_several_items_at_once(self, bound: Resources) -> None:
        await cache_something(bound)

        async with transaction(bound.sessionmaker) as session:
            await catalog_tasks.handle_catalog_change(session, change({"item_ids": ["game-1001", "game-2002"]}))

        assert not await bound.redis.exists(ITEM_KEY, "catalog:v1:item:game-2002")

    @pytest.mark.parametrize(
        ("data", "source"),
        [({"item_id": "game-1001"}, "social-service"), ({}, "game-catalog"), ({"item_ids": "x"}, "game-catalog")],
    )
    async def test_foreign_or_malformed_events_go_to_the_dead_letters(
        self, bound: Resources, data: Any, source: str
    ) -> None:
        async with transaction(bound.sessionmaker) as session:
            with pytest.raises(PermanentError):
                await catalog_tasks.handle_catalog_change(session, change(data, source=source))


class TestThroughKafka:
    async def test_the_worker_consumes_the_catalog_topic_and_invalidates(
        self, bound: Resources, kafka_settings: Settings
    ) -> None:
        await cache_something(bound)
        event_id = str(uuid.uuid4())
        headers, value = binary_event(
            event_id=event_id, source="game-catalog", type="catalog.discount_changed", data={"item_id": "game-1001"}
        )
        await produce(kafka_settings, catalog_tasks.TOPIC, [("game-1001", headers, value)])
        consumer = EventConsumer(kafka_settings, bound.sessionmaker, dict(worker.CONSUMERS))

        async with running(consumer.run):
            await wait_until(lambda: consumer.stats.processed >= 1, timeout=30, what="the change consumed")

        # (The Redis db is shared with other test sessions that flush it; the inbox row is ours alone.)
        async with bound.engine.connect() as conn:
            seen = (
                await conn.execute(
                    text("SELECT type FROM inbox_events WHERE source = 'game-catalog' AND event_id = :e"),
                    {"e": event_id},
                )
            ).scalar()
        assert seen == "catalog.discount_changed"
        assert not await bound.redis.exists(ITEM_KEY)
