"""The consumer framework against real Postgres and Tansu: inbox, retries, dead letters."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.inbox import service as inbox_service
from payment_service.inbox.consumer import EventConsumer, dispatch_by_type
from payment_service.inbox.schemas import IncomingEvent
from payment_service.inbox.service import PermanentError
from payment_service.models.inbox import DeadLetter, InboxEvent
from payment_service.models.outbox import OutboxEvent
from payment_service.outbox import envelope
from payment_service.outbox.relay import OutboxRelay
from payment_service.resources import Resources
from tests.outbox.helpers import (
    binary_event,
    effect_rows,
    produce,
    read_topic,
    record_effect,
    running,
    wait_until,
)

TOPIC = "test.incoming"


def incoming(event_id: str = "e-1", *, data: Any = None) -> IncomingEvent:
    return IncomingEvent(
        id=event_id,
        source="social-service",
        type="social.test",
        data=data or {},
        topic=TOPIC,
        partition=0,
        offset=0,
        key="k",
    )


class TestProcess:
    async def test_a_second_delivery_of_the_same_event_has_no_effect(self, effects: Resources) -> None:
        for _ in range(2):
            async with transaction(effects.sessionmaker) as session:
                ran = await inbox_service.process(session, incoming(), record_effect)

        assert ran is False
        assert len(await effect_rows(effects)) == 1

    async def test_a_failed_handler_leaves_no_inbox_row_so_a_retry_runs_it(self, effects: Resources) -> None:
        async def broken(session: AsyncSession, event: IncomingEvent) -> None:
            await record_effect(session, event)
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            async with transaction(effects.sessionmaker) as session:
                await inbox_service.process(session, incoming(), broken)
        async with transaction(effects.sessionmaker) as session:
            ran = await inbox_service.process(session, incoming(), record_effect)

        assert ran is True
        assert len(await effect_rows(effects)) == 1  # the failed attempt's effect was rolled back

    async def test_the_same_id_from_another_source_is_another_event(self, effects: Resources) -> None:
        other = IncomingEvent(
            id="e-1", source="streaming-service", type="t", data={}, topic=TOPIC, partition=0, offset=0, key=None
        )
        async with transaction(effects.sessionmaker) as session:
            assert await inbox_service.process(session, incoming(), record_effect)
            assert await inbox_service.process(session, other, record_effect)

        assert len(await effect_rows(effects)) == 2


class TestConsumer:
    async def test_dedupes_retries_and_dead_letters(self, effects: Resources, kafka_settings: Settings) -> None:
        attempts: Counter[str] = Counter()

        async def handler(session: AsyncSession, event: IncomingEvent) -> None:
            attempts[event.id] += 1
            behaviour = event.data["behaviour"]
            if behaviour == "fail" or (behaviour == "flaky" and attempts[event.id] == 1):
                raise RuntimeError(f"handler failed on attempt {attempts[event.id]}")
            if behaviour == "permanent":
                raise PermanentError("payload can never be handled")
            await record_effect(session, event)

        ids = {name: str(uuid.uuid4()) for name in ("ok", "flaky", "fail", "permanent")}
        messages = [
            ("k1", *binary_event(event_id=ids["ok"], data={"behaviour": "ok"})),
            ("k1", *binary_event(event_id=ids["ok"], data={"behaviour": "ok"})),  # redelivered
            ("k2", *binary_event(event_id=ids["flaky"], data={"behaviour": "flaky"})),
            ("k3", *binary_event(event_id=ids["fail"], data={"behaviour": "fail"})),
            ("k4", *binary_event(event_id=ids["permanent"], data={"behaviour": "permanent"})),
            ("k5", [("content-type", b"text/plain")], b"not a cloud event"),
        ]
        await produce(kafka_settings, TOPIC, messages)
        consumer = EventConsumer(kafka_settings, effects.sessionmaker, {TOPIC: handler})
        relay = OutboxRelay(kafka_settings)

        async with running(relay.run), running(consumer.run):
            await wait_until(
                lambda: consumer.stats.processed + consumer.stats.duplicates + consumer.stats.dead_lettered >= 6,
                timeout=30,
                what="all six messages handled",
            )
            await wait_until(lambda: relay.stats.published >= 3, timeout=20, what="DLQ copies published")
            dlq = await read_topic(kafka_settings, TOPIC + ".dlq", count=3, extra_wait=0.3)

        assert (consumer.stats.processed, consumer.stats.duplicates, consumer.stats.dead_lettered) == (2, 1, 3)
        assert consumer.stats.retries == 1 + 2  # flaky once; fail until max_attempts (3)
        assert sorted(r.event_id for r in await effect_rows(effects)) == sorted([ids["ok"], ids["flaky"]])
        async with effects.sessionmaker() as session:
            inbox = set((await session.execute(select(InboxEvent.event_id))).scalars())
            letters = {d.event_id: d for d in (await session.execute(select(DeadLetter))).scalars()}
        assert inbox == {ids["ok"], ids["flaky"]}

        failed = letters[ids["fail"]]
        assert (failed.topic, failed.key, failed.source, failed.type) == (TOPIC, "k3", "social-service", "social.test")
        assert failed.attempts == kafka_settings.consumer.max_attempts
        assert failed.error.startswith("RuntimeError: handler failed on attempt 3")
        assert failed.value == {"behaviour": "fail"}
        assert failed.headers is not None
        assert failed.headers["ce_id"] == ids["fail"]
        assert letters[ids["permanent"]].attempts == 1
        assert letters[ids["permanent"]].error.startswith("PermanentError")
        garbage = letters[None]
        assert (garbage.attempts, garbage.raw, garbage.value) == (0, "not a cloud event", None)
        assert "EnvelopeError" in garbage.error

        assert len(dlq) == 3
        by_id = {envelope.headers_to_dict(r.headers).get("ce_id"): r for r in dlq}
        copy = envelope.headers_to_dict(by_id[ids["fail"]].headers)
        assert by_id[ids["fail"]].key == b"k3"
        assert orjson.loads(by_id[ids["fail"]].value) == {"behaviour": "fail"}
        assert copy["ce_type"] == "social.test"
        assert copy["dlq_error"].startswith("RuntimeError")
        assert (copy["dlq_attempts"], copy["dlq_topic"], copy["dlq_dead_letter_id"]) == ("3", TOPIC, str(failed.id))

    async def test_redelivery_of_everything_has_no_second_effect(
        self, effects: Resources, kafka_settings: Settings
    ) -> None:
        ok, failing = str(uuid.uuid4()), str(uuid.uuid4())

        async def handler(session: AsyncSession, event: IncomingEvent) -> None:
            if event.data["behaviour"] == "fail":
                raise PermanentError("never works")
            await record_effect(session, event)

        await produce(
            kafka_settings,
            TOPIC,
            [
                ("k1", *binary_event(event_id=ok, data={"behaviour": "ok"})),
                ("k2", *binary_event(event_id=failing, data={"behaviour": "fail"})),
            ],
        )
        first = EventConsumer(kafka_settings, effects.sessionmaker, {TOPIC: handler})
        async with running(first.run):
            await wait_until(
                lambda: first.stats.processed + first.stats.dead_lettered == 2, timeout=30, what="first pass"
            )

        # As if the committed offsets were lost: a consumer in a new group reads the topic again.
        again = EventConsumer(
            kafka_settings,
            effects.sessionmaker,
            {TOPIC: handler},
            group_id=kafka_settings.kafka.consumer_group + "-again",
        )
        async with running(again.run):
            await wait_until(
                lambda: again.stats.duplicates + again.stats.dead_lettered == 2, timeout=30, what="second pass"
            )

        assert again.stats.duplicates == 1
        assert [r.event_id for r in await effect_rows(effects)] == [ok]
        async with effects.sessionmaker() as session:
            letters = list((await session.execute(select(DeadLetter))).scalars())
            outbox = list((await session.execute(select(OutboxEvent))).scalars())
        assert [d.event_id for d in letters] == [failing]  # no second dead letter …
        assert len(outbox) == 1  # … and no second DLQ copy

    async def test_dispatch_by_type_routes_and_ignores_unknown_types(self, effects: Resources) -> None:
        seen: list[str] = []

        async def on_a(session: AsyncSession, event: IncomingEvent) -> None:
            seen.append(event.type)

        handler = dispatch_by_type({"a": on_a})
        strict = dispatch_by_type({"a": on_a}, ignore_unknown=False)
        async with effects.sessionmaker() as session:
            await handler(
                session,
                IncomingEvent(id="1", source="s", type="a", data={}, topic="t", partition=0, offset=0, key=None),
            )
            await handler(
                session,
                IncomingEvent(id="2", source="s", type="b", data={}, topic="t", partition=0, offset=0, key=None),
            )
            with pytest.raises(PermanentError):
                await strict(
                    session,
                    IncomingEvent(id="3", source="s", type="b", data={}, topic="t", partition=0, offset=0, key=None),
                )

        assert seen == ["a"]
