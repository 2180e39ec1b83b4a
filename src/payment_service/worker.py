"""The worker process: outbox relay, event consumers and periodic jobs.

All background work is registered here, in one place:

* :data:`CONSUMERS` — logical topic → handler for events from other services (inbox, retries,
  dead-letter queue: :mod:`payment_service.inbox.consumer`);
* :data:`payment_service.outbox.handlers.HANDLERS` — internal reactions to our own events;
* :data:`PERIODIC_JOBS` — jobs run every N seconds; each run is one transaction, and at most one
  worker process runs a given job at a time (transaction-scoped advisory lock).

The outbox relay runs in every worker; one of them is the active leader (see
:mod:`payment_service.outbox.relay`). On ``stop`` every loop finishes what it holds (the relay
its current batch, a consumer its current message, a job its transaction), the producer is
flushed and the pools are closed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

import asyncpg
import structlog
from sqlalchemy import text

from payment_service import metrics
from payment_service.catalog import tasks as catalog_tasks
from payment_service.config import Settings
from payment_service.db import asyncpg_dsn, transaction
from payment_service.donation import tasks as donation_tasks
from payment_service.inbox import service as inbox_service
from payment_service.inbox.consumer import EventConsumer
from payment_service.inbox.service import Handler
from payment_service.jobs import JobContext
from payment_service.kit import idempotency
from payment_service.ledger import tasks as ledger_tasks
from payment_service.order import tasks as order_tasks
from payment_service.outbox import handlers as outbox_handlers
from payment_service.outbox import service as outbox_service
from payment_service.outbox.relay import OutboxRelay, sleep_unless
from payment_service.payment import tasks as payment_tasks
from payment_service.payout import tasks as payout_tasks
from payment_service.provider_event import tasks as provider_event_tasks
from payment_service.referral_payout import tasks as referral_payout_tasks
from payment_service.refund import tasks as refund_tasks
from payment_service.resources import Resources
from payment_service.streamer_payout import tasks as streamer_payout_tasks
from payment_service.vault import load_provider_credentials

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_SECONDS = 30.0
OUTBOX_RETENTION = timedelta(days=7)
"""Published outbox rows are kept this long (debugging, manual re-publication)."""
INBOX_RETENTION = timedelta(days=30)
"""Longer than any redelivery can arrive (Kafka retention, DLQ replays of older events)."""


# ── periodic jobs ────────────────────────────────────────────────────────────────────────────


JobFunction = Callable[[JobContext], Awaitable[bool | None]]
"""Returns True when more work is waiting: the job then runs again at once (new transaction)."""


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    every: timedelta
    run: JobFunction
    wake_on: str | None = None
    """A Postgres NOTIFY channel that runs the job at once (``every`` stays the fallback poll)."""


async def prune_idempotency_keys(ctx: JobContext) -> bool:
    batch = 5000
    retention = timedelta(hours=ctx.settings.idempotency.retention_hours)
    return await idempotency.prune(ctx.session, older_than=ctx.now - retention, batch=batch) >= batch


async def prune_outbox(ctx: JobContext) -> bool:
    batch = 10_000
    return (
        await outbox_service.prune_published(ctx.session, older_than=ctx.now - OUTBOX_RETENTION, batch=batch) >= batch
    )


async def prune_inbox(ctx: JobContext) -> bool:
    batch = 10_000
    return await inbox_service.prune_processed(ctx.session, older_than=ctx.now - INBOX_RETENTION, batch=batch) >= batch


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        "apply_provider_webhooks",
        every=timedelta(seconds=1),
        run=provider_event_tasks.apply_received,
        wake_on="provider_events",  # the webhook endpoint notifies when it stores an event
    ),
    PeriodicJob("sync_payment_attempts", every=timedelta(seconds=5), run=payment_tasks.sync_open_attempts),
    PeriodicJob("expire_payments", every=timedelta(seconds=30), run=payment_tasks.expire_payments),
    PeriodicJob("fold_ledger_deltas", every=timedelta(milliseconds=200), run=ledger_tasks.fold_job),
    PeriodicJob("expire_ledger_holds", every=timedelta(seconds=10), run=ledger_tasks.expire_holds_job),
    PeriodicJob("sync_refunds", every=timedelta(seconds=5), run=refund_tasks.sync_open_refunds),
    PeriodicJob("prune_idempotency_keys", every=timedelta(minutes=5), run=prune_idempotency_keys),
    PeriodicJob("prune_outbox", every=timedelta(minutes=10), run=prune_outbox),
    PeriodicJob("prune_inbox", every=timedelta(hours=1), run=prune_inbox),
    PeriodicJob("publish_donation_alerts", every=timedelta(seconds=1), run=donation_tasks.publish_pending_alerts),
    PeriodicJob("expire_orders", every=timedelta(seconds=30), run=order_tasks.expire_orders),
    PeriodicJob("submit_payouts", every=timedelta(seconds=5), run=payout_tasks.submit_due_payouts),
    PeriodicJob("sync_payout_attempts", every=timedelta(seconds=10), run=payout_tasks.sync_open_attempts),
    PeriodicJob("payout_health", every=timedelta(minutes=1), run=payout_tasks.report_health),
    PeriodicJob(
        "streamer_scheduled_payouts", every=timedelta(minutes=10), run=streamer_payout_tasks.create_scheduled_payouts
    ),
)

# ── consumers of other services' topics ──────────────────────────────────────────────────────

CONSUMERS: Mapping[str, Handler] = MappingProxyType(
    {**donation_tasks.CONSUMERS, **catalog_tasks.CONSUMERS, **referral_payout_tasks.CONSUMERS}
)
"""Logical topic → handler (``inbox.consumer.dispatch_by_type`` routes one topic by event type)."""


_JOB_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:name, 0))")
_JOB_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:name, 0))")
_MAX_DRAIN_RUNS = 100


async def _sleep_or_wake(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` or ``wake`` is set."""
    if stop.is_set() or wake.is_set():
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run_job_once(job: PeriodicJob, resources: Resources) -> bool | None:
    """Run ``job`` unless another worker is running it (then return None).

    The job runs in one transaction of its session; jobs that call providers commit in between
    (no transaction may stay open across the network). The "one worker at a time" lock is
    therefore a session-level advisory lock held on a connection of its own for the whole run,
    not a transaction-level one that the first commit would release.
    """
    # AUTOCOMMIT: the lock and the unlock are one round trip each, not BEGIN + statement + COMMIT.
    async with resources.engine.connect() as conn:
        lock_conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        name = {"name": f"payment-service:job:{job.name}"}
        got = (await lock_conn.execute(_JOB_LOCK, name)).scalar_one()
        if not got:
            return None
        try:
            async with transaction(resources.sessionmaker) as session:
                ctx = JobContext(
                    session=session, now=resources.clock.now(), settings=resources.settings, resources=resources
                )
                return bool(await job.run(ctx))
        finally:
            await lock_conn.execute(_JOB_UNLOCK, name)


