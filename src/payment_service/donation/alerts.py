"""Alert fan-out: from the committing transaction to every API process through Redis pub/sub.

Path of one alert (and why none is lost or shown twice):

1. The transaction that processes a donation gives it the next ``alert_seq`` of its streamer
   (a counter row locked until COMMIT, so positions are gapless and in commit order) and calls
   :func:`publish_after_commit`.
2. That call builds the alert frame inside the transaction. Right after the transaction commits
   (SQLAlchemy ``after_commit``, whoever commits: the request's unit of work, the webhook job,
   the status sync, the Kafka consumer) the process's one flusher task
   (:meth:`AlertPublisher.schedule`) PUBLISHes every frame committed meanwhile on
   ``donations:<db>:alerts:<streamer>`` (:func:`channel`) in one pipeline, then marks that batch
   published in one statement (at most every ``mark_interval_seconds``). Nothing is published
   for a transaction that rolled back. If the PUBLISH fails or the process dies first, the alert
   stays unmarked and :func:`payment_service.donation.tasks.publish_pending_alerts` (worker, every second)
   publishes it after ``alert_publish_grace_seconds``; if only the mark fails, that job
   publishes it a second time and the listeners drop the duplicate (step 4).
3. Each API process has one :class:`AlertHub` (one Redis connection) subscribed to the channels
   of its connected streamers; it hands messages to the local WebSocket connections.
4. A connection remembers the last ``alert_seq`` it sent. It subscribes first, then replays the
   log after the client's ``last_event_id``; a live alert at or below that is dropped (no
   duplicate), one beyond the next position makes it re-read the log (a missed pub/sub message is
   found), and it re-reads the log every ``ws_catch_up_seconds`` and after the hub reconnects to
   Redis. The alert log in Postgres is the truth; pub/sub is only the fast path.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from payment_service.db import transaction
from payment_service.donation import repository
from payment_service.donation.schemas import AlertFrame
from payment_service.kit.money import Money, MoneyValue
from payment_service.models.donation import Donation

log = structlog.get_logger(__name__)

_PENDING_KEY = "donation_alerts_pending"
_HOOKED_KEY = "donation_alerts_hooked"


def channel(redis: aioredis.Redis, streamer_id: str) -> str:
    """``donations:<db>:alerts:<streamer>``. Redis pub/sub ignores the database number, so the
    channel carries it: services (or test workers) on other databases of one Redis never mix."""
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    return f"donations:{db}:alerts:{streamer_id}"


def frame(donation: Donation) -> AlertFrame:
    """The alert as the overlay receives it."""
    assert donation.alert_seq is not None
    return AlertFrame(
        id=donation.alert_seq,
        donation_id=donation.id,
        streamer_id=donation.streamer_id,
        display_name=donation.display_name,
        message=donation.message,
        amount=MoneyValue.of(Money(donation.amount_minor, donation.currency)),
        created_at=donation.processed_at or donation.created_at,
    )


# ---- publishing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommittedAlert:
    """An alert whose transaction committed, ready to publish (built before the commit)."""

    donation_id: uuid.UUID
    streamer_id: str
    frame: str

    @classmethod
    def of(cls, donation: Donation) -> CommittedAlert:
        return cls(donation.id, donation.streamer_id, frame(donation).model_dump_json())


@dataclass
class AlertPublisher:
    """Publishes committed alerts of one database to Redis (one per process and engine).

    The fast path costs no database round trip before the PUBLISH: the frames are built inside the
    committing transaction and published right after COMMIT; a single flusher task per process
    publishes everything committed meanwhile in one pipeline and then marks the batch published
    in one statement. Under load the batches grow by themselves (group commit), so neither Redis
    nor Postgres sees a round trip per alert.
    """

    redis: aioredis.Redis
    sessionmaker: async_sessionmaker[AsyncSession]
    mark_interval_seconds: float = 0.05
    pending: list[CommittedAlert] = field(default_factory=list)
    unmarked: list[uuid.UUID] = field(default_factory=list)
    flusher: asyncio.Task[None] | None = None
    marker: asyncio.Task[None] | None = None

    async def publish(self, donations: Sequence[Donation]) -> None:
        """PUBLISH each alert on its streamer's channel (one round trip). Raises RedisError."""
        await self.publish_frames([CommittedAlert.of(d) for d in donations])

    async def publish_frames(self, alerts: Sequence[CommittedAlert]) -> None:
        """PUBLISH prepared frames (one round trip). Raises RedisError."""
        if not alerts:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for alert in alerts:
                pipe.publish(channel(self.redis, alert.streamer_id), alert.frame)
            await pipe.execute()

    def schedule(self, alerts: list[CommittedAlert]) -> None:
        """Publish ``alerts`` (committed) soon; called from the ``after_commit`` hook."""
        self.pending.extend(alerts)
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            await self.publish_batch(batch)

    async def publish_batch(self, batch: Sequence[CommittedAlert]) -> int:
        """Publish now; mark published within ``mark_interval_seconds`` (one statement for all
        alerts published meanwhile). A failed PUBLISH leaves the alerts unmarked (the worker's job
        publishes them after ``alert_publish_grace_seconds``); a failed or lost mark means the job
        publishes them a second time, which listeners drop (they remember the last ``alert_seq``)."""
        try:
            await self.publish_frames(batch)
        except Exception as exc:
            log.warning("donation_alert_publish_failed", error=repr(exc), donations=len(batch))
            return 0
        self.unmarked.extend(a.donation_id for a in batch)
        if self.marker is None or self.marker.done():
            self.marker = asyncio.get_running_loop().create_task(self._mark())
        return len(batch)

    async def _mark(self) -> None:
        while self.unmarked:
            await asyncio.sleep(self.mark_interval_seconds)
            ids, self.unmarked = self.unmarked, []
            try:
                async with transaction(self.sessionmaker) as session:
                    await repository.mark_published_ids(session, ids)
            except Exception as exc:
                log.warning("donation_alert_mark_failed", error=repr(exc), donations=len(ids))

    async def drain(self) -> None:
        """Wait for the publications and marks in flight (tests, shutdown)."""
        for attr in ("flusher", "marker"):
            while (task := getattr(self, attr)) is not None and not task.done():
                await asyncio.gather(task, return_exceptions=True)


