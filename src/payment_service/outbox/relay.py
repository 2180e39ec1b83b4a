"""The outbox relay: publish committed outbox rows to Kafka, at least once, in order per key.

How it works (details and trade-offs in ``docs/events.md``):

* **One active relay.** Every worker runs a relay; each opens its own asyncpg connection and
  tries ``pg_try_advisory_lock`` on it. The holder is the leader; the others are standbys and
  retry every few seconds. If the leader's process or connection dies, Postgres releases the
  lock and a standby takes over. One leader keeps per-key order across worker processes
  (several relays claiming with SKIP LOCKED would publish rows of one key in parallel).
* **Wake on commit.** ``emit`` marks the writer's session; after its COMMIT the writer's process
  sends ``NOTIFY outbox`` from a connection of its own (``db.CommitWaker``: a NOTIFY inside the
  writer's transaction would serialize all commits on Postgres' notification lock). The leader
  LISTENs on its connection and wakes at once, with a fallback poll every
  ``outbox.poll_interval_seconds`` (≤ 1 s) in case a notification is lost.
* **Batches.** In one transaction: lock up to ``outbox.batch_size`` unpublished rows in ``seq``
  order (``FOR UPDATE SKIP LOCKED``; rows are found by ``published_at IS NULL``, never through
  a ``seq`` cursor, which would skip rows that commit late), send them all, wait for every
  broker acknowledgement (acks=all), set ``published_at`` on the acknowledged rows, record
  ``attempts``/``last_error`` on the others, commit. A crash before the commit publishes the
  batch again (consumers dedupe on the event id).
* **Failures.** A broker outage stops the batch at the first failed send; the rows stay and are
  retried with exponential backoff. A message the broker can never take (too large) holds
  back only the later events of its own key.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from payment_service import metrics
from payment_service.config import Settings
from payment_service.db import asyncpg_dsn
from payment_service.outbox import envelope, kafka, repository
from payment_service.outbox.repository import PendingEvent

log = structlog.get_logger(__name__)

STANDBY_RETRY_SECONDS = 2.0
"""How often a standby relay tries to become the leader."""
RECONNECT_BACKOFF = (0.5, 5.0)
FAILURE_BACKOFF = (0.2, 5.0)

# Errors that concern one message, not the broker: skip it (and later events of its key).
_MESSAGE_ERRORS: tuple[type[BaseException], ...] = (MessageSizeTooLargeError, TypeError, ValueError)


class _Backoff:
    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.current = initial

    def next(self) -> float:
        delay = self.current
        self.current = min(self.current * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self.current = self.initial


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set, whichever comes first."""
    if seconds <= 0 or stop.is_set():
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


