from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.kit.money import Money
from payment_service.ledger import accounts, tasks
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.models.ledger import EntryPhase, HoldStatus, TransferKind
from payment_service.resources import Resources
from tests.ledger.helpers import NOW, audit, fund, rub

pytestmark = pytest.mark.asyncio(loop_scope="session")

WALLET = accounts.user_wallet("alice")
OTHER = accounts.user_wallet("bob")
DEVELOPER = accounts.developer_balance("studio")
FEES = accounts.platform_fees()
VAT = accounts.platform_vat_payable()


@pytest.fixture
async def session(db: Resources) -> AsyncIterator[AsyncSession]:
    async with db.sessionmaker() as s:
        yield s
        await s.rollback()


@pytest.fixture
async def conn(db: Resources) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(db.settings.db.url.get_secret_value())
    yield c
    await c.close()


def purchase(total: int) -> list[Posting]:
    """A game bought from the wallet: 70 % developer, 20 % platform fee, 10 % VAT."""
    developer, fee, vat = rub(total).allocate([70, 20, 10])
    return [Posting(WALLET, DEVELOPER, developer), Posting(WALLET, FEES, fee), Posting(WALLET, VAT, vat)]


class TestTransfer:
    async def test_posts_a_multi_leg_purchase_atomically(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 100_000, key="top-up")

        t = await ledger_service.transfer(
            session,
            postings=purchase(99_999),
            idempotency_key="order-1",
            reference="order:1",
            reason="order_payment",
            now=NOW,
        )

        balances = await ledger_service.balances(session, [WALLET, DEVELOPER, FEES, VAT])
        assert balances[WALLET.id].posted == rub(1)
        assert balances[DEVELOPER.id].posted == rub(69_999)
        assert balances[FEES.id].posted == rub(20_000)
        assert balances[VAT.id].posted == rub(10_000)
        assert t.kind is TransferKind.transfer
        assert not t.replayed
        assert sum(leg.amount.amount_minor for leg in t.legs) == 0
        assert await audit(session) == []

    async def test_accounts_are_created_on_first_use(self, session: AsyncSession) -> None:
        assert (await ledger_service.balance(session, WALLET)).posted == rub(0)

        await fund(session, WALLET, 500, key="first")

        assert (await ledger_service.balance(session, WALLET)).posted == rub(500)

    async def test_a_retry_with_the_same_key_returns_the_first_transfer_and_changes_nothing(
        self, session: AsyncSession
    ) -> None:
        await fund(session, WALLET, 1_000, key="top-up")
        first = await ledger_service.transfer(
            session, postings=purchase(1_000), idempotency_key="k", reference="order:1", reason="order_payment", now=NOW
        )

        again = await ledger_service.transfer(
            session,
            postings=purchase(1_000),
            idempotency_key="k",
            reference="order:1",
            reason="order_payment",
            now=NOW + timedelta(minutes=5),
        )

        assert again.replayed
        assert again.id == first.id
        assert {(leg.account_id, leg.amount) for leg in again.legs} == {
            (leg.account_id, leg.amount) for leg in first.legs
        }
        assert (await ledger_service.balance(session, WALLET)).posted == rub(0)

    async def test_the_same_key_with_different_content_is_an_error(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 1_000, key="top-up")
        await ledger_service.transfer(
            session, postings=purchase(500), idempotency_key="k", reference="order:1", reason="order_payment", now=NOW
        )

        with pytest.raises(ledger_service.LedgerIdempotencyConflict):
            await ledger_service.transfer(
                session,
                postings=purchase(600),
                idempotency_key="k",
                reference="order:1",
                reason="order_payment",
                now=NOW,
            )

    async def test_insufficient_funds_reports_the_shortfall_and_writes_nothing(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 300, key="top-up")

        with pytest.raises(ledger_service.InsufficientFunds) as caught:
            await ledger_service.transfer(
                session, postings=purchase(1_000), idempotency_key="k", reference="order:1", reason="x", now=NOW
            )

        assert caught.value.shortfall == rub(700)
        assert caught.value.extra["shortfall"] == {"value": "7.00", "currency": "RUB"}
        assert (await ledger_service.balance(session, WALLET)).posted == rub(300)
        assert await ledger_service.find_transfers(session, reference="order:1") == []
        # the transaction is still usable, and the key is still free
        await fund(session, WALLET, 700, key="top-up-2")
        await ledger_service.transfer(
            session, postings=purchase(1_000), idempotency_key="k", reference="order:1", reason="x", now=NOW
        )

    async def test_a_ceiling_is_enforced_under_the_lock(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 900, key="top-up")

        with pytest.raises(ledger_service.LimitExceeded) as caught:
            await ledger_service.transfer(
                session,
                postings=[Posting(accounts.external_world(), WALLET, rub(200))],
                idempotency_key="k",
                reference="top-up:2",
                reason="top_up",
                now=NOW,
                ceilings={WALLET: rub(1_000)},
            )

        assert caught.value.excess == rub(100)
        assert (await ledger_service.balance(session, WALLET)).posted == rub(900)

    async def test_money_must_be_well_formed(self) -> None:
        with pytest.raises(TypeError):
            Posting(WALLET, OTHER, 100)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="positive"):
            Posting(WALLET, OTHER, rub(0))
        with pytest.raises(ValueError, match="currency"):
            Posting(WALLET, accounts.user_wallet("bob", "KZT"), rub(1))
        with pytest.raises(ValueError, match="different accounts"):
            Posting(WALLET, WALLET, rub(1))

    async def test_the_database_rejects_an_unbalanced_transfer(self, conn: asyncpg.Connection) -> None:
        await fund(conn, WALLET, 100, key="top-up")

        with pytest.raises(asyncpg.PostgresError) as caught:
            await conn.fetchrow(
                "SELECT * FROM ledger_post($1, 'bad', 'fp', 'transfer', NULL, NULL, 'r', 'x', NULL, now(), NULL,"
                " $2::uuid[], ARRAY[-100, 99]::bigint[], ARRAY['posted', 'posted'], NULL, NULL)",
                uuid.uuid4(),
                [WALLET.id, accounts.external_world().id],
            )

        assert caught.value.sqlstate == "LD001"

    async def test_runs_on_a_bare_asyncpg_connection_in_one_statement(self, conn: asyncpg.Connection) -> None:
        await fund(conn, WALLET, 1_000, key="top-up")

        await ledger_service.transfer(
            conn,
            postings=[Posting(WALLET, OTHER, rub(250))],
            idempotency_key="p2p",
            reference="p2p:1",
            reason="p2p",
            now=NOW,
        )

        assert (await ledger_service.balance(conn, OTHER)).posted == rub(250)
        assert await audit(conn) == []