_PUBLISHERS: weakref.WeakKeyDictionary[Engine, AlertPublisher] = weakref.WeakKeyDictionary()


def bind(*, engine: Engine, redis: aioredis.Redis, sessionmaker: async_sessionmaker[AsyncSession]) -> AlertPublisher:
    """Let commits on ``engine`` publish their alerts to ``redis`` (idempotent; call at start-up)."""
    publisher = _PUBLISHERS.get(engine)
    if publisher is None or publisher.redis is not redis:
        publisher = AlertPublisher(redis=redis, sessionmaker=sessionmaker)
        _PUBLISHERS[engine] = publisher
    return publisher


def publisher_for(engine: Engine) -> AlertPublisher | None:
    return _PUBLISHERS.get(engine)


def publish_after_commit(session: AsyncSession, donation: Donation) -> None:
    """Publish ``donation``'s alert (as it is now: processed, with its ``alert_seq``) once the
    session's current transaction commits.

    Nothing is published if it rolls back. Without a bound publisher for the session's engine the
    worker job publishes it a little later.
    """
    sync = session.sync_session
    alert = CommittedAlert.of(donation)
    sync.info.setdefault(_PENDING_KEY, []).append(alert)
    if not sync.info.get(_HOOKED_KEY):
        event.listen(sync, "after_commit", _after_commit)
        event.listen(sync, "after_transaction_end", _after_transaction_end)
        sync.info[_HOOKED_KEY] = True


def _after_commit(sync: Session) -> None:
    pending: list[CommittedAlert] = sync.info.pop(_PENDING_KEY, [])
    if not pending:
        return
    bind = sync.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    publisher = _PUBLISHERS.get(engine)
    if publisher is None:
        log.info("donation_alert_publisher_unbound", donations=len(pending))
        return
    publisher.schedule(pending)


def _after_transaction_end(sync: Session, tx: SessionTransaction) -> None:
    if tx.parent is None:  # the outermost transaction ended without a commit: forget its alerts
        sync.info.pop(_PENDING_KEY, None)


# ---- receiving ----------------------------------------------------------------------------------

RESYNC = "resync"
"""Queued for a listener when messages may have been missed: re-read the alert log."""


