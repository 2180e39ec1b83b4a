"""Long-poll of a payment (``GET /v1/payments/{id}?wait=``) and the listener behind it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import sqlalchemy.exc
import uvicorn
from prometheus_client import REGISTRY
from sqlalchemy import text

from payment_service.db import ChangeListener, asyncpg_dsn, wake_after_commit
from payment_service.middleware import InFlightLimitMiddleware
from payment_service.payment import service as payment_service
from payment_service.providers.errors import ProviderTimeout
from payment_service.resources import Resources
from payment_service.server import GracefulServer
from tests.live_server import serve
from tests.payment.conftest import PaymentsEnv
from tests.payment.test_scenarios import create, get, provider_id


async def long_poll(env: PaymentsEnv, payment_id: str, wait: Any, user: str = "u1") -> Any:
    return await env.client.get(
        f"/v1/payments/{payment_id}", params={"wait": wait}, headers=env.tokens.headers(env.tokens.user(user))
    )


async def requires_action(env: PaymentsEnv, user: str = "u1") -> str:
    r = await create(env, provider="yookassa", user=user)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "requires_action"
    return str(r.json()["id"])


async def pay(env: PaymentsEnv, payment_id: str) -> None:
    await env.pay("yookassa", await provider_id(env, payment_id), card_number=None, outcome=None)
    assert await env.worker.apply_webhooks() >= 1  # commits; the waker NOTIFYs the payment's id


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.01)


def limiter_of(app: Any) -> InFlightLimitMiddleware:
    node = app.middleware_stack
    while not isinstance(node, InFlightLimitMiddleware):
        node = node.app
    return node


@pytest.fixture
async def notify_only(payments: PaymentsEnv) -> AsyncIterator[ChangeListener]:
    """A listener that never rechecks nor polls on its own: an answer before the deadline can only
    come from a NOTIFY."""
    own = payments.resources.listener
    listener = ChangeListener(
        asyncpg_dsn(payments.resources.settings.db.url.get_secret_value()), recheck_interval=60, poll_interval=60
    )
    payments.resources.listener = listener
    try:
        yield listener
    finally:
        payments.resources.listener = own
        await listener.close()


class TestLongPoll:
    async def test_the_answer_comes_with_the_change_not_at_the_deadline(
        self, payments: PaymentsEnv, notify_only: ChangeListener
    ) -> None:
        limiter = limiter_of(payments.app)
        pid = await requires_action(payments)
        polling = asyncio.create_task(long_poll(payments, pid, wait=25))
        await until(lambda: limiter.parked == 1)  # read, registered, waiting outside the in-flight count
        assert notify_only.listening
        assert (notify_only.waiting, limiter.in_flight) == (1, 0)

        await pay(payments, pid)
        r = await asyncio.wait_for(polling, 15)
        assert r.status_code == 200
        assert r.json()["status"] == "succeeded"
        assert (notify_only.waiting, limiter.parked, limiter.in_flight) == (0, 0, 0)

    async def test_a_long_poll_while_the_server_drains_is_answered_at_once_and_counted(
        self, payments: PaymentsEnv, notify_only: ChangeListener
    ) -> None:
        pid = await requires_action(payments)
        before = REGISTRY.get_sample_value("payment_long_polls_total", {"outcome": "stopping"}) or 0.0
        notify_only.stop_waiting()

        r = await asyncio.wait_for(long_poll(payments, pid, wait=25), 5)

        assert r.status_code == 200
        assert r.json()["status"] == "requires_action"
        assert r.headers["connection"] == "close"  # the next long-poll goes to another instance
        assert REGISTRY.get_sample_value("payment_long_polls_total", {"outcome": "stopping"}) == before + 1

    async def test_a_change_committed_between_the_read_and_the_wait_still_wakes_it(
        self, payments: PaymentsEnv, notify_only: ChangeListener, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pid = await requires_action(payments)
        real_release = payment_service.release
        changed = False

        async def release_then_change(session: Any) -> None:
            nonlocal changed
            await real_release(session)
            if not changed:  # after the first read, before the wait
                changed = True
                await pay(payments, pid)
                await asyncio.sleep(0.3)  # the NOTIFY arrives before the waiter waits

        monkeypatch.setattr(payment_service, "release", release_then_change)
        r = await asyncio.wait_for(long_poll(payments, pid, wait=25), 15)
        assert changed
        assert r.json()["status"] == "succeeded"

    async def test_a_lost_notify_costs_one_recheck_not_the_whole_wait(self, payments: PaymentsEnv) -> None:
        own, waker = payments.resources.listener, payments.resources.waker
        assert waker is not None
        listener = ChangeListener(
            asyncpg_dsn(payments.resources.settings.db.url.get_secret_value()), recheck_interval=0.3
        )
        payments.resources.listener = listener
        quiet = waker._quiet_until
        try:
            pid = await requires_action(payments)
            polling = asyncio.create_task(long_poll(payments, pid, wait=25))
            await until(lambda: listener.waiting == 1)
            waker._quiet_until = asyncio.get_running_loop().time() + 60  # as after a failed NOTIFY: none sent
            await pay(payments, pid)
            r = await asyncio.wait_for(polling, 10)
            assert r.json()["status"] == "succeeded"
        finally:
            waker._quiet_until = quiet
            payments.resources.listener = own
            await listener.close()

    async def test_a_final_payment_is_answered_at_once(self, payments: PaymentsEnv) -> None:
        pid = await requires_action(payments)
        await pay(payments, pid)
        r = await asyncio.wait_for(long_poll(payments, pid, wait=25), 5)
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
        r = await asyncio.wait_for(long_poll(payments, pid, wait=25, user="mallory"), 5)
        assert r.status_code == 404
        assert r.json()["code"] == "payment_not_found"

    @pytest.mark.parametrize("wait", ["-1", "31", "soon", "nan"])
    async def test_a_wait_out_of_range_is_a_validation_problem(self, payments: PaymentsEnv, wait: str) -> None:
        pid = await requires_action(payments)
        r = await long_poll(payments, pid, wait=wait)
        assert r.status_code == 422
        assert r.headers["content-type"].startswith("application/problem+json")

    async def test_without_the_listeners_connection_waiters_poll_and_each_read_counts_as_in_flight(
        self, payments: PaymentsEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        limiter = limiter_of(payments.app)
        own = payments.resources.listener
        down = ChangeListener("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1, poll_interval=0.05)
        payments.resources.listener = down
        in_flight_at_reads: list[int] = []
        real_release = payment_service.release

        async def watched_release(session: Any) -> None:  # right after each of the long-poll's reads
            in_flight_at_reads.append(limiter.in_flight)
            await real_release(session)

        try:
            pid = await requires_action(payments)
            polls = [asyncio.create_task(long_poll(payments, pid, wait=25)) for _ in range(5)]
            await until(lambda: limiter.parked == 5)
            monkeypatch.setattr(payment_service, "release", watched_release)
            await pay(payments, pid)
            answers = await asyncio.wait_for(asyncio.gather(*polls), 10)
            assert {a.json()["status"] for a in answers} == {"succeeded"}
            assert not down.listening
            assert in_flight_at_reads
            assert min(in_flight_at_reads) >= 1  # a waiter's read is in flight: the limit sees it
        finally:
            payments.resources.listener = own
            await down.close()

    async def test_beyond_the_process_bound_a_503_with_retry_after(self, payments: PaymentsEnv) -> None:
        listener = payments.resources.listener
        assert listener is not None
        pid = await requires_action(payments)
        saved, listener.max_waiters = listener.max_waiters, 0
        try:
            r = await asyncio.wait_for(long_poll(payments, pid, wait=25), 5)
        finally:
            listener.max_waiters = saved
        assert r.status_code == 503
        assert r.json()["code"] == "long_polls_at_capacity"
        assert int(r.headers["retry-after"]) >= 1

    async def test_one_user_cannot_hold_every_waiting_slot(self, payments: PaymentsEnv) -> None:
        listener = payments.resources.listener
        assert listener is not None
        pid = await requires_action(payments)
        other = await requires_action(payments, user="u2")
        saved, listener.max_per_owner = listener.max_per_owner, 2
        try:
            polls = [asyncio.create_task(long_poll(payments, pid, wait=25)) for _ in range(2)]
            await until(lambda: listener.waiting == 2)
            third = await asyncio.wait_for(long_poll(payments, pid, wait=25), 5)
            someone_else = asyncio.create_task(long_poll(payments, other, wait=25, user="u2"))
            await until(lambda: listener.waiting == 3)  # another user still gets a slot
            await pay(payments, pid)
            await pay(payments, other)
            await asyncio.wait_for(asyncio.gather(*polls, someone_else), 15)
        finally:
            listener.max_per_owner = saved
        assert third.status_code == 429
        assert third.json()["code"] == "too_many_long_polls"
        assert "retry-after" in third.headers

    async def test_a_draining_server_answers_its_waiters_and_closes_their_connections(
        self, payments: PaymentsEnv
    ) -> None:
        own = payments.resources.listener
        draining = ChangeListener(asyncpg_dsn(payments.resources.settings.db.url.get_secret_value()))
        payments.resources.listener = draining
        try:
            pid = await requires_action(payments)
            polling = asyncio.create_task(long_poll(payments, pid, wait=25))
            await until(lambda: draining.waiting == 1)
            draining.stop_waiting()
            r = await asyncio.wait_for(polling, 5)
            assert r.json()["status"] == "requires_action"
            assert r.headers["connection"] == "close"
            again = await asyncio.wait_for(long_poll(payments, pid, wait=25), 5)  # no new wait either
            assert again.status_code == 200
            assert again.headers["connection"] == "close"
        finally:
            payments.resources.listener = own
            await draining.close()

    async def test_a_cancelled_waiter_gives_back_its_counts(self, payments: PaymentsEnv) -> None:
        limiter = limiter_of(payments.app)
        listener = payments.resources.listener
        assert listener is not None
        pid = await requires_action(payments)
        polling = asyncio.create_task(long_poll(payments, pid, wait=25))
        await until(lambda: limiter.parked == 1)
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
        assert (limiter.in_flight, limiter.parked, listener.waiting) == (0, 0, 0)

    async def test_a_client_that_hangs_up_frees_its_waiter_at_once(self, payments: PaymentsEnv) -> None:
        # a real server: only a real socket's close reaches the app as http.disconnect
        listener = payments.resources.listener
        assert listener is not None
        limiter = limiter_of(payments.app)
        pid = await requires_action(payments)
        gone_before = REGISTRY.get_sample_value("payment_long_polls_total", {"outcome": "client_gone"}) or 0.0
        async with serve(payments.app) as live:
            _, writer = await asyncio.open_connection("127.0.0.1", live.port)
            writer.write(
                f"GET /v1/payments/{pid}?wait=30 HTTP/1.1\r\nHost: payments\r\n"
                f"Authorization: Bearer {payments.tokens.user('u1')}\r\n\r\n".encode()
            )
            await writer.drain()
            await until(lambda: listener.waiting == 1 and limiter.parked == 1)
            writer.close()
            await writer.wait_closed()
            await until(lambda: listener.waiting == 0, timeout=10)  # not after the 30 s it asked for
            await until(lambda: (limiter.in_flight, limiter.parked) == (0, 0))
        gone = REGISTRY.get_sample_value("payment_long_polls_total", {"outcome": "client_gone"})
        assert gone == gone_before + 1

    async def test_the_waits_hold_no_pooled_connection(self, payments: PaymentsEnv) -> None:
        pool: Any = payments.resources.engine.pool
        limiter = limiter_of(payments.app)
        pid = await requires_action(payments)
        before = pool.checkedout()
        service = payments.tokens.headers(payments.tokens.service("streaming", ["payments:read"]))  # no per-user cap
        polls = [
            asyncio.create_task(payments.client.get(f"/v1/payments/{pid}", params={"wait": 25}, headers=service))
            for _ in range(pool.size() + 3)
        ]
        await until(lambda: limiter.parked == len(polls))  # more waiters than the pool has connections
        assert pool.checkedout() == before
        await pay(payments, pid)
        answers = await asyncio.wait_for(asyncio.gather(*polls), 15)
        assert {a.json()["status"] for a in answers} == {"succeeded"}
        assert (await get(payments, pid))["status"] == "succeeded"


class TestGracefulServer:
    async def test_the_first_signal_releases_the_waiters(self, payments: PaymentsEnv) -> None:
        listener = ChangeListener(asyncpg_dsn(payments.resources.settings.db.url.get_secret_value()))

        class _App:
            class state:
                resources = Resources.__new__(Resources)

        _App.state.resources.listener = listener
        server = GracefulServer(uvicorn.Config(app=lambda *_: None), app=_App(), drain_seconds=30)  # type: ignore[arg-type]
        with listener.watch("test_changes", "k") as waiter:
            assert waiter is not None
            server.handle_exit(signal.SIGTERM, None)
            await server.on_tick(0)
            assert waiter.is_set()
        assert listener.stopping
        assert not server.should_exit  # still draining: uvicorn's shutdown comes after the delay
        await listener.close()


class TestChangeListener:
    async def test_a_waiter_whose_client_left_stops_waiting_for_a_read_slot(self) -> None:
        listener = ChangeListener("postgresql://unused", max_concurrent_reads=1)  # reads slots only
        held = await listener.read_slot(1)
        assert held is not None
        async with held:  # every slot is taken
            gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiting = asyncio.create_task(listener.read_slot(30, gone=gone))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            gone.set_result(None)  # the client hung up
            assert await asyncio.wait_for(waiting, 5) is None
        again = await listener.read_slot(0.5)  # the slot was not leaked by the abandoned wait
        assert again is not None
        async with again:
            pass

    async def test_a_committed_change_wakes_the_waiter_of_its_key_only(self, db: Resources) -> None:
        listener = ChangeListener(asyncpg_dsn(db.settings.db.url.get_secret_value()), recheck_interval=60)
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

    async def test_a_lost_connection_is_noticed_and_the_next_listen_reconnects(self, db: Resources) -> None:
        listener = ChangeListener(asyncpg_dsn(db.settings.db.url.get_secret_value()), retry_after=0)
        try:
            assert await listener.listen("test_changes")
            backend = listener._conn.get_server_pid()
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend})
            await until(lambda: not listener.listening)
            assert await listener.listen("test_changes")
            with listener.watch("test_changes", key := str(uuid.uuid4())) as waiter:
                assert waiter is not None
                async with db.sessionmaker() as session:
                    wake_after_commit(session, "test_changes", key)
                    await session.commit()
                await asyncio.wait_for(waiter.wait(), 5)  # listening again on the new connection
        finally:
            await listener.close()

    async def test_a_connection_that_stops_answering_is_dropped_by_the_ping(self, db: Resources) -> None:
        listener = ChangeListener(
            asyncpg_dsn(db.settings.db.url.get_secret_value()), ping_interval=0.1, connect_timeout=0.5
        )
        try:
            assert await listener.listen("test_changes")
            stuck = asyncio.Event()

            async def never_answers(_conn: Any) -> None:
                await asyncio.wait_for(stuck.wait(), 0.5)  # as a half-open TCP connection: no answer, no close

            listener._probe = never_answers  # type: ignore[method-assign]
            await until(lambda: not listener.listening, timeout=5)
        finally:
            await listener.close()


@contextlib.contextmanager
def pool_exhausted_after_the_provider_call(
    env: PaymentsEnv, monkeypatch: pytest.MonkeyPatch, *, times: int = 1
) -> Iterator[list[int]]:
    """The pool refuses its next ``times`` checkouts (as after ``pool_timeout`` seconds of waiting
    each) once the provider has answered the first call: the answer exists only in memory then."""
    pool: Any = env.resources.engine.sync_engine.pool
    real_get, real_call = pool._do_get, payment_service._call_authorize
    armed, refused, calls = [0], [0], [0]

    def do_get() -> Any:
        if armed[0]:
            armed[0] -= 1
            refused[0] += 1
            raise sqlalchemy.exc.TimeoutError("QueuePool limit reached, connection timed out")
        return real_get()

    async def call_then_arm(*args: Any, **kwargs: Any) -> Any:
        outcome = await real_call(*args, **kwargs)
        calls[0] += 1
        if calls[0] == 1:
            armed[0] = times
        return outcome

    monkeypatch.setattr(pool, "_do_get", do_get)
    monkeypatch.setattr(payment_service, "_call_authorize", call_then_arm)
    yield refused


def first_create_answer_lost(env: PaymentsEnv, monkeypatch: pytest.MonkeyPatch, provider: str) -> list[str]:
    """The provider's first create is made (payment, page) but its answer times out on the way
    back; later creates answer normally. Returns the attempt ids the creates were called with."""
    registry = env.resources.providers
    assert registry is not None
    adapter = registry.resolve(provider)
    real = adapter.authorize
    calls: list[str] = []

    async def made_then_timed_out(request: Any) -> Any:
        calls.append(request.idempotency_key)
        result = await real(request)
        if len(calls) == 1:
            raise ProviderTimeout("read timeout", provider=provider)
        return result

    monkeypatch.setattr(adapter, "authorize", made_then_timed_out)
    return calls


async def paid_once_at_tbank(env: PaymentsEnv, payment_id: str) -> None:
    """The customer pays on the page the payment shows; exactly one charge at T-Bank follows."""
    await env.pay("tbank", await provider_id(env, payment_id), card_number=None, outcome=None)
    assert await env.worker.apply_webhooks() >= 1
    assert (await get(env, payment_id))["status"] == "succeeded"
    charged = [e for e in env.emulators.state("tbank").ledger if e.kind in ("charge", "capture")]
    assert len(charged) == 1  # a lost payment (two at T-Bank for one order) is never paid


class TestProviderAnswerKept:
    async def test_a_briefly_exhausted_pool_does_not_throw_away_the_customers_payment_page(
        self, payments: PaymentsEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with pool_exhausted_after_the_provider_call(payments, monkeypatch) as refused:
            r = await create(payments, provider="tbank")
        assert refused == [1]
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "requires_action"
        assert r.json()["action"]["url"]  # T-Bank gives the page URL once: it was kept and applied

    async def test_a_page_lost_with_its_answer_is_made_again_by_the_clients_retry(
        self, payments: PaymentsEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        key = uuid.uuid4().hex
        tries = payment_service.APPLY_CONNECTION_TRIES
        with pool_exhausted_after_the_provider_call(payments, monkeypatch, times=tries) as refused:
            lost = await create(payments, provider="tbank", key=key)
        assert refused == [tries]
        assert (lost.status_code, lost.json()["code"]) == (503, "database_busy")
        # The status sync finds the payment at T-Bank, but GetState has no page URL: applying it
        # would leave the payment waiting for a customer with nothing to open.
        await payments.scalar("UPDATE payment_attempts SET next_sync_at = now() - interval '1 second' RETURNING 1")
        await payments.worker.sync()
        assert await payments.scalar("SELECT status FROM payment_attempts") == "created"

        retried = await create(payments, provider="tbank", key=key)  # the client's retry, same key

        assert retried.status_code == 201, retried.text
        body = retried.json()
        assert body["status"] == "requires_action"
        assert body["action"]["url"]
        await paid_once_at_tbank(payments, body["id"])

    async def test_a_retry_applies_what_the_provider_already_has_instead_of_creating_it_again(
        self, payments: PaymentsEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # T-Bank charged the first payment (the emulator's drop_after_charge: kopecks 55) and its
        # answer was lost, then no connection was free: a second Init would give the customer a
        # second page to pay
        key = uuid.uuid4().hex
        tries = payment_service.APPLY_CONNECTION_TRIES
        with pool_exhausted_after_the_provider_call(payments, monkeypatch, times=tries):
            lost = await create(payments, provider="tbank", amount="499.55", key=key)
        assert lost.status_code == 503

        retried = await create(payments, provider="tbank", amount="499.55", key=key)

        assert retried.status_code == 201, retried.text
        assert retried.json()["status"] == "succeeded"
        state = payments.emulators.state("tbank")
        assert [(e.kind, e.amount_minor) for e in state.ledger] == [("charge", 49_955)]
        orders = [p for p in state.payments.values() if p.order_id == retried.json()["attempts"][0]["id"]]
        assert len(orders) == 1  # no second Init

    async def test_a_page_lost_in_transit_is_made_again_by_the_status_sync(
        self, payments: PaymentsEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls = first_create_answer_lost(payments, monkeypatch, "tbank")
        body = (await create(payments, provider="tbank")).json()
        assert (body["status"], body["attempts"][0]["status"], body["action"]) == ("pending", "unknown", None)

        await payments.scalar("UPDATE payment_attempts SET next_sync_at = now() - interval '1 second' RETURNING 1")
        await payments.worker.sync()  # GetState: waiting for the customer, no page; so Init again

        again = await get(payments, body["id"])
        assert again["status"] == "requires_action"
        assert again["action"]["url"]
        assert len(calls) == 2
        await paid_once_at_tbank(payments, body["id"])

    async def test_a_lost_sber_page_is_rebuilt_from_the_order_id_when_its_address_is_configured(
        self, payments: PaymentsEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Sber refuses a second registration and its status read has no formUrl; with the page
        # address configured the sync gives the customer the page of the order already registered
        registry = payments.resources.providers
        assert registry is not None
        page = "http://sber.emu/payment/merchants/emulator/payment_ru.html?mdOrder={md_order}"
        monkeypatch.setattr(registry.settings.sber, "payment_page_url", page)
        calls = first_create_answer_lost(payments, monkeypatch, "sber")
        body = (await create(payments, provider="sber")).json()
        assert body["attempts"][0]["status"] == "unknown"

        await payments.scalar("UPDATE payment_attempts SET next_sync_at = now() - interval '1 second' RETURNING 1")
        await payments.worker.sync()

        assert len(calls) == 2
        md_order = await provider_id(payments, body["id"])
        after = await get(payments, body["id"])
        assert after["status"] == "requires_action"
        assert after["action"]["url"] == page.replace("{md_order}", md_order)  # what register.do answered first
        assert len(payments.emulators.state("sber").orders) == 1  # the one order, not a second
        await payments.pay("sber", md_order, card_number=None, outcome=None)
        assert await payments.worker.apply_webhooks() >= 1
        assert (await get(payments, body["id"]))["status"] == "succeeded"

    async def test_without_a_new_page_to_be_had_the_sync_still_lets_the_payment_expire(
        self, payments: PaymentsEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Sber refuses a second registration of the order and its status read has no formUrl: the
        # page cannot be made again, so the answer is applied as before (an unknown outcome would
        # never expire)
        calls = first_create_answer_lost(payments, monkeypatch, "sber")
        body = (await create(payments, provider="sber")).json()
        assert body["attempts"][0]["status"] == "unknown"

        await payments.scalar("UPDATE payment_attempts SET next_sync_at = now() - interval '1 second' RETURNING 1")
        await payments.worker.sync()

        assert len(calls) == 2  # it tried
        after = await get(payments, body["id"])
        assert after["attempts"][0]["status"] == "requires_action"  # no longer unknown
        await payments.scalar("UPDATE payments SET expires_at = now() - interval '1 second' RETURNING 1")
        await payments.worker.expire()
        assert (await get(payments, body["id"]))["status"] == "expired"


class TestRecheckBudget:
    async def test_many_waiters_recheck_less_often(self) -> None:
        listener = ChangeListener("postgresql://unused", recheck_interval=0.05, poll_interval=0.05, max_recheck_rate=10)
        with contextlib.ExitStack() as stack:
            events = [stack.enter_context(listener.watch("c", str(i))) for i in range(20)]
            started = time.monotonic()
            assert events[0] is not None
            assert await listener.wait(events[0], 1.0)
            assert time.monotonic() - started >= 0.9  # 20 waiters at 10 rechecks/s: every 2 s, not 0.05 s
        started = time.monotonic()
        with listener.watch("c", "alone") as alone:
            assert alone is not None
            await listener.wait(alone, 1.0)
        assert time.monotonic() - started < 0.9  # one waiter: its own interval
        await listener.close()