class TestHolds:
    async def test_a_hold_reserves_without_moving_posted_balances(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 1_000, key="top-up")

        await ledger_service.hold(
            session, postings=purchase(600), idempotency_key="h", reference="order:1", reason="order_payment", now=NOW
        )

        wallet = await ledger_service.balance(session, WALLET)
        developer = await ledger_service.balance(session, DEVELOPER)
        assert (wallet.posted, wallet.pending_out, wallet.available) == (rub(1_000), rub(600), rub(400))
        assert (developer.posted, developer.pending_in) == (rub(0), rub(420))
        with pytest.raises(ledger_service.InsufficientFunds):
            await ledger_service.hold(
                session, postings=purchase(500), idempotency_key="h2", reference="order:2", reason="x", now=NOW
            )

    async def test_posting_in_full_moves_the_held_amounts(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 1_000, key="top-up")
        h = await ledger_service.hold(
            session, postings=purchase(1_000), idempotency_key="h", reference="order:1", reason="order_payment", now=NOW
        )

        posted = await ledger_service.post_hold(session, hold_id=h.id, idempotency_key="post", now=NOW)

        assert posted.kind is TransferKind.post
        assert posted.pending_id == h.id
        assert posted.reason == "order_payment"
        assert posted.reference == "order:1"
        balances = await ledger_service.balances(session, [WALLET, DEVELOPER, FEES])
        assert balances[WALLET.id].posted == rub(0)
        assert balances[WALLET.id].pending_out == rub(0)
        assert balances[DEVELOPER.id].posted == rub(700)
        assert balances[DEVELOPER.id].pending_in == rub(0)
        assert (await ledger_service.get_hold(session, h.id)).status is HoldStatus.posted
        assert await audit(session) == []

    async def test_a_partial_post_releases_the_rest(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 1_000, key="top-up")
        h = await ledger_service.hold(
            session,
            postings=[Posting(WALLET, DEVELOPER, rub(800))],
            idempotency_key="h",
            reference="preorder:1",
            reason="preorder",
            now=NOW,
        )

        await ledger_service.post_hold(
            session,
            hold_id=h.id,
            idempotency_key="post",
            now=NOW,
            postings=[Posting(WALLET, DEVELOPER, rub(500))],
        )

        wallet = await ledger_service.balance(session, WALLET)
        assert (wallet.posted, wallet.pending_out, wallet.available) == (rub(500), rub(0), rub(500))
        assert (await ledger_service.balance(session, DEVELOPER)).posted == rub(500)

    async def test_posting_more_than_held_is_refused(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 1_000, key="top-up")
        h = await ledger_service.hold(
            session,
            postings=[Posting(WALLET, DEVELOPER, rub(300))],
            idempotency_key="h",
            reference="r",
            reason="x",
            now=NOW,
        )

        with pytest.raises(ledger_service.InvalidHoldAmounts):
            await ledger_service.post_hold(
                session, hold_id=h.id, idempotency_key="post", now=NOW, postings=[Posting(WALLET, DEVELOPER, rub(301))]
            )
        with pytest.raises(ledger_service.InvalidHoldAmounts):
            await ledger_service.post_hold(
                session, hold_id=h.id, idempotency_key="post2", now=NOW, postings=[Posting(WALLET, FEES, rub(1))]
            )

    async def test_void_releases_and_a_resolved_hold_cannot_be_resolved_again(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 1_000, key="top-up")
        h = await ledger_service.hold(
            session, postings=purchase(1_000), idempotency_key="h", reference="order:1", reason="x", now=NOW
        )

        await ledger_service.void_hold(session, hold_id=h.id, idempotency_key="void", now=NOW)

        assert (await ledger_service.balance(session, WALLET)).available == rub(1_000)
        with pytest.raises(ledger_service.HoldNotPending):
            await ledger_service.post_hold(session, hold_id=h.id, idempotency_key="post", now=NOW)
        again = await ledger_service.void_hold(session, hold_id=h.id, idempotency_key="void", now=NOW)
        assert again.replayed
        with pytest.raises(ledger_service.HoldNotFound):
            await ledger_service.void_hold(session, hold_id=uuid.uuid4(), idempotency_key="void-2", now=NOW)

    async def test_an_expired_hold_cannot_be_posted_and_the_job_releases_it(self, db: Resources) -> None:
        async with db.sessionmaker() as session:
            await fund(session, WALLET, 1_000, key="top-up")
            h = await ledger_service.hold(
                session,
                postings=purchase(1_000),
                idempotency_key="h",
                reference="order:1",
                reason="x",
                now=NOW,
                expires_at=NOW + timedelta(minutes=15),
            )
            await session.commit()
            with pytest.raises(ledger_service.HoldExpired):
                await ledger_service.post_hold(
                    session, hold_id=h.id, idempotency_key="post", now=NOW + timedelta(minutes=15)
                )
            await session.rollback()

        assert await tasks.expire_holds(db.sessionmaker, now=NOW + timedelta(minutes=14)) == []
        assert await tasks.expire_holds(db.sessionmaker, now=NOW + timedelta(minutes=16)) == [h.id]
        assert await tasks.expire_holds(db.sessionmaker, now=NOW + timedelta(minutes=17)) == []

        async with db.sessionmaker() as session:
            assert (await ledger_service.get_hold(session, h.id)).status is HoldStatus.expired
            assert (await ledger_service.balance(session, WALLET)).available == rub(1_000)
            assert await audit(session) == []

    async def test_post_and_void_racing_resolve_the_hold_exactly_once(self, db: Resources) -> None:
        async with db.sessionmaker() as session:
            await fund(session, WALLET, 1_000, key="top-up")
            h = await ledger_service.hold(
                session, postings=purchase(1_000), idempotency_key="h", reference="order:1", reason="x", now=NOW
            )
            await session.commit()

        async def post(session: AsyncSession) -> str:
            await ledger_service.post_hold(session, hold_id=h.id, idempotency_key="post", now=NOW)
            return "posted"

        async def void(session: AsyncSession) -> str:
            await ledger_service.void_hold(session, hold_id=h.id, idempotency_key="void", now=NOW)
            return "voided"

        outcomes = await asyncio.gather(
            *(ledger_service.run_in_transaction(db.sessionmaker, op) for op in (post, void, post, void)),
            return_exceptions=True,
        )

        winners = {o for o in outcomes if isinstance(o, str)}
        assert len(winners) == 1
        assert all(isinstance(o, str | ledger_service.HoldNotPending) for o in outcomes)
        async with db.sessionmaker() as session:
            assert len(await ledger_service.find_transfers(session, reference="order:1")) == 2
            assert await audit(session) == []


