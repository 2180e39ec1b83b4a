"""Twins: the same hold resolution or reversal, with the same key, sent twice at the same moment.

A sequential retry replays the first result; a concurrent twin must too (migration 0010): the
second call waits for the hold (or reversed transfer) row lock while the first commits, and must
then return the first transfer (``replayed``) instead of ``hold_not_pending`` /
``transfer_already_reversed``. Money moves once.

Each scenario runs twice: with a forced interleaving (the second call is observed waiting on the
lock before the first commits, so the race happens every time) and as 30 free-running pairs
started together with ``asyncio.gather``, each call in its own transaction on its own connection.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest

from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting, Transfer
from payment_service.resources import Resources
from tests.ledger.helpers import NOW, audit, fund, rub

pytestmark = pytest.mark.asyncio(loop_scope="session")

PAYER = accounts.user_wallet("race-payer")
PAYEE = accounts.user_wallet("race-payee")
DEVELOPER = accounts.developer_balance("race-game")
ROUNDS = 30
AMOUNT = 100

Call = Callable[[asyncpg.Connection], Awaitable[Transfer]]


@pytest.fixture
async def pool(db: Resources) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db.settings.db.url.get_secret_value(), min_size=3, max_size=3)
    yield p
    await p.close()


async def _in_transaction(pool: asyncpg.Pool, call: Call) -> Transfer:
    async with pool.acquire() as conn, conn.transaction():
        return await call(conn)


async def _waiting_on_a_lock(observer: asyncpg.Connection, pid: int) -> None:
    """Return once backend ``pid`` waits for a lock (guarded: fails instead of hanging)."""
    for _ in range(2_000):
        event = await observer.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
        if event == "Lock":
            return
        await asyncio.sleep(0.005)
    pytest.fail(f"backend {pid} never waited for the lock")


async def _forced_twins(pool: asyncpg.Pool, call: Call) -> tuple[Transfer, Transfer]:
    """First call applied but not committed; the twin starts, misses the key, waits on the lock;
    then the first commits and the twin finishes."""
    async with pool.acquire() as first, pool.acquire() as second, pool.acquire() as observer:
        tx = first.transaction()
        await tx.start()
        try:
            a = await call(first)
        except BaseException:
            await tx.rollback()
            raise

        async def twin() -> Transfer:
            async with second.transaction():
                return await call(second)

        task = asyncio.create_task(twin())
        try:
            await _waiting_on_a_lock(observer, second.get_server_pid())
        except BaseException:
            await tx.rollback()
            await asyncio.gather(task, return_exceptions=True)
            raise
        await tx.commit()
        b = await task
    return a, b


async def _gathered_twins(pool: asyncpg.Pool, call: Call) -> tuple[Transfer, Transfer]:
    a, b = await asyncio.gather(_in_transaction(pool, call), _in_transaction(pool, call))
    return a, b


Twins = Callable[[asyncpg.Pool, Call], Awaitable[tuple[Transfer, Transfer]]]
MODES = [pytest.param(_forced_twins, 3, id="forced"), pytest.param(_gathered_twins, ROUNDS, id="gathered")]


def _one_applied_one_replayed(a: Transfer, b: Transfer) -> None:
    assert a.id == b.id
    assert sorted([a.replayed, b.replayed]) == [False, True]


async def _hold(conn: asyncpg.Connection, key: str, *, expires_in: timedelta | None = None) -> Transfer:
    return await ledger_service.hold(
        conn,
        postings=[Posting(PAYER, DEVELOPER, rub(AMOUNT))],
        idempotency_key=key,
        reference=f"race:{key}",
        reason="order_payment",
        now=NOW,
        expires_at=NOW + expires_in if expires_in is not None else None,
    )


async def _resolutions(conn: asyncpg.Connection, hold_id: uuid.UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM ledger_transfers WHERE pending_id = $1", hold_id))


@pytest.mark.parametrize(("twins", "rounds"), MODES)
@pytest.mark.parametrize("action", ["post", "void", "expire"])
async def test_a_hold_resolved_twice_at_once_with_one_key_replays_and_moves_money_once(
    db: Resources, pool: asyncpg.Pool, twins: Twins, rounds: int, action: str
) -> None:
    async with pool.acquire() as conn:
        await fund(conn, PAYER, AMOUNT * rounds, key="seed")
    for i in range(rounds):
        async with pool.acquire() as conn:
            h = await _hold(conn, f"h:{i}", expires_in=timedelta(minutes=1))

        async def resolve(conn: asyncpg.Connection, hold_id: uuid.UUID = h.id, i: int = i) -> Transfer:
            if action == "post":
                return await ledger_service.post_hold(conn, hold_id=hold_id, idempotency_key=f"post:{i}", now=NOW)
            if action == "void":
                return await ledger_service.void_hold(conn, hold_id=hold_id, idempotency_key=f"void:{i}", now=NOW)
            return await ledger_service.expire_hold(conn, hold_id=hold_id, now=NOW + timedelta(minutes=2))

        a, b = await twins(pool, resolve)
        _one_applied_one_replayed(a, b)
        async with pool.acquire() as conn:
            assert await _resolutions(conn, h.id) == 1
            assert (await ledger_service.get_hold(conn, h.id)).resolved_by == a.id

    payer = await ledger_service.balance(pool, PAYER)
    developer = await ledger_service.balance(pool, DEVELOPER)
    moved = AMOUNT * rounds if action == "post" else 0
    assert payer.posted == rub(AMOUNT * rounds - moved)
    assert payer.pending_out == rub(0)
    assert developer.posted == rub(moved)
    assert developer.pending_in == rub(0)
    async with pool.acquire() as conn:
        assert await audit(conn) == []


@pytest.mark.parametrize(("twins", "rounds"), MODES)
async def test_a_transfer_reversed_twice_at_once_with_one_key_replays_and_moves_money_once(
    db: Resources, pool: asyncpg.Pool, twins: Twins, rounds: int
) -> None:
    async with pool.acquire() as conn:
        await fund(conn, PAYER, AMOUNT * rounds, key="seed")
    for i in range(rounds):
        async with pool.acquire() as conn:
            t = await ledger_service.transfer(
                conn,
                postings=[Posting(PAYER, PAYEE, rub(AMOUNT))],
                idempotency_key=f"t:{i}",
                reference=f"race:t:{i}",
                reason="p2p",
                now=NOW,
            )

        async def reverse(conn: asyncpg.Connection, transfer_id: uuid.UUID = t.id, i: int = i) -> Transfer:
            return await ledger_service.reverse(conn, transfer_id=transfer_id, idempotency_key=f"rev:{i}", now=NOW)

        a, b = await twins(pool, reverse)
        _one_applied_one_replayed(a, b)
        assert a.reverses_id == t.id
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM ledger_transfers WHERE reverses_id = $1", t.id) == 1

    assert (await ledger_service.balance(pool, PAYER)).posted == rub(AMOUNT * rounds)
    assert (await ledger_service.balance(pool, PAYEE)).posted == rub(0)
    async with pool.acquire() as conn:
        assert await audit(conn) == []


async def test_a_twin_with_other_content_still_conflicts(db: Resources, pool: asyncpg.Pool) -> None:
    """The second lookup keeps the sequential answer for a key reused with other content."""
    async with pool.acquire() as conn:
        await fund(conn, PAYER, AMOUNT, key="seed")
        h = await _hold(conn, "h")
    calls = iter(["post", "void"])

    async def resolve(conn: asyncpg.Connection) -> Transfer:
        if next(calls) == "post":
            return await ledger_service.post_hold(conn, hold_id=h.id, idempotency_key="k", now=NOW)
        return await ledger_service.void_hold(conn, hold_id=h.id, idempotency_key="k", now=NOW)

    with pytest.raises(ledger_service.LedgerIdempotencyConflict):
        await _forced_twins(pool, resolve)
    async with pool.acquire() as conn:
        assert (await ledger_service.get_hold(conn, h.id)).status == "posted"
        assert await audit(conn) == []
