from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import WalletSettings
from payment_service.kit.money import Money
from payment_service.ledger import accounts, tasks
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.models.ledger import HoldStatus
from payment_service.resources import Resources
from payment_service.wallet import service as wallet_service
from tests.ledger.helpers import audit

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
LIMITS = WalletSettings(max_balance_minor=100_000, daily_top_up_minor=50_000, day_timezone="Europe/Moscow")
USER = "player-1"


def rub(kopecks: int) -> Money:
    return Money(kopecks, "RUB")


@pytest.fixture
async def session(db: Resources) -> AsyncIterator[AsyncSession]:
    async with db.sessionmaker() as s:
        yield s
        await s.rollback()


async def top_up(session: AsyncSession, kopecks: int, key: str, *, now: datetime = NOW) -> None:
    await wallet_service.top_up(
        session,
        user_id=USER,
        amount=rub(kopecks),
        provider="yookassa",
        payment_id=key,
        idempotency_key=f"top-up:{key}",
        settings=LIMITS,
        now=now,
    )


async def available(session: AsyncSession) -> Money:
    return (await wallet_service.get_wallet(session, user_id=USER, settings=LIMITS, now=NOW)).balance.available


class TestGetWallet:
    async def test_a_wallet_is_created_on_first_use(self, session: AsyncSession) -> None:
        state = await wallet_service.get_wallet(session, user_id=USER, settings=LIMITS, now=NOW)

        assert state.balance.posted == rub(0)
        assert state.limits.top_up_left_today == rub(50_000)
        assert (await ledger_service.balance(session, accounts.user_wallet(USER))).code == "user:player-1:wallet"

    async def test_an_unusable_user_id_is_a_client_error(self, session: AsyncSession) -> None:
        with pytest.raises(wallet_service.InvalidWalletOwner):
            await wallet_service.get_wallet(session, user_id="a:b", settings=LIMITS, now=NOW)


class TestTopUp:
    async def test_credits_the_wallet_from_the_provider_clearing_account(self, session: AsyncSession) -> None:
        await top_up(session, 30_000, "p1")

        state = await wallet_service.get_wallet(session, user_id=USER, settings=LIMITS, now=NOW)
        assert state.balance.posted == rub(30_000)
        assert state.limits.top_up_left_today == rub(20_000)
        clearing = await ledger_service.balance(session, accounts.provider_clearing("yookassa"))
        assert clearing.posted == rub(30_000)  # the provider owes us what the player paid

    async def test_the_daily_limit_counts_todays_top_ups_in_moscow_time(self, session: AsyncSession) -> None:
        late_evening = datetime(2026, 11, 26, 20, 30, tzinfo=UTC)  # 23:30 in Moscow
        await top_up(session, 40_000, "p1", now=late_evening)

        with pytest.raises(wallet_service.WalletLimitExceeded) as caught:
            await top_up(session, 20_000, "p2", now=late_evening + timedelta(minutes=20))

        assert caught.value.limit == "daily_top_up"
        assert caught.value.excess == rub(10_000)
        await top_up(session, 20_000, "p2", now=late_evening + timedelta(minutes=40))  # 00:10 next day
        assert await available(session) == rub(60_000)

    async def test_a_replayed_top_up_is_not_counted_twice(self, session: AsyncSession) -> None:
        await top_up(session, 50_000, "p1")

        await top_up(session, 50_000, "p1")

        assert await available(session) == rub(50_000)

    async def test_the_maximum_balance_is_a_ceiling(self, session: AsyncSession) -> None:
        await top_up(session, 50_000, "p1", now=NOW - timedelta(days=2))
        await top_up(session, 40_000, "p2", now=NOW - timedelta(days=1))

        with pytest.raises(wallet_service.WalletLimitExceeded) as caught:
            await top_up(session, 10_001, "p3")

        assert caught.value.limit == "max_balance"
        assert caught.value.excess == rub(1)
        assert caught.value.extra["excess"] == {"value": "0.01", "currency": "RUB"}

    async def test_concurrent_top_ups_never_exceed_the_daily_limit(self, db: Resources) -> None:
        async def one(i: int) -> bool:
            async def work(s: AsyncSession) -> None:
                await top_up(s, 7_000, f"c{i}")

            try:
                await ledger_service.run_in_transaction(db.sessionmaker, work)
                return True
            except wallet_service.WalletLimitExceeded:
                return False

        results = await asyncio.gather(*(one(i) for i in range(12)))

        assert sum(results) == 7  # 7 × 70.00 ≤ 500.00 < 8 × 70.00
        async with db.sessionmaker() as s:
            assert await available(s) == rub(49_000)

    async def test_amounts_must_be_positive_rubles(self, session: AsyncSession) -> None:
        with pytest.raises(wallet_service.InvalidWalletAmount):
            await wallet_service.top_up(
                session,
                user_id=USER,
                amount=Money(100, "KZT"),
                provider="yookassa",
                payment_id="x",
                idempotency_key="x",
                settings=LIMITS,
                now=NOW,
            )