class TestReversal:
    async def test_a_reversal_undoes_a_posted_transfer_once(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 1_000, key="top-up")
        t = await ledger_service.transfer(
            session, postings=purchase(1_000), idempotency_key="k", reference="order:1", reason="order_payment", now=NOW
        )

        r = await ledger_service.reverse(session, transfer_id=t.id, idempotency_key="rev", now=NOW, reason="correction")

        assert r.kind is TransferKind.reversal
        assert r.reverses_id == t.id
        assert r.reference == "order:1"
        assert (await ledger_service.balance(session, WALLET)).posted == rub(1_000)
        assert (await ledger_service.balance(session, FEES)).posted == rub(0)
        with pytest.raises(ledger_service.AlreadyReversed):
            await ledger_service.reverse(session, transfer_id=t.id, idempotency_key="rev-2", now=NOW)
        assert (await ledger_service.reverse(session, transfer_id=t.id, idempotency_key="rev", now=NOW)).replayed
        assert await audit(session) == []

    async def test_holds_are_voided_not_reversed(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 1_000, key="top-up")
        h = await ledger_service.hold(
            session, postings=purchase(100), idempotency_key="h", reference="order:1", reason="x", now=NOW
        )

        with pytest.raises(ledger_service.NotReversible):
            await ledger_service.reverse(session, transfer_id=h.id, idempotency_key="rev", now=NOW)
        with pytest.raises(ledger_service.TransferNotFound):
            await ledger_service.reverse(session, transfer_id=uuid.uuid4(), idempotency_key="rev-2", now=NOW)

    async def test_a_reversal_cannot_overdraw(self, session: AsyncSession) -> None:
        top_up = await ledger_service.transfer(
            session,
            postings=[Posting(accounts.external_world(), WALLET, rub(1_000))],
            idempotency_key="top-up",
            reference="top-up:1",
            reason="top_up",
            now=NOW,
        )
        await ledger_service.transfer(
            session, postings=purchase(900), idempotency_key="k", reference="order:1", reason="x", now=NOW
        )

        with pytest.raises(ledger_service.InsufficientFunds):
            await ledger_service.reverse(session, transfer_id=top_up.id, idempotency_key="rev", now=NOW)


