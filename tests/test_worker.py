"""The worker: relay + consumers + periodic jobs, and surviving a broker restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.devstack import Tansu
from payment_service.outbox import handlers as outbox_handlers
from payment_service.outbox.events import DiagnosticPing
from payment_service.resources import Resources
from payment_service.worker import PeriodicJob, Worker, prune_idempotency_keys, run_job_once, run_worker
from tests.outbox.helpers import (
    binary_event,
    effect_rows,
    effects,
    emit_pings,
    kafka_settings,
    outbox_counts,
    produce,
    record_effect,
    running,
    wait_until,
)

__all__ = ["effects", "kafka_settings"]


async def add_idempotency_key(resources: Resources, key: str, created_at: datetime) -> None:
    async with transaction(resources.sessionmaker) as session:
        await session.execute(
            text(
                "INSERT INTO idempotency_keys (principal, key, id, method, path, fingerprint, created_at) "
                "VALUES ('user:1', :key, :id, 'POST', '/v1/x', 'f', :created_at)"
            ),
            {"key": key, "id": uuid.uuid4(), "created_at": created_at},
        )


async def idempotency_keys(resources: Resources) -> set[str]:
    async with resources.engine.connect() as conn:
        return set((await conn.execute(text("SELECT key FROM idempotency_keys"))).scalars())


class TestWorker:
    async def test_runs_the_relay_consumers_internal_handlers_and_jobs(
        self, effects: Resources, kafka_settings: Settings
    ) -> None:
        now = datetime.now(UTC)
        await add_idempotency_key(effects, "old", now - timedelta(hours=73))
        await add_idempotency_key(effects, "fresh", now - timedelta(hours=1))
        consumers = {
            **outbox_handlers.consumers({DiagnosticPing.type: (record_effect,)}),  # reacts to our own event
            "test.worker": record_effect,  # another service's topic
        }
        worker = Worker(
            kafka_settings,
            resources=effects,
            consumers=consumers,
            jobs=[PeriodicJob("prune_idempotency_keys", every=timedelta(seconds=1), run=prune_idempotency_keys)],
        )
        foreign_id = str(uuid.uuid4())

        async with running(worker.run):
            ping_ids = await emit_pings(effects, "k", [1, 2])
            await produce(kafka_settings, "test.worker", [("x", *binary_event(event_id=foreign_id))])
            await wait_until(lambda: worker.job_runs["prune_idempotency_keys"] >= 1, timeout=10, what="job run")
            await wait_until(lambda: _count(effects, 3), timeout=30, what="three effects")

        assert sorted(r.event_id for r in await effect_rows(effects)) == sorted([foreign_id, *map(str, ping_ids)])
        assert await idempotency_keys(effects) == {"fresh"}
        assert await outbox_counts(effects) == (2, 0)
        assert not effects.engine.pool.status().startswith("closed")  # resources passed in stay open

    async def test_run_worker_stops_promptly_and_closes_its_pools(
        self, db: Resources, kafka_settings: Settings
    ) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_worker(kafka_settings, stop=stop))
        await asyncio.sleep(0.5)
        started = time.monotonic()

        stop.set()
        await asyncio.wait_for(task, timeout=15)

        print(f"\nworker stopped {time.monotonic() - started:.2f}s after the stop signal")

    async def test_a_job_held_by_another_worker_is_skipped(self, db: Resources) -> None:
        ran: list[bool] = []

        async def job(_ctx: object) -> bool:
            ran.append(True)
            return False

        periodic = PeriodicJob("exclusive", every=timedelta(seconds=1), run=job)  # type: ignore[arg-type]
        async with transaction(db.sessionmaker) as session:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended('payment-service:job:exclusive', 0))")
            )
            assert await run_job_once(periodic, db) is None
        assert await run_job_once(periodic, db) is False
        assert ran == [True]

    def test_a_topic_cannot_have_both_a_consumer_and_internal_handlers(
        self, kafka_settings: Settings, resources: Resources, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(outbox_handlers, "HANDLERS", {DiagnosticPing.type: (record_effect,)})

        with pytest.raises(ValueError, match="both"):
            Worker(kafka_settings, resources=resources, consumers={DiagnosticPing.topic: record_effect}, jobs=[])


async def _count(resources: Resources, n: int) -> bool:
    return len(await effect_rows(resources)) >= n


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Tansu]:
    """A broker of the test's own, so that stopping it disturbs no other test."""
    broker = Tansu(log_path=tmp_path / "tansu.log").start()
    yield broker
    broker.stop()


class TestBrokerRestart:
    async def test_nothing_is_lost_and_each_effect_happens_once(
        self, effects: Resources, kafka_settings: Settings, private_broker: Tansu, tmp_path: Path
    ) -> None:
        kafka_settings.kafka.bootstrap_servers = private_broker.bootstrap_servers
        worker = Worker(
            kafka_settings,
            resources=effects,
            consumers=outbox_handlers.consumers({DiagnosticPing.type: (record_effect,)}),
            jobs=[],
        )
        assert worker.relay is not None
        keys = ["a", "b", "c", "d"]

        async with running(worker.run):
            # 1. normal operation: 20 events, consumed once each
            await asyncio.gather(*(emit_pings(effects, k, range(5)) for k in keys))
            await wait_until(lambda: _count(effects, 20), timeout=30, what="20 effects before the outage")

            # 2. the broker goes away (its in-memory topics and offsets with it); 12 more events committed
            private_broker.stop()
            failures = worker.relay.stats.failed_batches
            await asyncio.gather(*(emit_pings(effects, k, range(5, 8)) for k in keys))
            await wait_until(lambda: worker.relay.stats.failed_batches > failures, timeout=30, what="a failed publish")
            published, pending = await outbox_counts(effects)
            print(
                f"\nbroker down: {published} published, {pending} waiting; last error {worker.relay.stats.last_error}"
            )
            assert (published, pending) == (20, 12)  # the rows wait; nothing was marked published

            # 3. a new broker on the same port: the waiting rows are delivered and consumed
            outage_ended = time.monotonic()
            restarted = Tansu(port=private_broker.port, log_path=tmp_path / "tansu-2.log").start()
            private_broker.proc = restarted.proc  # the fixture stops whichever broker holds the port
            await wait_until(lambda: _count(effects, 32), timeout=45, what="32 effects after the restart")
            recovered = time.monotonic() - outage_ended
            await asyncio.sleep(1.0)  # room for a late duplicate to (wrongly) show up

        print(f"recovered {recovered:.1f}s after the broker came back")
        rows = await effect_rows(effects)
        assert len(rows) == 32
        assert len({r.event_id for r in rows}) == 32  # each effect exactly once
        assert await outbox_counts(effects) == (32, 0)
        by_key: dict[str, list[int]] = defaultdict(list)
        for row in rows:
            by_key[row.key].append(row.data["n"])
        assert all(by_key[k] == list(range(8)) for k in keys), by_key  # and in order per key
