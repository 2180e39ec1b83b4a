"""The relay against real Postgres and the real Tansu broker."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import defaultdict

import orjson
from sqlalchemy import text

from payment_service import metrics
from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.logging import correlation_id_var
from payment_service.outbox import envelope
from payment_service.outbox import kafka as outbox_kafka
from payment_service.outbox.events import DiagnosticPing
from payment_service.outbox.relay import OutboxRelay
from payment_service.outbox.service import emit
from payment_service.resources import Resources
from tests.outbox.helpers import emit_pings, outbox_counts, read_topic, running, wait_until

TOPIC = DiagnosticPing.topic


class TestPublish:
    async def test_every_row_is_published_once_with_key_headers_and_envelope(
        self, db: Resources, kafka_settings: Settings
    ) -> None:
        token = correlation_id_var.set("corr-123")
        try:
            ids = await emit_pings(db, "order-1", range(30), per_tx=7)
        finally:
            correlation_id_var.reset(token)
        relay = OutboxRelay(kafka_settings)
        published_before = metrics.OUTBOX_PUBLISHED.labels(TOPIC)._value.get()

        async with running(relay.run):
            await wait_until(lambda: relay.stats.published >= 30, timeout=20, what="30 events published")
            records = await read_topic(kafka_settings, TOPIC, count=30, extra_wait=0.5)

        assert sorted(r.headers and dict(r.headers)["ce_id"].decode() for r in records) == sorted(str(i) for i in ids)
        assert len(records) == 30  # exactly once
        first = min(records, key=lambda r: dict(r.headers)["ce_sequence"])
        headers = envelope.headers_to_dict(first.headers)
        assert first.key == b"order-1"
        assert headers["ce_specversion"] == "1.0"
        assert headers["ce_source"] == "payment-service"
        assert headers["ce_type"] == "system.diagnostic_ping"
        assert headers["ce_dataversion"] == "1"
        assert headers["ce_subject"] == headers["ce_partitionkey"] == "order-1"
        assert headers["ce_correlationid"] == "corr-123"
        assert headers["content-type"] == "application/json"
        assert headers["ce_time"].endswith("Z")
        assert orjson.loads(first.value) == {"message": "order-1:0", "n": 0}
        decoded = envelope.decode(headers, first.value)
        assert (decoded.id, decoded.type, decoded.data["n"]) == (str(ids[0]), DiagnosticPing.type, 0)
        assert await outbox_counts(db) == (30, 0)
        assert metrics.OUTBOX_PUBLISHED.labels(TOPIC)._value.get() - published_before == 30
        assert metrics.OUTBOX_PENDING._value.get() == 0

    async def test_relay_wakes_on_commit(self, db: Resources, kafka_settings: Settings) -> None:
        relay = OutboxRelay(kafka_settings)
        lags: list[float] = []

        async with running(relay.run):
            await emit_pings(db, "warm-up", [0])
            await wait_until(lambda: relay.stats.published >= 1, timeout=20, what="warm-up published")
            for n in range(15):
                await asyncio.sleep(0.05 + (n % 5) * 0.09)  # commit at different points of the poll cycle
                before = relay.stats.published
                await emit_pings(db, "lag", [n])
                committed = time.monotonic()
                await wait_until(
                    lambda b=before: relay.stats.published > b, timeout=10, what="event published", interval=0.001
                )
                lags.append(time.monotonic() - committed)

        print(
            f"\ncommit→broker-ack lag over {len(lags)} single events: median {statistics.median(lags) * 1000:.1f} ms,"
            f" max {max(lags) * 1000:.1f} ms (fallback poll {kafka_settings.outbox.poll_interval_seconds}s);"
            f" relay lags p50 {statistics.median(relay.stats.lags) * 1000:.1f} ms"
        )
        assert relay.stats.notifications >= 15  # woken by NOTIFY, not by the poll

    async def test_a_row_committed_late_with_a_lower_seq_is_still_published(
        self, db: Resources, kafka_settings: Settings
    ) -> None:
        relay = OutboxRelay(kafka_settings)
        async with running(relay.run):
            async with db.sessionmaker() as slow:
                late_id = await emit(slow, DiagnosticPing(message="late"), key="late")  # takes the lower seq
                await emit_pings(db, "early", [1])  # higher seq, committed first
                await wait_until(lambda: relay.stats.published >= 1, timeout=20, what="early event")
                await slow.commit()
            await wait_until(lambda: relay.stats.published >= 2, timeout=20, what="late event")

        async with db.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, seq, published_at FROM outbox_events ORDER BY seq"))).all()
        assert rows[0].id == late_id  # the lower seq …
        assert all(r.published_at is not None for r in rows)  # … published although it committed last


class TestOrder:
    async def test_per_key_order_is_kept_across_partitions_with_two_relays(
        self, db: Resources, kafka_settings: Settings
    ) -> None:
        await outbox_kafka.ensure_topics(kafka_settings.kafka, [TOPIC], partitions=3)
        kafka_settings.outbox.batch_size = 25
        first, second = OutboxRelay(kafka_settings, name="relay-a"), OutboxRelay(kafka_settings, name="relay-b")
        keys = [f"wallet-{i}" for i in range(6)]
        per_key = 40
        started = time.monotonic()

        async with running(first.run), running(second.run):
            await asyncio.gather(*(emit_pings(db, key, range(per_key), per_tx=3) for key in keys))
            await wait_until(
                lambda: first.stats.published + second.stats.published >= len(keys) * per_key,
                timeout=30,
                what="all events published",
            )
            elapsed = time.monotonic() - started
            assert [first.is_leader, second.is_leader].count(True) == 1
        records = await read_topic(kafka_settings, TOPIC, count=len(keys) * per_key, extra_wait=0.3)

        print(f"\n{len(records)} events over {len(keys)} keys emitted+published in {elapsed:.2f}s")
        seen: dict[str, list[int]] = defaultdict(list)
        partitions: dict[str, set[int]] = defaultdict(set)
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            seen[record.key.decode()].append(orjson.loads(record.value)["n"])
            partitions[record.key.decode()].add(record.partition)
        assert len({p for ps in partitions.values() for p in ps}) > 1  # the keys really were spread
        for key in keys:
            assert len(partitions[key]) == 1
            assert seen[key] == list(range(per_key)), key


class TestLeadership:
    async def test_standby_takes_over_when_the_leader_stops(self, db: Resources, kafka_settings: Settings) -> None:
        leader, standby = OutboxRelay(kafka_settings, name="leader"), OutboxRelay(kafka_settings, name="standby")

        async with running(standby.run):
            async with running(leader.run):
                await wait_until(lambda: leader.is_leader or standby.is_leader, timeout=10, what="a leader")
                active, passive = (leader, standby) if leader.is_leader else (standby, leader)
                await emit_pings(db, "k", [1, 2])
                await wait_until(lambda: active.stats.published == 2, timeout=20, what="published by the leader")
                assert passive.stats.published == 0
            # the relay running `leader.run` stopped; if it was the active one, the standby must take over
            if active is leader:
                await wait_until(lambda: standby.is_leader, timeout=10, what="standby takes over")
            before = standby.stats.published
            await emit_pings(db, "k", [3])
            await wait_until(lambda: standby.stats.published > before, timeout=20, what="published after failover")

        assert await outbox_counts(db) == (3, 0)


class TestBrokerDown:
    async def test_rows_wait_while_the_broker_is_unreachable(self, db: Resources, kafka_settings: Settings) -> None:
        kafka_settings.kafka.bootstrap_servers = "127.0.0.1:9"  # nothing listens there
        relay = OutboxRelay(kafka_settings)
        errors_before = metrics.OUTBOX_PUBLISH_ERRORS._value.get()
        await emit_pings(db, "k", [1, 2, 3])

        async with running(relay.run):
            await wait_until(lambda: relay.stats.failed_batches >= 2, timeout=20, what="failed attempts")

        assert await outbox_counts(db) == (0, 3)
        async with db.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT attempts, last_error FROM outbox_events"))).all()
        assert all(r.attempts >= 2 and r.last_error for r in rows)
        assert metrics.OUTBOX_PUBLISH_ERRORS._value.get() > errors_before
        assert relay.stats.published == 0


async def test_emit_ids_are_unique_per_call(db: Resources) -> None:
    async with transaction(db.sessionmaker) as session:
        a = await emit(session, DiagnosticPing(), key=uuid.uuid4())
        b = await emit(session, DiagnosticPing(), key=uuid.uuid4())
    assert a != b