class Worker:
    """The relay, the consumer of all registered topics, and the periodic jobs."""

    def __init__(
        self,
        settings: Settings,
        *,
        resources: Resources | None = None,
        consumers: Mapping[str, Handler] | None = None,
        jobs: Sequence[PeriodicJob] | None = None,
        relay: bool = True,
    ) -> None:
        self.settings = settings
        self._owned = resources is None
        self.resources = resources or Resources.build(settings, application_name="payment-service-worker")
        topic_handlers = dict(CONSUMERS if consumers is None else consumers)
        for topic, handler in outbox_handlers.consumers().items():
            if topic in topic_handlers:
                raise ValueError(f"topic {topic!r} has both a consumer and internal handlers")
            topic_handlers[topic] = handler
        self.relay = OutboxRelay(settings) if relay else None
        self.consumer = EventConsumer(settings, self.resources.sessionmaker, topic_handlers) if topic_handlers else None
        self.jobs = tuple(PERIODIC_JOBS if jobs is None else jobs)
        self._wakes: dict[str, asyncio.Event] = {job.name: asyncio.Event() for job in self.jobs if job.wake_on}
        self.job_runs: dict[str, int] = {job.name: 0 for job in self.jobs}

    async def run(self, stop: asyncio.Event) -> None:
        loops: list[tuple[str, Callable[[asyncio.Event], Awaitable[None]]]] = []
        if self.relay is not None:
            loops.append(("outbox_relay", self.relay.run))
        if self.consumer is not None:
            loops.append(("consumer", self.consumer.run))
        for job in self.jobs:
            loops.append((f"job:{job.name}", self._job_loop(job)))
        if self._wakes:
            loops.append(("job_wakeups", self._listen))
        tasks = [asyncio.create_task(self._supervise(name, loop, stop), name=name) for name, loop in loops]
        log.info(
            "worker_running",
            relay=self.relay is not None,
            topics=self.consumer.topics if self.consumer else [],
            jobs=[job.name for job in self.jobs],
        )
        try:
            await stop.wait()
        finally:
            stop.set()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
                for task in pending:
                    log.warning("worker_loop_cancelled", loop=task.get_name())
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            if self._owned:
                await self.resources.close()

    @staticmethod
    async def _supervise(name: str, loop: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event) -> None:
        """Keep ``loop`` running until ``stop``; an unexpected crash restarts it after a pause."""
        while not stop.is_set():
            try:
                await loop(stop)
                return
            except Exception as exc:
                log.exception("worker_loop_crashed", loop=name, exc_info=exc)
                await sleep_unless(stop, 1.0)

    async def _listen(self, stop: asyncio.Event) -> None:
        """One connection LISTENs on the jobs' wake channels and pokes their loops."""
        channels: dict[str, list[asyncio.Event]] = {}
        for job in self.jobs:
            if job.wake_on:
                channels.setdefault(job.wake_on, []).append(self._wakes.setdefault(job.name, asyncio.Event()))
        if not channels:
            return
        conn = await asyncpg.connect(asyncpg_dsn(self.settings.db.url.get_secret_value()))
        try:
            for channel, events in channels.items():

                def poke(*_: object, targets: list[asyncio.Event] = events) -> None:
                    for event in targets:
                        event.set()

                await conn.add_listener(channel, poke)
            await stop.wait()
        finally:
            await conn.close()

    def _job_loop(self, job: PeriodicJob) -> Callable[[asyncio.Event], Awaitable[None]]:
        async def loop(stop: asyncio.Event) -> None:
            period = job.every.total_seconds()
            await sleep_unless(stop, random.uniform(0, min(period / 10, 5.0)))  # spread workers apart
            while not stop.is_set():
                try:
                    for _ in range(_MAX_DRAIN_RUNS):
                        more = await run_job_once(job, self.resources)
                        if more is not None:
                            self.job_runs[job.name] += 1
                        if not more or stop.is_set():
                            break
                except Exception as exc:
                    log.exception("job_failed", job=job.name, exc_info=exc)
                wake = self._wakes.get(job.name)
                if wake is None:
                    await sleep_unless(stop, period)
                else:
                    await _sleep_or_wake(stop, wake, period)
                    wake.clear()

        return loop


async def run_worker(settings: Settings, *, stop: asyncio.Event) -> None:
    """Run every background loop until ``stop`` is set, then finish the current batch and return.

    Provider credentials are read from Vault first (a production worker without them refuses to
    start, like the API), so the status sync and expiry jobs can call the providers.
    """
    resources = Resources.build(settings, application_name="payment-service-worker")
    try:
        resources.provider_credentials = await load_provider_credentials(settings, resources.http)
        resources.start_providers()
        metrics.watch_gc()
        metrics.freeze_startup_objects()
        await Worker(settings, resources=resources).run(stop)
    finally:
        await resources.close()