class TestHotAccounts:
    async def test_credits_to_a_hot_account_take_no_lock_and_debits_do(self, db: Resources) -> None:
        url = db.settings.db.url.get_secret_value()
        blocker = await asyncpg.connect(url)
        poster = await asyncpg.connect(url, server_settings={"lock_timeout": "2000"})
        try:
            await fund(poster, WALLET, 1_000, key="top-up")
            await fund(poster, FEES, 1_000, key="fees")
            async with blocker.transaction():
                await blocker.execute("SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE", FEES.id)

                await ledger_service.transfer(
                    poster,
                    postings=[Posting(WALLET, FEES, rub(10))],
                    idempotency_key="c",
                    reference="r",
                    reason="x",
                    now=NOW,
                )
                with pytest.raises(asyncpg.LockNotAvailableError):
                    await ledger_service.transfer(
                        poster,
                        postings=[Posting(FEES, WALLET, rub(10))],
                        idempotency_key="d",
                        reference="r",
                        reason="x",
                        now=NOW,
                    )
        finally:
            await blocker.close()
            await poster.close()

    async def test_balances_are_exact_before_and_after_folding(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 10_000, key="top-up")
        for i in range(5):
            await ledger_service.transfer(
                session, postings=purchase(1_000), idempotency_key=f"k{i}", reference=f"o:{i}", reason="x", now=NOW
            )
        before = await ledger_service.balance(session, FEES)

        result = await tasks.fold_deltas(session, now=NOW)

        after = await ledger_service.balance(session, FEES)
        assert before.posted == after.posted == rub(1_000)
        assert result.folded >= 5
        assert after.version > before.version
        assert (await tasks.fold_deltas(session, now=NOW)).folded == 0

    async def test_a_debit_of_a_hot_account_sees_unfolded_credits(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 1_000, key="top-up")
        await ledger_service.transfer(
            session, postings=purchase(1_000), idempotency_key="k", reference="o:1", reason="x", now=NOW
        )
        payout = accounts.external_world()

        await ledger_service.transfer(
            session,
            postings=[Posting(FEES, payout, rub(200))],
            idempotency_key="sweep",
            reference="s",
            reason="x",
            now=NOW,
        )

        assert (await ledger_service.balance(session, FEES)).posted == rub(0)
        with pytest.raises(ledger_service.InsufficientFunds):
            await ledger_service.transfer(
                session,
                postings=[Posting(FEES, payout, rub(1))],
                idempotency_key="s2",
                reference="s",
                reason="x",
                now=NOW,
            )
        assert await audit(session) == []