class TestOrders:
    async def test_paying_an_order_holds_then_fulfilment_posts(self, session: AsyncSession) -> None:
        await top_up(session, 10_000, "p1")

        hold = await wallet_service.pay_order(
            session, user_id=USER, order_id="o1", amount=rub(4_990), idempotency_key="pay:o1", settings=LIMITS, now=NOW
        )
        state = await wallet_service.get_wallet(session, user_id=USER, settings=LIMITS, now=NOW)
        assert (state.balance.posted, state.balance.pending_out, state.balance.available) == (
            rub(10_000),
            rub(4_990),
            rub(5_010),
        )

        await wallet_service.fulfil_order(session, hold_id=hold.id, idempotency_key="fulfil:o1", now=NOW)

        assert await available(session) == rub(5_010)
        assert (await ledger_service.balance(session, accounts.order_clearing())).posted == rub(4_990)

    async def test_not_enough_money_is_a_402_problem_with_the_shortfall(self, session: AsyncSession) -> None:
        await top_up(session, 1_000, "p1")

        with pytest.raises(wallet_service.InsufficientWalletFunds) as caught:
            await wallet_service.pay_order(
                session, user_id=USER, order_id="o1", amount=rub(4_990), idempotency_key="k", settings=LIMITS, now=NOW
            )

        assert caught.value.status == 402
        assert caught.value.shortfall == rub(3_990)
        assert caught.value.extra["shortfall"] == {"value": "39.90", "currency": "RUB"}

    async def test_cancel_releases_and_partial_fulfilment_returns_the_rest(self, session: AsyncSession) -> None:
        await top_up(session, 10_000, "p1")
        first = await wallet_service.pay_order(
            session, user_id=USER, order_id="o1", amount=rub(3_000), idempotency_key="a", settings=LIMITS, now=NOW
        )
        second = await wallet_service.pay_order(
            session, user_id=USER, order_id="o2", amount=rub(3_000), idempotency_key="b", settings=LIMITS, now=NOW
        )

        await wallet_service.cancel_order(session, hold_id=first.id, idempotency_key="cancel:o1", now=NOW)
        await wallet_service.fulfil_order(
            session, hold_id=second.id, idempotency_key="fulfil:o2", now=NOW, amount=rub(2_000)
        )

        assert await available(session) == rub(8_000)
        assert await audit(session) == []

    async def test_a_forgotten_order_hold_expires(self, db: Resources) -> None:
        async with db.sessionmaker() as s:
            await top_up(s, 10_000, "p1")
            hold = await wallet_service.pay_order(
                s, user_id=USER, order_id="o1", amount=rub(3_000), idempotency_key="a", settings=LIMITS, now=NOW
            )
            await s.commit()

        expired = await tasks.expire_holds(db.sessionmaker, now=NOW + timedelta(minutes=LIMITS.order_hold_minutes))

        assert expired == [hold.id]
        async with db.sessionmaker() as s:
            assert await available(s) == rub(10_000)
            assert (await ledger_service.get_hold(s, hold.id)).status is HoldStatus.expired