@dataclass
class RelayStats:
    """Counters for tests and diagnostics (Prometheus has the same through ``metrics``)."""

    published: int = 0
    failed_batches: int = 0
    batches: int = 0
    notifications: int = 0
    leader_terms: int = 0
    last_error: str | None = None
    lags: list[float] = field(default_factory=list)
    """Commit-to-ack lags of the last published rows (seconds; bounded)."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    claimed: int
    published: int
    failed: int


class OutboxRelay:
    """Publishes outbox rows while it is the leader; see the module docstring."""

    def __init__(self, settings: Settings, *, name: str = "relay") -> None:
        self.name = name
        self._outbox = settings.outbox
        self._kafka = settings.kafka
        self._dsn = asyncpg_dsn(settings.db.url.get_secret_value())
        self._statement_timeout_ms = settings.db.statement_timeout_ms
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self.is_leader = False
        self.stats = RelayStats()

    # ── lifecycle ────────────────────────────────────────────────────────────────────────────

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; finishes the current batch and flushes the producer."""
        backoff = _Backoff(*RECONNECT_BACKOFF)
        while not stop.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=5,
                    server_settings={
                        "application_name": f"payment-service-{self.name}",
                        "statement_timeout": str(self._statement_timeout_ms),
                        # a generic plan cached while the table was tiny (a full scan) would stay for
                        # the connection's life; a batch is worth planning each time
                        "plan_cache_mode": "force_custom_plan",
                    },
                )
                await self._serve(conn, stop)
                backoff.reset()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                self.stats.last_error = repr(exc)
                log.warning("outbox_relay_db_error", relay=self.name, error=repr(exc))
            except Exception as exc:
                self.stats.last_error = repr(exc)
                log.exception("outbox_relay_crashed", relay=self.name, exc_info=exc)
            finally:
                was_leader = self.is_leader
                self.is_leader = False
                await self._close_producer()
                if conn is not None:
                    await self._close_conn(conn)
                if was_leader:
                    log.info("outbox_relay_resigned", relay=self.name)
            if not stop.is_set():
                await sleep_unless(stop, backoff.next())

    async def _serve(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        while not await repository.try_lead(conn):
            if stop.is_set():
                return
            await sleep_unless(stop, STANDBY_RETRY_SECONDS)
        if stop.is_set():
            return
        self.is_leader = True
        self.stats.leader_terms += 1
        log.info("outbox_relay_leader", relay=self.name)
        await conn.add_listener(repository.NOTIFY_CHANNEL, self._notified)
        await self._lead(conn, stop)

    def _notified(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        self.stats.notifications += 1
        self._wake.set()

    async def _lead(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        failures = _Backoff(*FAILURE_BACKOFF)
        next_gauges = 0.0
        while not stop.is_set():
            self._wake.clear()
            outcome = await self._relay_once(conn)
            if time.monotonic() >= next_gauges:
                await self._update_gauges(conn)
                next_gauges = time.monotonic() + self._outbox.poll_interval_seconds
            if outcome.failed:
                await sleep_unless(stop, failures.next())
                continue
            failures.reset()
            if outcome.claimed >= self._outbox.batch_size:
                continue  # a backlog: keep draining
            await self._idle(stop)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for a NOTIFY, ``stop``, or the fallback poll interval."""
        if self._wake.is_set() or stop.is_set():
            return
        waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(
                waiters, timeout=min(self._outbox.poll_interval_seconds, 1.0), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()

    # ── one batch ────────────────────────────────────────────────────────────────────────────

    async def _relay_once(self, conn: asyncpg.Connection) -> _Outcome:
        reset_producer = False
        async with conn.transaction():
            rows = await repository.claim_batch(conn, limit=self._outbox.batch_size)
            if not rows:
                return _Outcome(0, 0, 0)
            try:
                producer = await self._ensure_producer()
            except (KafkaError, OSError) as exc:
                await repository.mark_failed(conn, [r.seq for r in rows], error=f"producer start: {exc!r}")
                self._failed(exc, len(rows))
                return _Outcome(len(rows), 0, len(rows))
            acked, failed, error, reset_producer = await self._publish(producer, rows)
            acked_at = datetime.now(UTC)
            if acked:
                await repository.mark_published(conn, [r.seq for r in acked], at=acked_at)
            if failed:
                await repository.mark_failed(conn, [r.seq for r in failed], error=repr(error))
        # committed: account for it
        self.stats.batches += 1
        if acked:
            self._published(acked, acked_at)
        if failed:
            self._failed(error, len(failed))
        if reset_producer:
            await self._close_producer()
        return _Outcome(len(rows), len(acked), len(failed))

    async def _publish(
        self, producer: AIOKafkaProducer, rows: list[PendingEvent]
    ) -> tuple[list[PendingEvent], list[PendingEvent], BaseException | None, bool]:
        """Send ``rows`` and wait for the acknowledgements: (acked, failed, first error, reset?)."""
        sent: list[tuple[PendingEvent, asyncio.Future[Any]]] = []
        failed: list[PendingEvent] = []
        held_keys: set[str] = set()
        error: BaseException | None = None
        reset = False
        for index, row in enumerate(rows):
            if row.key is not None and row.key in held_keys:
                failed.append(row)  # keep the key's order behind its failed event
                continue
            topic, key, value, headers = self._message(row)
            try:
                future = await producer.send(topic, value=value, key=key, headers=headers)
            except _MESSAGE_ERRORS as exc:
                error = error or exc
                failed.append(row)
                if row.key is not None:
                    held_keys.add(row.key)
                log.error("outbox_event_unpublishable", seq=row.seq, event_id=str(row.id), error=repr(exc))
                continue
            except KafkaError as exc:  # broker or metadata trouble: the rest would fail too
                error = error or exc
                failed.extend(rows[index:])
                reset = True
                break
            sent.append((row, future))

        if sent:
            _, pending = await asyncio.wait([f for _, f in sent], timeout=self._outbox.publish_timeout_seconds)
            # Unresolved sends may still land later, and a producer that saw the broker fail is not
            # trusted: start a fresh one for the next batch (its stop() flushes what is left).
            reset = reset or bool(pending)
        acked: list[PendingEvent] = []
        for row, future in sent:
            if future.done() and not future.cancelled() and future.exception() is None:
                acked.append(row)
                continue
            failed.append(row)
            if not (future.done() and not future.cancelled() and isinstance(future.exception(), _MESSAGE_ERRORS)):
                reset = True
            if error is None:
                error = (
                    future.exception()
                    if future.done() and not future.cancelled()
                    else TimeoutError(f"no acknowledgement within {self._outbox.publish_timeout_seconds}s")
                )
        if failed:
            failed.sort(key=lambda r: r.seq)
        return acked, failed, error, reset

    def _message(self, row: PendingEvent) -> tuple[str, bytes | None, bytes, envelope.Headers]:
        topic = kafka.physical(self._kafka, row.topic)
        key = row.key.encode() if row.key is not None else None
        if row.headers is not None:  # a forwarded message: its own headers, verbatim
            headers = envelope.dict_to_headers(row.headers)
        else:
            headers = envelope.binary_headers(
                id=str(row.id),
                source=row.source,
                type=row.type,
                time=row.created_at,
                dataversion=row.version,
                subject=row.key,
                partitionkey=row.key,
                correlationid=row.correlation_id,
                sequence=row.seq,
            )
        return topic, key, row.payload.encode(), headers

    # ── producer ─────────────────────────────────────────────────────────────────────────────

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = kafka.producer(self._kafka)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await producer.stop()  # flushes: waits for (or fails) everything still buffered
        except Exception as exc:
            log.warning("outbox_producer_stop_failed", relay=self.name, error=repr(exc))

    @staticmethod
    async def _close_conn(conn: asyncpg.Connection) -> None:
        try:
            await asyncio.wait_for(conn.close(), timeout=2)
        except Exception:
            conn.terminate()

    # ── accounting ───────────────────────────────────────────────────────────────────────────

    def _published(self, rows: list[PendingEvent], acked_at: datetime) -> None:
        self.stats.published += len(rows)
        for topic, count in Counter(r.topic for r in rows).items():
            metrics.OUTBOX_PUBLISHED.labels(topic).inc(count)
        lags = self.stats.lags
        for row in rows:
            lag = max(0.0, (acked_at - row.created_at).total_seconds())
            metrics.OUTBOX_PUBLISH_LAG.observe(lag)
            lags.append(lag)
        if len(lags) > 10_000:
            del lags[: len(lags) - 10_000]

    def _failed(self, error: BaseException | None, count: int) -> None:
        self.stats.failed_batches += 1
        self.stats.last_error = repr(error)
        metrics.OUTBOX_PUBLISH_ERRORS.inc()
        log.warning("outbox_publish_failed", relay=self.name, events=count, error=repr(error))

    async def _update_gauges(self, conn: asyncpg.Connection) -> None:
        pending, oldest = await repository.pending_stats(conn)
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_LAG.set((datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0)