class TestReads:
    async def test_balance_at_a_point_in_time(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 1_000, key="a", now=NOW)
        await fund(session, WALLET, 2_000, key="b", now=NOW + timedelta(hours=1))
        await ledger_service.hold(
            session,
            postings=purchase(500),
            idempotency_key="h",
            reference="o",
            reason="x",
            now=NOW + timedelta(hours=2),
        )

        assert (await ledger_service.balance_at(session, WALLET, at=NOW - timedelta(seconds=1))).posted == rub(0)
        assert (await ledger_service.balance_at(session, WALLET, at=NOW + timedelta(minutes=30))).posted == rub(1_000)
        late = await ledger_service.balance_at(session, WALLET, at=NOW + timedelta(hours=3))
        assert (late.posted, late.available) == (rub(3_000), rub(2_500))

    async def test_history_pages_newest_first_with_reasons(self, session: AsyncSession) -> None:
        for i in range(5):
            await fund(session, WALLET, 100 + i, key=f"k{i}")
        hold = await ledger_service.hold(
            session, postings=purchase(50), idempotency_key="h", reference="order:9", reason="order_payment", now=NOW
        )

        first = await ledger_service.history(session, WALLET, limit=4)
        second = await ledger_service.history(session, WALLET, cursor=first.next_cursor, limit=4)

        assert [line.amount for line in first.lines] == [rub(-50), rub(104), rub(103), rub(102)]
        assert first.lines[0].phase is EntryPhase.pending
        assert first.lines[0].hold_status is HoldStatus.pending
        assert first.lines[0].reason == "order_payment"
        assert [line.amount for line in second.lines] == [rub(101), rub(100)]
        assert second.next_cursor is None
        await ledger_service.post_hold(session, hold_id=hold.id, idempotency_key="p", now=NOW)
        statement = await ledger_service.history(session, WALLET, limit=2)
        assert [(line.amount, line.phase) for line in statement.lines] == [
            (rub(-50), EntryPhase.posted),
            (rub(104), EntryPhase.posted),
        ]
        with pytest.raises(ledger_service.InvalidCursor):
            await ledger_service.history(session, WALLET, cursor="nope")

    async def test_find_transfers_by_business_reference(self, session: AsyncSession) -> None:
        await fund(session, WALLET, 1_000, key="top-up")
        h = await ledger_service.hold(
            session, postings=purchase(300), idempotency_key="h", reference="order:7", reason="x", now=NOW
        )
        await ledger_service.post_hold(session, hold_id=h.id, idempotency_key="p", now=NOW)

        found = await ledger_service.find_transfers(session, reference="order:7")

        assert [t.kind for t in found] == [TransferKind.hold, TransferKind.post]