class AlertListener:
    """One WebSocket connection's view of its streamer's channel: a bounded queue of alert dicts
    (or :data:`RESYNC`). A full queue drops the alert and asks for a resync instead."""

    def __init__(self, streamer_id: str, *, max_queue: int = 1000) -> None:
        self.streamer_id = streamer_id
        self.queue: asyncio.Queue[dict[str, Any] | str] = asyncio.Queue(maxsize=max_queue)
        self._resync_queued = False

    def push(self, item: dict[str, Any] | str, *, force: bool = False) -> None:
        """Queue ``item``; when the queue is full, drop it and queue one RESYNC instead (the log
        has the dropped alerts). ``force`` queues a final control marker (the connection is ending)
        even then, evicting the oldest entry."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            if force:
                self._evict_and_put(item)
            elif not self._resync_queued:
                self._resync_queued = True
                self._evict_and_put(RESYNC)

    def _evict_and_put(self, item: dict[str, Any] | str) -> None:
        with contextlib.suppress(asyncio.QueueEmpty):
            self.queue.get_nowait()
        self.queue.put_nowait(item)

    async def get(self) -> dict[str, Any] | str:
        item = await self.queue.get()
        if item == RESYNC:
            self._resync_queued = False
        return item


class AlertHub:
    """The pub/sub side of one API process: one Redis connection for all local connections.

    Subscribes to a streamer's channel while at least one local connection listens to it, and
    returns from :meth:`subscribe` only once Redis confirmed the subscription (so that replaying
    the log afterwards cannot miss an alert published in between). Stops its reader when the last
    listener leaves. After a reconnect to Redis every listener gets :data:`RESYNC`.
    """

    SUBSCRIBE_TIMEOUT = 5.0
    PING_EVERY = 15.0

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._lock = asyncio.Lock()
        self._listeners: dict[str, set[AlertListener]] = {}
        self._confirmed: set[str] = set()
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._hooked = False

    @property
    def channels(self) -> list[str]:
        return sorted(self._listeners)

    async def subscribe(self, streamer_id: str) -> AlertListener:
        listener = AlertListener(streamer_id)
        name = channel(self._redis, streamer_id)
        waiter: asyncio.Future[None] | None = None
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub()
            listeners = self._listeners.setdefault(name, set())
            listeners.add(listener)
            if name not in self._confirmed:
                waiter = asyncio.get_running_loop().create_future()
                self._waiting.setdefault(name, []).append(waiter)
            if len(listeners) == 1:
                try:
                    await self._pubsub.subscribe(name)
                except BaseException:
                    listeners.discard(listener)
                    if not listeners:
                        del self._listeners[name]
                    raise
                if self._pubsub.connection is not None and not self._hooked:
                    # registered after the first connect: every call is a reconnect
                    self._hooked = True
                    self._pubsub.connection.register_connect_callback(self._on_connect)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(self._pubsub), name="donation-alert-hub")
        if waiter is not None:
            try:
                await asyncio.wait_for(asyncio.shield(waiter), self.SUBSCRIBE_TIMEOUT)
            except TimeoutError:
                log.warning("donation_alert_subscribe_unconfirmed", channel=name)
                listener.push(RESYNC)  # the periodic re-read covers the gap
        return listener

    async def unsubscribe(self, listener: AlertListener) -> None:
        name = channel(self._redis, listener.streamer_id)
        async with self._lock:
            listeners = self._listeners.get(name)
            if listeners is None or listener not in listeners:
                return
            listeners.discard(listener)
            if listeners:
                return
            del self._listeners[name]
            self._confirmed.discard(name)
            for waiter in self._waiting.pop(name, []):
                if not waiter.done():
                    waiter.set_result(None)
            pubsub = self._pubsub
            if self._listeners and pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.unsubscribe(name)
                return
            # nobody left: stop reading and give the connection back
            reader, self._reader, self._pubsub, self._hooked = self._reader, None, None, False
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if pubsub is not None:
            if pubsub.connection is not None:  # the connection goes back to the pool: forget us
                pubsub.connection.deregister_connect_callback(self._on_connect)
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _on_connect(self, connection: Any) -> None:
        """Called by redis-py when the pub/sub connection reconnected (it resubscribes by itself)."""
        if self._pubsub is None or connection is not self._pubsub.connection:
            return
        log.warning("donation_alert_hub_reconnected", channels=len(self._listeners))
        self._confirmed.clear()
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.push(RESYNC)

    async def _read(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self.PING_EVERY
        delay = 0.1
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
                if loop.time() >= next_ping:
                    next_ping = loop.time() + self.PING_EVERY
                    await pubsub.ping()
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: redis-py reconnects and resubscribes on the next read
                log.warning("donation_alert_hub_read_failed", error=repr(exc))
                self._confirmed.clear()
                for listeners in self._listeners.values():
                    for listener in listeners:
                        listener.push(RESYNC)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        raw_channel = message.get("channel")
        name = raw_channel.decode() if isinstance(raw_channel, bytes) else str(raw_channel)
        if kind == "subscribe":
            self._confirmed.add(name)
            for waiter in self._waiting.pop(name, []):
                if not waiter.done():
                    waiter.set_result(None)
            return
        if kind != "message":
            return
        try:
            alert = orjson.loads(message["data"])
        except orjson.JSONDecodeError:
            log.error("donation_alert_unreadable", channel=name)
            return
        for listener in tuple(self._listeners.get(name, ())):
            listener.push(alert)
