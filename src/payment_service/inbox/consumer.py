"""The consumer loop for incoming topics: inbox, retries with backoff, dead-letter queue.

For every message of a registered topic (one consumer group, manual offset commits):

1. decode the CloudEvent (binary or structured mode); an unreadable message is dead-lettered;
2. in ONE database transaction, write the inbox row and run the topic's handler
   (:func:`payment_service.inbox.service.process`); a redelivered event is skipped;
3. on an exception, retry in-process with exponential backoff and jitter, up to
   ``consumer.max_attempts`` runs (:class:`~payment_service.inbox.service.PermanentError` skips
   the retries); then dead-letter it: a ``dead_letters`` row and a ``<topic>.dlq`` copy, in one
   transaction;
4. commit the Kafka offset only after the transaction of step 2 or 3 committed. If even the
   dead-letter transaction fails (database down), the partition is rewound to the message and
   retried later, so nothing is skipped.

Partitions of one poll are processed concurrently; messages of one partition strictly in order
(a message being retried holds back its partition — the order per key is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment_service import metrics
from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.inbox import service
from payment_service.inbox.schemas import IncomingEvent
from payment_service.inbox.service import Handler, PermanentError
from payment_service.outbox import envelope
from payment_service.outbox import kafka as outbox_kafka
from payment_service.outbox.relay import sleep_unless

log = structlog.get_logger(__name__)

RESTART_BACKOFF = (0.5, 5.0)
COMMIT_TIMEOUT_SECONDS = 10.0
STOP_COMMIT_GRACE_SECONDS = 1.0


def dispatch_by_type(handlers: Mapping[str, Handler], *, ignore_unknown: bool = True) -> Handler:
    """One topic handler that routes on the CloudEvents ``type``.

    Unknown types are ignored (still marked seen in the inbox) unless ``ignore_unknown`` is
    False, in which case they go to the DLQ.
    """

    async def handle(session: AsyncSession, event: IncomingEvent) -> None:
        handler = handlers.get(event.type)
        if handler is not None:
            await handler(session, event)
        elif not ignore_unknown:
            raise PermanentError(f"no handler for event type {event.type!r}")

    return handle


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    retries: int = 0
    dead_lettered: int = 0
    commits: int = 0


class EventConsumer:
    """Consumes ``handlers``' topics (logical names) in the consumer group ``group_id``."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, Handler],
        *,
        group_id: str | None = None,
        create_topics: bool | None = None,
    ) -> None:
        self._settings = settings
        self._create_topics = not settings.is_production if create_topics is None else create_topics
        self._kafka = settings.kafka
        self._retry = settings.consumer
        self._sessionmaker = sessionmaker
        self._handlers = dict(handlers)
        self._group_id = group_id or settings.kafka.consumer_group
        self.stats = ConsumerStats()

    @property
    def topics(self) -> list[str]:
        return sorted(self._handlers)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the message in hand is finished and committed first."""
        if not self._handlers:
            return
        if self._create_topics:  # development and tests; production provisions its topics
            await outbox_kafka.ensure_topics(
                self._kafka, [*self.topics, *(outbox_kafka.dlq_topic(t) for t in self.topics)]
            )
        delay = RESTART_BACKOFF[0]
        while not stop.is_set():
            consumer = outbox_kafka.consumer(self._kafka, self.topics, group_id=self._group_id)
            try:
                await consumer.start()
                log.info("consumer_started", topics=self.topics, group=self._group_id)
                delay = RESTART_BACKOFF[0]
                await self._poll(consumer, stop)
            except KafkaError as exc:
                log.warning("consumer_kafka_error", error=repr(exc))
            except Exception as exc:
                log.exception("consumer_crashed", exc_info=exc)
            finally:
                try:
                    await consumer.stop()
                except Exception as exc:
                    log.warning("consumer_stop_failed", error=repr(exc))
            if not stop.is_set():
                await sleep_unless(stop, delay)
                delay = min(delay * 2, RESTART_BACKOFF[1])

    async def _poll(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                # getmany can block for seconds during a rebalance: don't let it delay a shutdown
                # (cancelling it loses nothing: uncommitted messages are delivered again)
                fetch = asyncio.ensure_future(consumer.getmany(timeout_ms=500))
                await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fetch
                    return
                await self._dispatch(consumer, fetch.result(), stop)
        finally:
            stopped.cancel()

    async def _dispatch(
        self,
        consumer: AIOKafkaConsumer,
        batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        stop: asyncio.Event,
    ) -> None:
        if batches:
            await asyncio.gather(*(self._partition(consumer, tp, records, stop) for tp, records in batches.items()))

    async def _partition(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
        stop: asyncio.Event,
    ) -> None:
        done: int | None = None
        for record in records:
            if stop.is_set() or not await self._handle(record, stop):
                consumer.seek(tp, record.offset)  # not finished: deliver it again
                break
            done = record.offset
        if done is None:
            return
        await self._commit(consumer, tp, done + 1, stop)

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, stop: asyncio.Event) -> None:
        """Commit ``offset``; give up after a timeout (sooner when stopping) — a redelivery is harmless."""
        commit = asyncio.ensure_future(consumer.commit({tp: offset}))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({commit, stopped}, timeout=COMMIT_TIMEOUT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            if not commit.done() and stop.is_set():
                await asyncio.wait({commit}, timeout=STOP_COMMIT_GRACE_SECONDS)
            if not commit.done():
                commit.cancel()
                raise TimeoutError("offset commit did not finish (rebalance in progress?)")
            commit.result()
            self.stats.commits += 1
        except (KafkaError, TimeoutError) as exc:
            # e.g. a rebalance: the partition's next owner redelivers from the last commit; the inbox dedupes
            log.warning("consumer_commit_failed", topic=tp.topic, partition=tp.partition, error=repr(exc))
        finally:
            stopped.cancel()

    def _backoff(self, attempt: int) -> float:
        base = min(self._retry.backoff_initial_seconds * float(2 ** (attempt - 1)), self._retry.backoff_max_seconds)
        return base / 2 + random.uniform(0, base / 2)

    async def _handle(self, record: ConsumerRecord[bytes, bytes], stop: asyncio.Event) -> bool:
        """Process one message; False if it must be delivered again (not committed)."""
        topic = outbox_kafka.logical(self._kafka, record.topic)
        headers = envelope.headers_to_dict(record.headers)
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        handler = self._handlers.get(topic)
        try:
            if handler is None:
                raise PermanentError(f"no handler registered for topic {topic!r}")
            cloud_event = envelope.decode(headers, record.value)
        except (envelope.EnvelopeError, PermanentError) as exc:
            return await self._dead_letter(record, topic, key, headers, None, exc, 0, stop)
        event = IncomingEvent(
            id=cloud_event.id,
            source=cloud_event.source,
            type=cloud_event.type,
            data=cloud_event.data,
            topic=topic,
            partition=record.partition,
            offset=record.offset,
            key=key,
            time=cloud_event.time,
            subject=cloud_event.subject,
            dataversion=cloud_event.dataversion,
            correlation_id=cloud_event.correlationid,
            headers=headers,
        )
        attempt = 0
        while True:
            attempt += 1
            try:
                async with transaction(self._sessionmaker) as session:
                    applied = await service.process(session, event, handler)
            except PermanentError as exc:
                error: BaseException = exc
                break
            except Exception as exc:
                error = exc
                if attempt >= self._retry.max_attempts:
                    break
                self.stats.retries += 1
                metrics.CONSUMED.labels(topic, "retried").inc()
                delay = self._backoff(attempt)
                log.warning(
                    "consumer_handler_failed",
                    topic=topic,
                    event_id=event.id,
                    attempt=attempt,
                    retry_in=round(delay, 3),
                    error=service.describe_error(exc),
                )
                await sleep_unless(stop, delay)
                if stop.is_set():
                    return False
                continue
            if applied:
                self.stats.processed += 1
                metrics.CONSUMED.labels(topic, "processed").inc()
            else:
                self.stats.duplicates += 1
                metrics.CONSUMED.labels(topic, "duplicate").inc()
            return True
        return await self._dead_letter(record, topic, key, headers, event, error, attempt, stop)

    async def _dead_letter(
        self,
        record: ConsumerRecord[bytes, bytes],
        topic: str,
        key: str | None,
        headers: dict[str, str],
        event: IncomingEvent | None,
        error: BaseException,
        attempts: int,
        stop: asyncio.Event,
    ) -> bool:
        try:
            async with transaction(self._sessionmaker) as session:
                dead_letter_id = await service.dead_letter(
                    session,
                    topic=topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=key,
                    headers=headers,
                    value=record.value,
                    event=event,
                    error=error,
                    attempts=attempts,
                )
        except Exception as exc:
            log.error("consumer_dead_letter_failed", topic=topic, offset=record.offset, error=repr(exc))
            await sleep_unless(stop, self._retry.backoff_max_seconds)
            return False
        self.stats.dead_lettered += 1
        metrics.DEAD_LETTERS.labels(topic).inc()
        metrics.CONSUMED.labels(topic, "dead_lettered").inc()
        log.error(
            "consumer_event_dead_lettered",
            topic=topic,
            partition=record.partition,
            offset=record.offset,
            event_id=event.id if event else None,
            dead_letter_id=str(dead_letter_id) if dead_letter_id else None,
            attempts=attempts,
            error=service.describe_error(error),
        )
        return True
