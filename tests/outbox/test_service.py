"""emit(): one INSERT in the caller's transaction; NOTIFY after commit only, from the process's waker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, select, text

from payment_service.db import CommitWaker, asyncpg_dsn, transaction
from payment_service.logging import correlation_id_var
from payment_service.models.outbox import OutboxEvent
from payment_service.outbox import service as outbox_service
from payment_service.outbox.events import DiagnosticPing
from payment_service.resources import Resources


class TestEmit:
    async def test_inserts_one_row_with_the_event_and_the_current_correlation_id(self, db: Resources) -> None:
        key = uuid.uuid4()
        token = correlation_id_var.set("req-42")
        try:
            async with transaction(db.sessionmaker) as session:
                event_id = await outbox_service.emit(session, DiagnosticPing(message="hi", n=7), key=key)
        finally:
            correlation_id_var.reset(token)

        async with db.sessionmaker() as session:
            row = (await session.execute(select(OutboxEvent))).scalar_one()
        assert row.id == event_id
        assert (row.topic, row.type, row.version, row.source) == (
            "payments.system",
            "system.diagnostic_ping",
            1,
            "payment-service",
        )
        assert row.key == str(key)
        assert row.payload == {"message": "hi", "n": 7}
        assert row.correlation_id == "req-42"
        assert row.headers is None
        assert row.published_at is None

    async def test_is_one_round_trip(self, db: Resources) -> None:
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        async with db.sessionmaker() as session:
            await session.execute(text("SELECT 1"))  # open the transaction first
            sync_engine = db.engine.sync_engine
            event.listen(sync_engine, "before_cursor_execute", count)
            try:
                await outbox_service.emit(session, DiagnosticPing(), key="k")
            finally:
                event.remove(sync_engine, "before_cursor_execute", count)
            await session.rollback()

        assert len(statements) == 1
        assert "INSERT INTO outbox_events" in statements[0]
        # never inside the writer's transaction: its COMMIT would then take Postgres' database-wide
        # notification lock until the WAL flush (db.CommitWaker)
        assert "pg_notify" not in statements[0]

    async def test_rolled_back_event_never_exists(self, db: Resources) -> None:
        async def failing_unit_of_work() -> None:
            async with transaction(db.sessionmaker) as session:
                await outbox_service.emit(session, DiagnosticPing(), key="k")
                raise RuntimeError("business failure")

        with pytest.raises(RuntimeError):
            await failing_unit_of_work()

        async with db.sessionmaker() as session:
            assert (await session.execute(select(OutboxEvent))).first() is None

    @pytest.mark.parametrize("key", ["", "x" * 201])
    async def test_rejects_an_empty_or_too_long_key(self, db: Resources, key: str) -> None:
        async with db.sessionmaker() as session:
            with pytest.raises(ValueError, match="outbox key"):
                await outbox_service.emit(session, DiagnosticPing(), key=key)


class TestNotify:
    async def test_listener_is_notified_at_commit_not_before_and_not_on_rollback(self, db: Resources) -> None:
        listener = await asyncpg.connect(asyncpg_dsn(db.settings.db.url.get_secret_value()))
        received: asyncio.Queue[str] = asyncio.Queue()
        await listener.add_listener("outbox", lambda *args: received.put_nowait(args[2]))
        try:
            async with db.sessionmaker() as session:
                await outbox_service.emit(session, DiagnosticPing(), key="a")
                await outbox_service.emit(session, DiagnosticPing(), key="b")
                await asyncio.sleep(0.2)
                assert received.empty()  # nothing before COMMIT
                await session.commit()
            assert await asyncio.wait_for(received.get(), timeout=5) == "outbox"
            await asyncio.sleep(0.2)
            assert received.empty()  # two emits, one notification

            async with db.sessionmaker() as session:
                await outbox_service.emit(session, DiagnosticPing(), key="c")
                await session.rollback()
            await asyncio.sleep(0.2)
            assert received.empty()
        finally:
            await listener.close()

    async def test_a_savepoint_neither_wakes_early_nor_drops_the_outer_wake_up(self, db: Resources) -> None:
        listener = await asyncpg.connect(asyncpg_dsn(db.settings.db.url.get_secret_value()))
        received: asyncio.Queue[str] = asyncio.Queue()
        await listener.add_listener("outbox", lambda *args: received.put_nowait(args[2]))
        try:
            async with db.sessionmaker() as session:
                async with session.begin_nested():
                    await outbox_service.emit(session, DiagnosticPing(), key="in-savepoint")
                with pytest.raises(RuntimeError):
                    async with session.begin_nested():
                        raise RuntimeError("a step that failed and was rolled back to its savepoint")
                await asyncio.sleep(0.2)
                assert received.empty()  # released savepoint: not committed yet
                await session.commit()
            assert await asyncio.wait_for(received.get(), timeout=5) == "outbox"
        finally:
            await listener.close()

    async def test_wake_ups_asked_while_one_is_in_flight_go_out_together(self, db: Resources) -> None:
        listener = await asyncpg.connect(asyncpg_dsn(db.settings.db.url.get_secret_value()))
        received: asyncio.Queue[str] = asyncio.Queue()
        for channel in ("outbox", "provider_events"):
            await listener.add_listener(channel, lambda *args: received.put_nowait(args[2]))
        waker = CommitWaker(asyncpg_dsn(db.settings.db.url.get_secret_value()))
        try:
            for _ in range(50):
                waker.wake(("outbox",))
            waker.wake(("provider_events",))
            got = {await asyncio.wait_for(received.get(), timeout=5) for _ in range(2)}
            assert got == {"outbox", "provider_events"}
            await asyncio.sleep(0.2)
            assert 1 <= waker.sent <= 2  # 51 wake-ups, the first statement plus one for the rest
            assert received.qsize() <= 1  # "outbox" at most once more (from the second statement)
        finally:
            await waker.close()
            await listener.close()

    async def test_an_unreachable_database_costs_the_wake_up_only(self) -> None:
        waker = CommitWaker("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1, retry_after=60)
        waker.wake(("outbox",))  # never raises to the committed request
        await asyncio.sleep(0.5)
        waker.wake(("outbox",))  # failing: quiet for retry_after, no reconnect per commit
        assert waker._task is not None
        assert waker._task.done()
        await waker.close()
        waker.wake(("outbox",))  # closed: nothing
        assert waker.sent == 0


class TestPrune:
    async def test_deletes_only_rows_published_before_the_cutoff(self, db: Resources) -> None:
        now = datetime.now(UTC)
        async with transaction(db.sessionmaker) as session:
            old = await outbox_service.emit(session, DiagnosticPing(), key="old")
            recent = await outbox_service.emit(session, DiagnosticPing(), key="recent")
            pending = await outbox_service.emit(session, DiagnosticPing(), key="pending")
            await session.execute(
                text("UPDATE outbox_events SET published_at = :t WHERE id = :id"),
                {"t": now - timedelta(days=8), "id": old},
            )
            await session.execute(
                text("UPDATE outbox_events SET published_at = :t WHERE id = :id"), {"t": now, "id": recent}
            )

        async with transaction(db.sessionmaker) as session:
            deleted = await outbox_service.prune_published(session, older_than=now - timedelta(days=7))

        async with db.sessionmaker() as session:
            left = set((await session.execute(select(OutboxEvent.id))).scalars())
        assert deleted == 1
        assert left == {recent, pending}