class TestSplitTender:
    async def test_the_wallet_pays_what_it_can_and_the_card_the_rest(self, session: AsyncSession) -> None:
        await top_up(session, 3_000, "p1")

        plan = await wallet_service.plan_split_tender(session, user_id=USER, total=rub(10_000), settings=LIMITS)

        assert (plan.wallet, plan.card) == (rub(3_000), rub(7_000))

    async def test_both_legs_are_posted_together(self, session: AsyncSession) -> None:
        await top_up(session, 3_000, "p1")
        hold = await wallet_service.pay_order(
            session, user_id=USER, order_id="o1", amount=rub(3_000), idempotency_key="w", settings=LIMITS, now=NOW
        )

        capture = await wallet_service.complete_split_tender(
            session,
            wallet_hold_id=hold.id,
            order_id="o1",
            card_amount=rub(7_000),
            provider="tbank",
            idempotency_key="capture:o1",
            now=NOW,
        )

        assert capture.wallet.pending_id == hold.id
        assert (await ledger_service.balance(session, accounts.order_clearing())).posted == rub(10_000)
        assert [t.reference for t in await ledger_service.find_transfers(session, reference="order:o1")] == [
            "order:o1"
        ] * 3
        again = await wallet_service.complete_split_tender(
            session,
            wallet_hold_id=hold.id,
            order_id="o1",
            card_amount=rub(7_000),
            provider="tbank",
            idempotency_key="capture:o1",
            now=NOW,
        )
        assert again.wallet.replayed
        assert again.card.replayed

    async def test_if_the_card_leg_fails_the_wallet_leg_is_not_posted_either(self, db: Resources) -> None:
        async with db.sessionmaker() as s:
            await top_up(s, 3_000, "p1")
            hold = await wallet_service.pay_order(
                s, user_id=USER, order_id="o1", amount=rub(3_000), idempotency_key="w", settings=LIMITS, now=NOW
            )
            # a different posting already took the card leg's key: the card leg will fail
            await ledger_service.transfer(
                s,
                postings=[Posting(accounts.external_world(), accounts.user_wallet("someone-else"), rub(1))],
                idempotency_key="capture:o1:card",
                reference="x",
                reason="x",
                now=NOW,
            )
            await s.commit()

        async def capture(s: AsyncSession) -> None:
            await wallet_service.complete_split_tender(
                s,
                wallet_hold_id=hold.id,
                order_id="o1",
                card_amount=rub(7_000),
                provider="tbank",
                idempotency_key="capture:o1",
                now=NOW,
            )

        with pytest.raises(ledger_service.LedgerIdempotencyConflict):
            await ledger_service.run_in_transaction(db.sessionmaker, capture)

        async with db.sessionmaker() as s:
            assert (await ledger_service.get_hold(s, hold.id)).status is HoldStatus.pending
            await wallet_service.release_split_tender(s, wallet_hold_id=hold.id, idempotency_key="release", now=NOW)
            assert await available(s) == rub(3_000)


class TestRefundsAndAdjustments:
    async def test_a_refund_lands_in_the_wallet_even_above_the_maximum(self, session: AsyncSession) -> None:
        await top_up(session, 50_000, "p1", now=NOW - timedelta(days=1))
        await top_up(session, 50_000, "p2")

        await wallet_service.refund_to_wallet(
            session, user_id=USER, amount=rub(5_000), refund_id="r1", idempotency_key="refund:r1", now=NOW
        )

        assert await available(session) == rub(105_000)

    async def test_a_refund_takes_back_each_share_of_the_purchase(self, session: AsyncSession) -> None:
        developer, fees = accounts.developer_balance("studio"), accounts.platform_fees()

        await ledger_service.transfer(
            session,
            postings=[
                Posting(accounts.order_clearing(), developer, rub(700)),
                Posting(accounts.order_clearing(), fees, rub(300)),
            ],
            idempotency_key="distribute",
            reference="order:o1",
            reason="order_settlement",
            now=NOW,
        )

        await wallet_service.refund_to_wallet(
            session,
            user_id=USER,
            amount=rub(1_000),
            refund_id="r1",
            idempotency_key="refund:r1",
            now=NOW,
            sources=[(developer, rub(700)), (fees, rub(300))],
        )

        assert await available(session) == rub(1_000)
        assert (await ledger_service.balance(session, developer)).posted == rub(0)
        with pytest.raises(wallet_service.InvalidWalletAmount):
            await wallet_service.refund_to_wallet(
                session,
                user_id=USER,
                amount=rub(1_000),
                refund_id="r2",
                idempotency_key="refund:r2",
                now=NOW,
                sources=[(developer, rub(1))],
            )

    async def test_adjustments_credit_and_debit_with_the_floor(self, session: AsyncSession) -> None:
        await wallet_service.adjust(
            session,
            user_id=USER,
            amount=rub(500),
            credit=True,
            note="sorry",
            operator="admin:1",
            idempotency_key="a1",
            settings=LIMITS,
            now=NOW,
        )

        with pytest.raises(wallet_service.InsufficientWalletFunds) as caught:
            await wallet_service.adjust(
                session,
                user_id=USER,
                amount=rub(600),
                credit=False,
                note="mistake",
                operator="admin:1",
                idempotency_key="a2",
                settings=LIMITS,
                now=NOW,
            )
        assert caught.value.shortfall == rub(100)
        assert await available(session) == rub(500)
