"""Checkout scenarios across modules: catalog → order → payment/wallet → ledger split → order.paid.

Every scenario that moves money ends with ``shop.check_books()``: the whole ledger balances per
currency and phase, and every paid order's split is developer + fee + VAT == total with order
clearing netting to zero for it.

Numbers used below (VAT 22 %, prices tax-inclusive):

* game-1001, 499.00 RUB, developer 70 %: VAT 89.98, developer 286.31, fee 122.71;
* dlc-1001-1, 199.00 RUB, developer 70 %: VAT 35.89, developer 114.18, fee 48.93.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from payment_service.auth import Principal, PrincipalKind
from payment_service.catalog import tasks as catalog_tasks
from payment_service.db import transaction
from payment_service.inbox.schemas import IncomingEvent
from payment_service.kit.clock import FixedClock
from payment_service.models.payment import PaymentPurpose
from payment_service.order import service as order_service
from payment_service.order import tasks as order_tasks
from payment_service.payment import service as payment_service
from payment_service.refund import service as refund_service
from tests.order.conftest import Shop
from tests.payment.test_long_poll import pool_exhausted_after_the_provider_call


def money(value: str, currency: str = "RUB") -> dict[str, str]:
    return {"value": value, "currency": currency}


class TestCreateOrder:
    async def test_prices_payees_and_vat_come_from_the_catalog_for_the_buyers_region(self, shop: Shop) -> None:
        r = await shop.order("alice", ["game-1001", "dlc-1001-1"])

        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "pending"
        assert body["region"] == "RU"
        assert body["total"] == money("698.00")
        assert body["vat_percent"] == "22"
        assert body["vat"] == money("125.87")
        assert [(ln["item_id"], ln["price"]["value"], ln["developer_id"]) for ln in body["lines"]] == [
            ("game-1001", "499.00", "dev-aurora"),
            ("dlc-1001-1", "199.00", "dev-aurora"),
        ]
        assert body["lines"][1]["base_game_id"] == "game-1001"

    async def test_a_buyer_in_kazakhstan_pays_the_kzt_price_without_russian_vat(self, shop: Shop) -> None:
        r = await shop.order("aigerim", ["game-1001"], token_region="KZ")

        assert r.status_code == 201, r.text
        assert r.json()["total"] == money("2990.00", "KZT")
        assert r.json()["vat"] == money("0.00", "KZT")

    async def test_discounts_and_preorders_are_the_catalogs(self, shop: Shop) -> None:
        body = await shop.new_order("alice", ["game-2002", "game-3003"])

        sale, preorder = body["lines"]
        assert (sale["list_price"]["value"], sale["price"]["value"], sale["discount_percent"]) == (
            "1999.00",
            "1299.00",
            35,
        )
        assert preorder["preorder"] is True
        assert preorder["release_date"] == "2027-03-01"

    async def test_prices_in_the_request_are_refused(self, shop: Shop) -> None:
        r = await shop.order("alice", ["game-1001"], price=money("1.00"))

        assert r.status_code == 422

    async def test_unknown_items_are_named(self, shop: Shop) -> None:
        r = await shop.order("alice", ["game-1001", "no-such-game"])

        assert r.status_code == 404
        assert r.json()["code"] == "item_not_found"
        assert r.json()["item_ids"] == ["no-such-game"]

    @pytest.mark.parametrize(
        ("item", "reason"),
        [
            ("game-4004", "not_for_sale"),
            ("game-6006", "not_sold_in_region"),
            ("game-5005", "free_to_play"),
            ("game-7007", "not_released"),
        ],
    )
    async def test_items_that_cannot_be_bought(self, shop: Shop, item: str, reason: str) -> None:
        r = await shop.order("alice", ["game-1001", item])

        assert r.status_code == 409
        assert (r.json()["code"], r.json()["item_id"], r.json()["reason"]) == ("item_not_purchasable", item, reason)

    async def test_catalog_down_is_503_and_nothing_is_created(self, shop: Shop) -> None:
        shop.catalog.inject("unavailable", -1)
        key = uuid.uuid4().hex

        r = await shop.order("alice", ["game-1001"], key=key)

        assert r.status_code == 503
        assert r.json()["code"] == "catalog_unavailable"
        assert r.headers["Retry-After"]
        assert await shop.env.scalar("SELECT count(*) FROM orders") == 0
        assert await shop.env.scalar("SELECT count(*) FROM payments") == 0
        shop.catalog.clear_faults()
        again = await shop.order("alice", ["game-1001"], key=key)  # the key was released: the retry runs
        assert again.status_code == 201, again.text

    async def test_a_price_change_event_reaches_the_next_checkout(self, shop: Shop) -> None:
        first = await shop.new_order("alice", ["game-1001"])  # the price is cached now
        shop.catalog.set_price("game-1001", "RU", "RUB", 39_900, 49_900, 20)
        catalog_tasks.bind_redis(shop.env.resources.redis)
        try:
            async with transaction(shop.env.resources.sessionmaker) as session:
                await catalog_tasks.handle_catalog_change(
                    session,
                    IncomingEvent(
                        id=str(uuid.uuid4()),
                        source="game-catalog",
                        type="catalog.discount_changed",
                        data={"item_id": "game-1001"},
                        topic=catalog_tasks.TOPIC,
                        partition=0,
                        offset=0,
                        key="game-1001",
                    ),
                )
        finally:
            catalog_tasks.bind_redis(None)

        second = await shop.new_order("alice", ["game-1001"])

        assert first["total"] == money("499.00")
        assert second["total"] == money("399.00")

    async def test_users_buy_for_themselves_in_their_own_region(self, shop: Shop) -> None:
        for_someone = await shop.order("alice", ["game-1001"], buyer_id="bob")
        other_region = await shop.order("alice", ["game-1001"], region="KZ")

        assert for_someone.status_code == 403
        assert other_region.status_code == 403
        assert for_someone.json()["code"] == "buyer_not_allowed"


class TestPayByCard:
    async def test_a_briefly_exhausted_pool_after_the_provider_call_keeps_the_payment_page(
        self, shop: Shop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        order = await shop.new_order("alice", ["game-1001"])
        with pool_exhausted_after_the_provider_call(shop.env, monkeypatch) as refused:
            r = await shop.pay("alice", order["id"], method="bank_card", provider="tbank")
        assert refused == [1]
        assert r.status_code == 200, r.text  # the order's own objects are still loaded, not expired
        assert r.json()["payment"]["action"]["url"]

    async def test_buy_with_card_splits_the_money_once_and_tells_the_platform(self, shop: Shop) -> None:
        order = await shop.new_order("alice", ["game-1001"])

        r = await shop.pay("alice", order["id"], method="bank_card")

        assert r.status_code == 200, r.text
        started = r.json()
        assert started["status"] == "awaiting_payment"
        assert started["tender"] == "provider"
        assert started["payment"]["action"]["url"].startswith("http")
        await shop.complete(started["payment"]["id"])
        paid = await shop.get("alice", order["id"])
        assert paid["status"] == "paid"
        assert await shop.balance("developer:dev-aurora:balance") == 28_631
        assert await shop.balance("platform:fees") == 12_271
        assert await shop.balance("platform:vat_payable") == 8_998
        assert await shop.balance("platform:order_clearing") == 0
        assert (await shop.events(order["id"])).count("order.paid") == 1
        await shop.check_books()

    async def test_a_declined_card_leaves_the_order_payable_and_a_second_card_pays_it(self, shop: Shop) -> None:
        order = await shop.new_order("alice", ["game-1001"])
        first = (await shop.pay("alice", order["id"], method="bank_card")).json()
        await shop.complete(first["payment"]["id"], outcome="decline:insufficient_funds")
        declined = await shop.get("alice", order["id"])

        second = (await shop.pay("alice", order["id"], method="bank_card")).json()
        await shop.complete(second["payment"]["id"])

        assert (declined["status"], declined["failure_code"]) == ("pending", "insufficient_funds")
        assert second["payment"]["id"] != first["payment"]["id"]
        assert (await shop.get("alice", order["id"]))["status"] == "paid"
        assert await shop.balance("developer:dev-aurora:balance") == 28_631
        await shop.check_books()

    async def test_a_round_in_flight_cannot_be_doubled(self, shop: Shop) -> None:
        order = await shop.new_order("alice", ["game-1001"])
        await shop.pay("alice", order["id"], method="bank_card")

        r = await shop.pay("alice", order["id"], method="bank_card")

        assert r.status_code == 409
        assert r.json()["code"] == "order_not_payable"


class TestPayFromWallet:
    async def test_buy_with_wallet_is_paid_at_once(self, shop: Shop) -> None:
        await shop.fund("alice", 100_000)
        order = await shop.new_order("alice", ["game-1001", "dlc-1001-1"])
        key = uuid.uuid4().hex

        r = await shop.pay("alice", order["id"], method="wallet", key=key)
        replay = await shop.pay("alice", order["id"], method="wallet", key=key)

        assert r.status_code == 200, r.text
        assert r.json()["status"] == "paid"
        assert r.json()["wallet_amount"] == money("698.00")
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert await shop.wallet("alice") == (100_000 - 69_800, 100_000 - 69_800)
        assert await shop.balance("developer:dev-aurora:balance") == 28_631 + 11_418
        assert await shop.pending_holds() == 0
        assert (await shop.events(order["id"])).count("order.paid") == 1
        await shop.check_books()

    async def test_a_short_wallet_is_402_with_the_shortfall_and_holds_nothing(self, shop: Shop) -> None:
        await shop.fund("alice", 10_000)
        order = await shop.new_order("alice", ["game-1001"])

        r = await shop.pay("alice", order["id"], method="wallet")

        assert r.status_code == 402
        assert r.json()["code"] == "insufficient_wallet_funds"
        assert r.json()["shortfall"] == money("399.00")
        assert (await shop.get("alice", order["id"]))["status"] == "pending"
        assert await shop.pending_holds() == 0
        assert await shop.wallet("alice") == (10_000, 10_000)
        await shop.check_books()

    async def test_the_vat_rate_is_the_one_of_the_day_the_money_arrives(self, shop: Shop) -> None:
        await shop.fund("alice", 100_000)
        resources = shop.env.resources
        previous = resources.clock
        resources.clock = FixedClock(datetime(2025, 12, 31, 20, 50, tzinfo=UTC))  # 23:50 in Moscow
        try:
            order = await shop.new_order("alice", ["game-1001"])
            resources.clock = FixedClock(datetime(2025, 12, 31, 21, 5, tzinfo=UTC))  # 00:05 on 1 January
            paid = (await shop.pay("alice", order["id"], method="wallet")).json()
        finally:
            resources.clock = previous

        assert (order["vat_percent"], order["vat"]) == ("20", money("83.17"))
        assert (paid["vat_percent"], paid["vat"]) == ("22", money("89.98"))
        assert await shop.balance("platform:vat_payable") == 8_998
        await shop.check_books()


class TestSplitTender:
    async def test_card_failure_releases_the_wallet_hold(self, shop: Shop) -> None:
        await shop.fund("alice", 20_000)
        order = await shop.new_order("alice", ["game-1001"])

        started = (await shop.pay("alice", order["id"], method="bank_card", use_wallet=True)).json()
        held = await shop.wallet("alice")
        await shop.complete(started["payment"]["id"], outcome="decline:general_decline")

        assert (started["tender"], started["wallet_amount"], started["provider_amount"]) == (
            "split",
            money("200.00"),
            money("299.00"),
        )
        assert started["payment"]["amount"] == money("299.00")
        assert held == (20_000, 0)
        after = await shop.get("alice", order["id"])
        assert (after["status"], after["failure_code"]) == ("pending", "general_decline")
        assert await shop.wallet("alice") == (20_000, 20_000)
        assert await shop.pending_holds() == 0
        assert await shop.balance("developer:dev-aurora:balance") == 0
        await shop.check_books()

    async def test_success_posts_both_legs_and_splits_the_whole_price(self, shop: Shop) -> None:
        await shop.fund("alice", 20_000)
        order = await shop.new_order("alice", ["game-1001"])

        started = (await shop.pay("alice", order["id"], method="bank_card", use_wallet=True)).json()
        await shop.complete(started["payment"]["id"])

        paid = await shop.get("alice", order["id"])
        assert paid["status"] == "paid"
        assert await shop.wallet("alice") == (0, 0)
        fee = -await shop.balance("provider:yookassa:fees")
        assert await shop.balance("provider:yookassa:clearing") == -29_900 + fee  # the card leg, net of the fee
        assert await shop.balance("developer:dev-aurora:balance") == 28_631
        assert await shop.balance("platform:vat_payable") == 8_998
        assert await shop.balance("platform:order_clearing") == 0
        assert await shop.pending_holds() == 0
        assert (await shop.events(order["id"])).count("order.paid") == 1
        await shop.check_books()

    async def test_an_abandoned_card_part_releases_the_hold_when_the_payment_expires(self, shop: Shop) -> None:
        await shop.fund("alice", 20_000)
        order = await shop.new_order("alice", ["game-1001"])
        started = (await shop.pay("alice", order["id"], method="bank_card", use_wallet=True)).json()
        await shop.env.scalar(
            "UPDATE payments SET expires_at = now() - interval '1 second' WHERE id = :p RETURNING 1",
            p=uuid.UUID(started["payment"]["id"]),
        )

        await shop.env.worker.expire()

        after = await shop.get("alice", order["id"])
        assert after["status"] == "pending"
        assert after["failure_code"] in ("payment_expired", "payment_canceled")
        assert await shop.wallet("alice") == (20_000, 20_000)
        assert await shop.pending_holds() == 0
        await shop.check_books()

    async def test_a_wallet_that_covers_everything_pays_alone(self, shop: Shop) -> None:
        await shop.fund("alice", 100_000)
        order = await shop.new_order("alice", ["game-1001"])

        r = await shop.pay("alice", order["id"], method="bank_card", use_wallet=True)

        assert (r.json()["status"], r.json()["tender"], r.json()["payment"]) == ("paid", "wallet", None)
        await shop.check_books()


class TestTopUp:
    async def top_up(self, shop: Shop, user: str, amount: str, **body: Any) -> Any:
        payload = {"amount": money(amount), "method": "bank_card", "return_url": "https://store.example/w", **body}
        return await shop.env.client.post("/v1/wallets/me/top-ups", json=payload, headers=shop.headers(user))

    async def test_duplicate_webhooks_and_a_racing_status_sync_credit_once(self, shop: Shop) -> None:
        r = await self.top_up(shop, "alice", "1000.61", provider="tbank")  # tbank sends every webhook twice
        assert r.status_code == 201, r.text
        top_up = r.json()

        await shop.complete(top_up["payment"]["id"], provider="tbank")
        await shop.env.worker.apply_webhooks()
        await shop.env.scalar("UPDATE payment_attempts SET next_sync_at = now() - interval '1 second' RETURNING 1")
        await shop.env.worker.sync()
        await shop.env.emulators.state("tbank").fire_webhook(
            str(await shop.env.scalar("SELECT provider_payment_id FROM payment_attempts LIMIT 1"))
        )
        await shop.env.emulators.flush()
        await shop.env.worker.apply_webhooks()

        got = await shop.env.client.get(f"/v1/wallets/me/top-ups/{top_up['id']}", headers=shop.headers("alice"))
        assert got.json()["status"] == "succeeded"
        assert await shop.wallet("alice") == (100_061, 100_061)
        credits = await shop.env.scalar(
            "SELECT count(*) FROM ledger_transfers WHERE reason = 'wallet_top_up' AND reference = :r",
            r=f"payment:{top_up['payment']['id']}",
        )
        assert credits == 1
        wallet = await shop.env.client.get("/v1/wallets/me", headers=shop.headers("alice"))
        assert wallet.json()["limits"]["top_up_left_today"] == money("28999.39")  # counted by the wallet's limit
        await shop.check_books()

    async def test_a_declined_top_up_credits_nothing(self, shop: Shop) -> None:
        top_up = (await self.top_up(shop, "alice", "500.00")).json()

        await shop.complete(top_up["payment"]["id"], outcome="decline:card_expired")

        got = await shop.env.client.get(f"/v1/wallets/me/top-ups/{top_up['id']}", headers=shop.headers("alice"))
        assert (got.json()["status"], got.json()["failure_code"]) == ("failed", "card_expired")
        assert await shop.wallet("alice") == (0, 0)
        await shop.check_books()

    async def test_open_top_ups_count_against_the_daily_limit(self, shop: Shop) -> None:
        first = await self.top_up(shop, "alice", "20000.00")

        second = await self.top_up(shop, "alice", "15000.00")

        assert first.status_code == 201, first.text
        assert second.status_code == 409
        assert (second.json()["code"], second.json()["limit"]) == ("wallet_limit_exceeded", "daily_top_up")
        assert second.json()["excess"] == money("5000.00")

    async def test_the_maximum_balance_is_checked_before_paying(self, shop: Shop) -> None:
        await shop.fund("alice", 5_900_000)

        r = await self.top_up(shop, "alice", "2000.00")

        assert r.status_code == 409
        assert (r.json()["limit"], r.json()["excess"]) == ("max_balance", money("1000.00"))
        assert await shop.env.scalar("SELECT count(*) FROM payments") == 0

    async def test_others_top_ups_are_not_found(self, shop: Shop) -> None:
        top_up = (await self.top_up(shop, "alice", "100.00")).json()

        r = await shop.env.client.get(f"/v1/wallets/me/top-ups/{top_up['id']}", headers=shop.headers("bob"))

        assert r.status_code == 404


class TestAccessListingExpiry:
    async def test_others_cannot_see_or_pay_an_order(self, shop: Shop) -> None:
        order = await shop.new_order("alice", ["game-1001"])

        seen = await shop.env.client.get(f"/v1/orders/{order['id']}", headers=shop.headers("bob"))
        paid = await shop.pay("bob", order["id"], method="wallet")

        assert (seen.status_code, paid.status_code) == (404, 404)
        assert paid.json()["code"] == "order_not_found"

    async def test_the_list_is_own_newest_first_and_paginated(self, shop: Shop) -> None:
        ids = [(await shop.new_order("alice", ["game-1001"]))["id"] for _ in range(3)]
        await shop.new_order("bob", ["game-1001"])

        page1 = (await shop.env.client.get("/v1/orders?limit=2", headers=shop.headers("alice"))).json()
        cursor = page1["next_cursor"]
        page2 = (await shop.env.client.get(f"/v1/orders?limit=2&cursor={cursor}", headers=shop.headers("alice"))).json()

        assert [o["id"] for o in page1["items"] + page2["items"]] == ids[::-1]
        assert page2["next_cursor"] is None

    async def test_an_unpaid_order_expires_and_cannot_be_paid_then(self, shop: Shop) -> None:
        await shop.fund("alice", 100_000)
        order = await shop.new_order("alice", ["game-1001"])
        later = datetime.now(UTC) + timedelta(hours=1)

        async with transaction(shop.env.resources.sessionmaker) as session:
            ctx = type("Ctx", (), {"session": session, "now": later})()
            await order_tasks.expire_orders(ctx)

        assert (await shop.get("alice", order["id"]))["status"] == "expired"
        assert await shop.events(order["id"]) == ["order.expired"]
        r = await shop.pay("alice", order["id"], method="wallet")
        assert (r.status_code, r.json()["code"]) == (409, "order_not_payable")
        await shop.check_books()

    async def test_an_unpaid_order_can_be_canceled(self, shop: Shop) -> None:
        order = await shop.new_order("alice", ["game-1001"])

        r = await shop.env.client.post(f"/v1/orders/{order['id']}/cancel", headers=shop.headers("alice"))

        assert (r.status_code, r.json()["status"]) == (200, "canceled")


class TestRefundBasis:
    """The refund module takes an order payment's money back from where the split put it."""

    @pytest.fixture(autouse=True)
    def registered(self) -> None:
        # tests/refund may have replaced the resolver in this process; production registers it at import
        refund_service.register_basis(PaymentPurpose.order, order_service.refund_basis)

    async def test_a_split_tender_payment_is_taken_back_from_developer_fee_and_vat_in_proportion(
        self, shop: Shop
    ) -> None:
        await shop.fund("alice", 20_000)
        order = await shop.new_order("alice", ["game-1001"])
        started = (await shop.pay("alice", order["id"], method="bank_card", use_wallet=True)).json()
        await shop.complete(started["payment"]["id"])

        async with shop.env.resources.sessionmaker() as session:
            payment = await payment_service.get(
                session,
                principal=Principal(PrincipalKind.admin, "a", frozenset({"*"})),
                payment_id=uuid.UUID(started["payment"]["id"]),
            )
            basis = await refund_service.basis_of(session, payment)

        parts = {account.code: m.amount_minor for account, m in basis.sources}
        assert set(parts) == {"developer:dev-aurora:balance", "platform:fees", "platform:vat_payable"}
        assert sum(parts.values()) == 29_900  # only the card part
        assert abs(parts["developer:dev-aurora:balance"] * 49_900 - 28_631 * 29_900) <= 49_900
        assert basis.game_ids == ("game-1001",)

    async def test_refunding_a_card_order_empties_the_split_accounts(self, shop: Shop) -> None:
        order = await shop.new_order("alice", ["game-1001"])
        started = (await shop.pay("alice", order["id"], method="bank_card")).json()
        await shop.complete(started["payment"]["id"])

        r = await shop.env.client.post(
            "/v1/refunds",
            json={"payment_id": started["payment"]["id"], "reason": "Игра не запускается"},
            headers=shop.headers("alice"),
        )

        assert r.status_code == 201, r.text
        if r.json()["status"] == "pending_review":  # playtime is unknown here: an administrator approves
            r = await shop.env.client.post(
                f"/v1/admin/refunds/{r.json()['id']}/approve",
                json={},
                headers=shop.env.tokens.headers(shop.env.tokens.admin(), key=uuid.uuid4().hex),
            )
        assert r.json()["status"] == "succeeded", r.text
        assert await shop.balance("developer:dev-aurora:balance") == 0
        assert await shop.balance("platform:fees") == 0
        assert await shop.balance("platform:vat_payable") == 0
        assert await shop.balance("platform:order_clearing") == 0
        await shop.check_books()
