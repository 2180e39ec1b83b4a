"""Streamer payouts: the weekly/monthly schedule job, the holding period, reports and statements."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from payment_service.db import transaction
from payment_service.kit.money import Money
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from tests.payout.conftest import PayoutsEnv
from tests.payout.test_payouts import create

STREAMER = "streamer-42"
BALANCE = accounts.streamer_balance(STREAMER)
MOSCOW = ZoneInfo("Europe/Moscow")


async def my_payouts(env: PayoutsEnv, user: str = STREAMER) -> dict[str, Any]:
    r = await env.client.get("/v1/streamers/me/payouts", headers=env.user(user))
    assert r.status_code == 200, r.text
    return dict(r.json())


class TestSchedule:
    async def test_pays_out_only_donations_older_than_the_holding_period_once_per_period(
        self, payouts: PayoutsEnv
    ) -> None:
        now = payouts.clock.now()
        await payouts.set_up_payee(STREAMER, schedule="weekly", schedule_day=1, min_payout="500.00")
        await payouts.credit(BALANCE, 3_000_00, at=now - timedelta(days=20))
        await payouts.credit(BALANCE, 1_000_00, at=now - timedelta(days=2))

        await payouts.schedule()
        await payouts.schedule()  # the same period again: nothing new
        view = await my_payouts(payouts)
        await payouts.submit()
        await payouts.settle()
        paid = await my_payouts(payouts)

        assert [(p["amount"]["value"], p["source"]) for p in view["items"]] == [("3000.00", "streamer")]
        assert view["balance"] == {
            "balance": {"value": "4000.00", "currency": "RUB"},
            "in_payout": {"value": "3000.00", "currency": "RUB"},
            "available": {"value": "1000.00", "currency": "RUB"},
            "on_hold": {"value": "1000.00", "currency": "RUB"},
            "payable": {"value": "0.00", "currency": "RUB"},
            "holding_days": 14,
        }
        assert view["payee"]["schedule"] == "weekly"
        assert paid["items"][0]["status"] == "succeeded"
        assert await payouts.balance(BALANCE) == (1_000_00, 1_000_00)
        assert await payouts.scalar("SELECT count(*) FROM payout_batches") == 1
        assert await payouts.audit() == []

    async def test_a_balance_below_the_minimum_waits_for_a_later_period(self, payouts: PayoutsEnv) -> None:
        now = payouts.clock.now()
        await payouts.set_up_payee(STREAMER, schedule="weekly", schedule_day=1, min_payout="2000.00")
        await payouts.credit(BALANCE, 1_500_00, at=now - timedelta(days=30))

        await payouts.schedule()
        await payouts.credit(BALANCE, 1_000_00, at=now - timedelta(days=20))
        await payouts.schedule()  # same week: already handled
        payouts.clock.offset = timedelta(days=7)
        await payouts.schedule()  # next week: 2 500,00 ₽ is payable

        items = (await my_payouts(payouts))["items"]
        assert [p["amount"]["value"] for p in items] == ["2500.00"]
        assert await payouts.audit() == []

    async def test_payees_that_cannot_be_paid_are_not_paid(self, payouts: PayoutsEnv) -> None:
        now = payouts.clock.now()
        await payouts.set_up_payee("unverified", verify=False, schedule="weekly", schedule_day=1)
        await payouts.set_up_payee("manual", schedule=None)
        for user in ("unverified", "manual"):
            await payouts.credit(accounts.streamer_balance(user), 9_000_00, at=now - timedelta(days=30))

        await payouts.schedule()

        assert await payouts.scalar("SELECT count(*) FROM payouts") == 0

    async def test_a_wallet_donation_ends_up_paid_out_to_the_streamer(self, payouts: PayoutsEnv) -> None:
        payouts.resources.settings.payouts.holding_days = 0
        async with transaction(payouts.resources.sessionmaker) as session:
            await ledger_service.transfer(
                session,
                postings=[Posting(accounts.external_world(), accounts.user_wallet("viewer-1"), Money(5_000_00, "RUB"))],
                idempotency_key="test:viewer-1:top-up",
                reference="test:viewer-1",
                reason="wallet_top_up",
                now=payouts.clock.now(),
            )
        await payouts.set_up_payee(STREAMER, schedule="weekly", schedule_day=1, min_payout="500.00")
        donated = await payouts.client.post(
            "/v1/donations",
            json={"streamer_id": STREAMER, "amount": {"value": "1000.00", "currency": "RUB"}, "method": "wallet"},
            headers=payouts.user("viewer-1"),
        )

        await payouts.schedule()
        await payouts.submit()
        await payouts.settle()

        assert donated.status_code == 201, donated.text
        streamer_share = donated.json()["streamer_amount"]["value"]
        items = (await my_payouts(payouts))["items"]
        assert [(p["amount"]["value"], p["status"]) for p in items] == [(streamer_share, "succeeded")]
        assert await payouts.balance(BALANCE) == (0, 0)
        assert await payouts.audit() == []


class TestStatement:
    async def _history(self, env: PayoutsEnv) -> None:
        now = env.clock.now()
        await env.set_up_payee(STREAMER)
        await env.credit(BALANCE, 1_900_00, at=now - timedelta(minutes=30))  # fee 100,00 ₽
        async with transaction(env.resources.sessionmaker) as session:
            await ledger_service.transfer(
                session,
                postings=[
                    Posting(BALANCE, accounts.external_world(), Money(190_00, "RUB")),
                    Posting(accounts.platform_fees(), accounts.external_world(), Money(10_00, "RUB")),
                ],
                idempotency_key="test:refund",
                reference="donation:refunded",
                reason="donation_refund",
                now=now - timedelta(minutes=20),
            )
        await create(env, 1_000_00, user=STREAMER)
        await env.submit()
        await env.settle()

    async def test_lists_donations_with_fees_refunds_and_payouts_with_totals(self, payouts: PayoutsEnv) -> None:
        await self._history(payouts)
        today = payouts.clock.now().astimezone(MOSCOW).date()
        query = {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}

        r = await payouts.client.get("/v1/streamers/me/statement", params=query, headers=payouts.user(STREAMER))

        assert r.status_code == 200, r.text
        body = r.json()
        assert [(ln["kind"], ln["gross"]["value"], ln["fee"]["value"], ln["net"]["value"]) for ln in body["lines"]] == [
            ("donation", "2000.00", "100.00", "1900.00"),
            ("donation_refund", "-200.00", "-10.00", "-190.00"),
            ("payout", "-1000.00", "0.00", "-1000.00"),
        ]
        totals = {k: body[k]["value"] for k in ("opening_balance", "donations_gross", "fees", "clawbacks", "payouts")}
        assert totals == {
            "opening_balance": "0.00",
            "donations_gross": "2000.00",
            "fees": "90.00",
            "clawbacks": "-190.00",
            "payouts": "-1000.00",
        }
        assert body["closing_balance"]["value"] == "710.00"

    async def test_exports_csv_for_a_russian_spreadsheet(self, payouts: PayoutsEnv) -> None:
        await self._history(payouts)
        today = payouts.clock.now().astimezone(MOSCOW).date()
        query = {
            "from": (today - timedelta(days=1)).isoformat(),
            "to": (today + timedelta(days=1)).isoformat(),
            "format": "csv",
        }

        r = await payouts.client.get("/v1/streamers/me/statement", params=query, headers=payouts.user(STREAMER))

        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
        assert rows[0][:3] == ["Дата", "Операция", "Основание"]
        assert [row[1] for row in rows[1:4]] == ["Донат", "Возврат доната", "Выплата"]
        assert rows[1][3:6] == ["2000,00", "100,00", "1900,00"]
        assert rows[-1][0] == "Баланс на конец периода"
        assert rows[-1][5] == "710,00"

    async def test_refuses_bad_periods_and_non_users(self, payouts: PayoutsEnv) -> None:
        backwards = await payouts.client.get(
            "/v1/streamers/me/statement",
            params={"from": "2026-11-02", "to": "2026-11-01"},
            headers=payouts.user(STREAMER),
        )
        too_long = await payouts.client.get(
            "/v1/streamers/me/statement",
            params={"from": "2024-01-01", "to": "2026-01-01"},
            headers=payouts.user(STREAMER),
        )
        service = await payouts.client.get("/v1/streamers/me/payouts", headers=payouts.social())

        assert backwards.status_code == 422
        assert backwards.json()["code"] == "invalid_period"
        assert too_long.status_code == 422
        assert service.status_code == 403
        assert service.json()["code"] == "streamer_only"


def test_statement_dates_are_moscow_days() -> None:
    from payment_service.streamer_payout.service import period_bounds

    start, end = period_bounds(date(2026, 11, 1), date(2026, 12, 1), timezone="Europe/Moscow")

    assert start.isoformat() == "2026-11-01T00:00:00+03:00"
    assert end.isoformat() == "2026-12-01T00:00:00+03:00"
