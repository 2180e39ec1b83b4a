"""Hundreds of concurrent postings through real Postgres connections.

Many of them touch the same hot accounts (platform fees, a developer, a streamer), some debit a
hot account (payouts), some are sent twice at the same moment with the same key, wallets run
dry. Afterwards every balance must equal the initial balance plus the acknowledged transfers
exactly (no lost or doubled update), G1 must hold, and no posting may have hit a deadlock.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from payment_service.kit.money import Money
from payment_service.ledger import accounts, tasks
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.resources import Resources
from tests.ledger.helpers import NOW, audit, fund, rub

pytestmark = pytest.mark.asyncio(loop_scope="session")

WALLETS = [accounts.user_wallet(f"player{i}") for i in range(24)]
DEVELOPER = accounts.developer_balance("hit-game")
FEES = accounts.platform_fees()
STREAMER = accounts.streamer_balance("popular")
WORLD = accounts.external_world()
CONNECTIONS = 16


@dataclass
class Op:
    key: str
    postings: list[Posting]


@pytest.fixture
async def pool(db: Resources) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db.settings.db.url.get_secret_value(), min_size=CONNECTIONS, max_size=CONNECTIONS)
    yield p
    await p.close()


def _operations(rng: random.Random, n: int) -> list[Op]:
    ops: list[Op] = []
    for i in range(n):
        roll = rng.random()
        payer = rng.choice(WALLETS)
        if roll < 0.5:  # a purchase: every one credits the hot fee and developer accounts
            developer, fee = rub(rng.randint(50, 500)).allocate([70, 30])
            postings = [Posting(payer, DEVELOPER, developer), Posting(payer, FEES, fee)]
        elif roll < 0.7:  # a donation to one popular streamer
            postings = [Posting(payer, STREAMER, rub(rng.randint(10, 300)))]
        elif roll < 0.85:  # player to player
            payee = rng.choice([w for w in WALLETS if w is not payer])
            postings = [Posting(payer, payee, rub(rng.randint(10, 300)))]
        else:  # a payout: debits a hot account, under its lock, against its exact balance
            source = rng.choice([STREAMER, DEVELOPER, FEES])
            postings = [Posting(source, WORLD, rub(rng.randint(100, 2_000)))]
        ops.append(Op(key=f"op:{i}", postings=postings))
    return ops


async def _fold_until(stop: asyncio.Event, pool: asyncpg.Pool) -> int:
    folds = 0
    async with pool.acquire() as conn:
        while not stop.is_set():
            await tasks.fold_deltas(conn, now=NOW)
            folds += 1
            await asyncio.sleep(0.01)
    return folds


async def test_concurrent_postings_on_hot_accounts_lose_nothing_and_never_deadlock(
    db: Resources, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        for w in WALLETS:
            await fund(conn, w, 2_000, key=f"seed:{w.code}")
        await ledger_service.ensure_accounts(conn, [DEVELOPER, FEES, STREAMER])
    initial = await ledger_service.balances(pool, [*WALLETS, DEVELOPER, FEES, STREAMER, WORLD])
    rng = random.Random(20261126)
    ops = _operations(rng, 500)
    # 40 operations are also sent a second time, at the same moment, with the same key.
    twins = rng.sample(ops, 40)
    submissions = ops + twins
    rng.shuffle(submissions)
    outcomes: Counter[str] = Counter()
    created: dict[str, Op] = {}
    replayed: Counter[str] = Counter()
    by_key_id: dict[str, set[object]] = {}

    async def submit(op: Op) -> None:
        async with pool.acquire() as conn:
            try:
                t = await ledger_service.transfer(
                    conn, postings=op.postings, idempotency_key=op.key, reference=op.key, reason="test", now=NOW
                )
            except ledger_service.InsufficientFunds:
                outcomes["insufficient"] += 1
                return
            except ledger_service.LedgerBusy:
                outcomes["busy"] += 1
                return
            by_key_id.setdefault(op.key, set()).add(t.id)
            if t.replayed:
                replayed[op.key] += 1
            else:
                assert op.key not in created, f"{op.key} applied twice"
                created[op.key] = op
            outcomes["ok"] += 1

    stop = asyncio.Event()
    folder = asyncio.create_task(_fold_until(stop, pool))
    await asyncio.gather(*(submit(op) for op in submissions))
    stop.set()
    assert await folder > 0

    assert outcomes["busy"] == 0, "a posting deadlocked or had to be retried"
    assert outcomes["ok"] > 300
    assert outcomes["insufficient"] > 0, "the test should also drain some accounts"
    assert all(len(ids) == 1 for ids in by_key_id.values()), "a key produced two transfers"
    expected = {b.account_id: b.raw_posted for b in initial.values()}
    for op in created.values():
        for p in op.postings:
            expected[p.debit.id] -= p.amount.amount_minor
            expected[p.credit.id] += p.amount.amount_minor
    final = await ledger_service.balances(pool, [*WALLETS, DEVELOPER, FEES, STREAMER, WORLD])
    assert {k: b.raw_posted for k, b in final.items()} == expected
    assert all(b.available.amount_minor >= 0 for b in final.values() if b.code != WORLD.code)
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT count(*) FROM ledger_transfers WHERE idempotency_key LIKE 'op:%'")
        assert stored == len(created)
        assert await audit(conn) == []


async def test_a_wallet_is_never_overdrawn_by_concurrent_spends(db: Resources, pool: asyncpg.Pool) -> None:
    wallet = WALLETS[0]
    async with pool.acquire() as conn:
        await fund(conn, wallet, 1_000, key="seed")
    rng = random.Random(7)
    amounts = [rng.randint(1, 40) for _ in range(200)]
    accepted: list[int] = []

    async def spend(i: int, amount: int) -> None:
        async with pool.acquire() as conn:
            try:
                await ledger_service.transfer(
                    conn,
                    postings=[Posting(wallet, FEES, rub(amount))],
                    idempotency_key=f"spend:{i}",
                    reference="spend",
                    reason="test",
                    now=NOW,
                )
                accepted.append(amount)
            except ledger_service.InsufficientFunds:
                pass

    await asyncio.gather(*(spend(i, a) for i, a in enumerate(amounts)))

    balance = await ledger_service.balance(pool, wallet)
    assert sum(accepted) <= 1_000
    assert balance.posted == Money(1_000 - sum(accepted), "RUB")
    assert balance.available.amount_minor >= 0
    # every refusal was a true one: the cheapest refused spend did not fit any more at the end
    assert len(accepted) < len(amounts)
    async with pool.acquire() as conn:
        assert await audit(conn) == []


async def test_holds_on_one_wallet_posted_and_voided_concurrently(db: Resources, pool: asyncpg.Pool) -> None:
    wallet = WALLETS[1]
    async with pool.acquire() as conn:
        await fund(conn, wallet, 10_000, key="seed")
        holds = [
            await ledger_service.hold(
                conn,
                postings=[Posting(wallet, DEVELOPER, rub(100)), Posting(wallet, FEES, rub(50))],
                idempotency_key=f"h:{i}",
                reference=f"order:{i}",
                reason="order_payment",
                now=NOW,
            )
            for i in range(40)
        ]
    results: Counter[str] = Counter()

    async def resolve(i: int, hold_id: object, action: str) -> None:
        async with pool.acquire() as conn:
            try:
                if action == "post":
                    await ledger_service.post_hold(conn, hold_id=hold_id, idempotency_key=f"{action}:{i}", now=NOW)
                else:
                    await ledger_service.void_hold(conn, hold_id=hold_id, idempotency_key=f"{action}:{i}", now=NOW)
                results[action] += 1
            except ledger_service.HoldNotPending:
                results["lost_race"] += 1

    await asyncio.gather(*(resolve(i, h.id, action) for i, h in enumerate(holds) for action in ("post", "void")))

    assert results["post"] + results["void"] == 40
    assert results["lost_race"] == 40
    balance = await ledger_service.balance(pool, wallet)
    assert balance.pending_out == rub(0)
    assert balance.posted == rub(10_000 - 150 * results["post"])
    async with pool.acquire() as conn:
        assert await audit(conn) == []