class TestDeadlocks:
    async def test_a_deadlock_caused_by_the_callers_own_locks_is_a_retryable_error(self, db: Resources) -> None:
        url = db.settings.db.url.get_secret_value()
        setup = await asyncpg.connect(url)
        await fund(setup, WALLET, 1_000, key="a")
        await fund(setup, OTHER, 1_000, key="b")
        await setup.close()
        first, second = await asyncpg.connect(url), await asyncpg.connect(url)
        try:
            tx1, tx2 = first.transaction(), second.transaction()
            await tx1.start()
            await tx2.start()
            # Each transaction first locks one wallet on its own (other work of the caller)...
            await ledger_service.lock_accounts(first, [WALLET])
            await ledger_service.lock_accounts(second, [OTHER])

            async def move(conn: asyncpg.Connection, debit: object, credit: object, key: str) -> str:
                try:
                    await ledger_service.transfer(
                        conn,
                        postings=[Posting(debit, credit, rub(1))],  # type: ignore[arg-type]
                        idempotency_key=key,
                        reference="r",
                        reason="x",
                        now=NOW,
                    )
                    return "ok"
                except ledger_service.LedgerBusy:
                    return "busy"

            # ...then posts to the other one: a cycle only the callers' own earlier locks can create.
            results = await asyncio.gather(move(first, WALLET, OTHER, "t1"), move(second, OTHER, WALLET, "t2"))

            assert sorted(results) == ["busy", "ok"]
        finally:
            for conn in (first, second):
                await conn.close()


class TestAmounts:
    async def test_amounts_in_other_currencies_live_in_their_own_accounts(self, session: AsyncSession) -> None:
        kzt = accounts.user_wallet("alice", "KZT")

        await fund(session, kzt, 5_000, key="kzt")

        assert (await ledger_service.balance(session, kzt)).posted == Money(5_000, "KZT")
        assert (await ledger_service.balance(session, WALLET)).posted == rub(0)
        assert await audit(session) == []


class TestWorkerJobs:
    async def test_the_periodic_jobs_fold_and_expire_one_transaction_at_a_time(self, db: Resources) -> None:
        @dataclass
        class Ctx:
            session: AsyncSession
            now: datetime

        async with db.sessionmaker() as session:
            await fund(session, WALLET, 1_000, key="top-up")
            for i in range(3):
                await ledger_service.hold(
                    session,
                    postings=purchase(100),
                    idempotency_key=f"h{i}",
                    reference=f"o:{i}",
                    reason="x",
                    now=NOW,
                    expires_at=NOW + timedelta(minutes=1),
                )
            await session.commit()

        later = NOW + timedelta(minutes=2)
        runs = []
        more = True
        while more:
            async with db.sessionmaker() as session:
                more = await tasks.expire_holds_job(Ctx(session, later))
                await session.commit()
            runs.append(more)
        async with db.sessionmaker() as session:
            assert await tasks.fold_job(Ctx(session, later)) is False
            await session.commit()
            assert runs == [True, True, False]
            assert (await ledger_service.balance(session, WALLET)).available == rub(1_000)
            assert await session.scalar(text("SELECT count(*) FROM ledger_account_deltas")) == 0
            assert await audit(session) == []


class TestDatabaseGuards:
    @pytest.mark.parametrize(
        ("kind", "phases", "pending"),
        [
            ("transfer", ["pending", "pending"], False),  # a hold disguised as a transfer: no hold row
            ("hold", ["posted", "posted"], False),
            ("void", ["released", "released"], False),  # a void needs its hold
            ("transfer", ["posted", "posted"], True),
        ],
    )
    async def test_the_posting_function_refuses_phases_its_kind_does_not_write(
        self, conn: asyncpg.Connection, kind: str, phases: list[str], pending: bool
    ) -> None:
        await fund(conn, WALLET, 100, key="top-up")

        with pytest.raises(asyncpg.PostgresError) as caught:
            await conn.fetchrow(
                "SELECT * FROM ledger_post($1, 'bad', 'fp', $2, $3, NULL, 'r', 'x', NULL, now(), NULL,"
                " $4::uuid[], ARRAY[-10, 10]::bigint[], $5::text[], NULL, NULL)",
                uuid.uuid4(),
                kind,
                uuid.uuid4() if pending else None,
                [WALLET.id, accounts.external_world().id],
                phases,
            )

        assert caught.value.sqlstate == "LD001"
