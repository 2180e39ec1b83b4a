"""Long-poll of a payment (``GET /v1/payments/{id}?wait=``) and the listener behind it."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from payment_service.db import ChangeListener, asyncpg_dsn, wake_after_commit
from payment_service.resources import Resources
from tests.payment.conftest import PaymentsEnv
from tests.payment.test_scenarios import create, get, provider_id


async def long_poll(env: PaymentsEnv, payment_id: str, wait: float, user: str = "u1") -> Any:
    return await env.client.get(
        f"/v1/payments/{payment_id}", params={"wait": wait}, headers=env.tokens.headers(env.tokens.user(user))
    )


async def requires_action(env: PaymentsEnv) -> str:
    r = await create(env, provider="yookassa")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "requires_action"
    return str(r.json()["id"])


class TestLongPoll:
    async def test_the_answer_comes_when_the_webhook_is_applied_not_at_the_deadline(
        self, payments: PaymentsEnv
    ) -> None:
        pid = await requires_action(payments)
        started = time.monotonic()
        polling = asyncio.create_task(long_poll(payments, pid, wait=20))
        await asyncio.sleep(0.3)
        assert not polling.done()  # nothing changed yet: it waits

        await payments.pay("yookassa", await provider_id(payments, pid), card_number=None, outcome=None)
        assert await payments.worker.apply_webhooks() >= 1  # commits; the waker NOTIFYs the payment's id

        r = await asyncio.wait_for(polling, 15)
        assert r.status_code == 200
        assert r.json()["status"] == "succeeded"
        assert time.monotonic() - started < 15  # woken by the change, long before wait=20 ran out

    async def test_a_final_payment_is_answered_at_once(self, payments: PaymentsEnv) -> None:
        pid = await requires_action(payments)
        await payments.pay("yookassa", await provider_id(payments, pid), card_number=None, outcome=None)
        await payments.worker.apply_webhooks()
        r = await asyncio.wait_for(long_poll(payments, pid, wait=20), 5)
        assert r.json()["status"] == "succeeded"

    async def test_nothing_changes_the_current_state_comes_after_wait(self, payments: PaymentsEnv) -> None:
        pid = await requires_action(payments)
        started = time.monotonic()
        r = await long_poll(payments, pid, wait=0.4)
        assert r.status_code == 200
        assert r.json()["status"] == "requires_action"
        assert time.monotonic() - started >= 0.4

    async def test_someone_elses_payment_is_not_found_without_waiting(self, payments: PaymentsEnv) -> None:
        pid = await requires_action(payments)
        started = time.monotonic()
        r = await long_poll(payments, pid, wait=20, user="mallory")
        assert r.status_code == 404
        assert r.json()["code"] == "payment_not_found"
        assert time.monotonic() - started < 5

    @pytest.mark.parametrize("wait", ["-1", "31", "soon"])
    async def test_a_wait_out_of_range_is_a_validation_problem(self, payments: PaymentsEnv, wait: str) -> None:
        pid = await requires_action(payments)
        r = await long_poll(payments, pid, wait=wait)  # type: ignore[arg-type]
        assert r.status_code == 422
        assert r.headers["content-type"].startswith("application/problem+json")

    async def test_without_the_listeners_connection_the_wait_polls_and_still_sees_the_change(
        self, payments: PaymentsEnv
    ) -> None:
        own = payments.resources.listener
        down = ChangeListener("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1, poll_interval=0.05)
        payments.resources.listener = down
        try:
            pid = await requires_action(payments)
            polling = asyncio.create_task(long_poll(payments, pid, wait=20))
            await asyncio.sleep(0.3)
            assert not polling.done()
            await payments.pay("yookassa", await provider_id(payments, pid), card_number=None, outcome=None)
            await payments.worker.apply_webhooks()
            r = await asyncio.wait_for(polling, 10)
            assert r.json()["status"] == "succeeded"
            assert not down.listening
        finally:
            payments.resources.listener = own
            await down.close()

    async def test_beyond_max_waiters_the_answer_comes_at_once(self, payments: PaymentsEnv) -> None:
        listener = payments.resources.listener
        assert listener is not None
        pid = await requires_action(payments)
        saved, listener.max_waiters = listener.max_waiters, 0
        try:
            started = time.monotonic()
            r = await long_poll(payments, pid, wait=20)
            assert r.json()["status"] == "requires_action"
            assert time.monotonic() - started < 5
        finally:
            listener.max_waiters = saved

    async def test_a_stopping_server_releases_its_waiters(self, payments: PaymentsEnv) -> None:
        own = payments.resources.listener
        stopping = ChangeListener(asyncpg_dsn(payments.resources.settings.db.url.get_secret_value()))
        payments.resources.listener = stopping
        try:
            pid = await requires_action(payments)
            polling = asyncio.create_task(long_poll(payments, pid, wait=20))
            for _ in range(100):
                if stopping.waiting:
                    break
                await asyncio.sleep(0.02)
            assert stopping.waiting == 1
            stopping.stop_waiting()
            r = await asyncio.wait_for(polling, 5)
            assert r.json()["status"] == "requires_action"
            assert (await asyncio.wait_for(long_poll(payments, pid, wait=20), 5)).status_code == 200  # no new wait
        finally:
            payments.resources.listener = own
            await stopping.close()

    async def test_the_waits_hold_no_pooled_connection(self, payments: PaymentsEnv) -> None:
        pool = payments.resources.engine.pool
        pid = await requires_action(payments)
        before = pool.checkedout()  # type: ignore[attr-defined]
        polls = [asyncio.create_task(long_poll(payments, pid, wait=20)) for _ in range(pool.size() + 3)]  # type: ignore[attr-defined]
        listener = payments.resources.listener
        assert listener is not None
        for _ in range(200):
            if listener.waiting == len(polls):
                break
            await asyncio.sleep(0.02)
        assert listener.waiting == len(polls)  # more waiters than the pool has connections
        for _ in range(200):  # each gives its connection back once it has read the payment
            if pool.checkedout() == before:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.02)
        assert pool.checkedout() == before  # type: ignore[attr-defined]
        assert not any(p.done() for p in polls)  # all still waiting
        await payments.pay("yookassa", await provider_id(payments, pid), card_number=None, outcome=None)
        await payments.worker.apply_webhooks()
        answers = await asyncio.wait_for(asyncio.gather(*polls), 15)
        assert {a.json()["status"] for a in answers} == {"succeeded"}
        assert (await get(payments, pid))["status"] == "succeeded"


class TestChangeListener:
    async def test_a_committed_change_wakes_the_waiter_of_its_key_only(self, db: Resources) -> None:
        listener = ChangeListener(asyncpg_dsn(db.settings.db.url.get_secret_value()))
        try:
            assert await listener.listen("test_changes")
            with listener.watch("test_changes", "a") as a, listener.watch("test_changes", "b") as b:
                assert a is not None
                assert b is not None
                async with db.sessionmaker() as session:
                    wake_after_commit(session, "test_changes", "a")
                    await session.rollback()
                assert await listener.wait(a, 0.3)  # timed out: rolled back, no NOTIFY
                assert not a.is_set()
                async with db.sessionmaker() as session:
                    wake_after_commit(session, "test_changes", "a")
                    await session.commit()
                await asyncio.wait_for(a.wait(), 5)
                await asyncio.sleep(0.2)
                assert not b.is_set()
            assert listener.waiting == 0
        finally:
            await listener.close()

    async def test_losing_the_connection_wakes_every_waiter(self, db: Resources) -> None:
        listener = ChangeListener(asyncpg_dsn(db.settings.db.url.get_secret_value()), retry_after=0)
        try:
            assert await listener.listen("test_changes")
            backend = listener._conn.get_server_pid()
            with listener.watch("test_changes", str(uuid.uuid4())) as waiter:
                assert waiter is not None
                async with db.engine.connect() as conn:
                    from sqlalchemy import text

                    await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend})
                await asyncio.wait_for(waiter.wait(), 5)  # a NOTIFY may have been missed: read again
                assert not listener.listening
                assert await listener.listen("test_changes")  # the next long-poll reconnects
        finally:
            await listener.close()
