from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from payment_service.kit.money import Money
from payment_service.resources import Resources
from payment_service.wallet import service as wallet_service
from tests.conftest import Tokens

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


async def top_up(db: Resources, user_id: str, kopecks: int, key: str) -> None:
    async with db.sessionmaker() as s:
        await wallet_service.top_up(
            s,
            user_id=user_id,
            amount=Money(kopecks, "RUB"),
            provider="yookassa",
            payment_id=key,
            idempotency_key=key,
            settings=db.settings.wallet,
            now=NOW,
        )
        await s.commit()


class TestMyWallet:
    async def test_a_new_player_sees_an_empty_rub_wallet(self, client: httpx.AsyncClient, tokens: Tokens) -> None:
        r = await client.get("/v1/wallets/me", headers=tokens.headers(tokens.user("u-1")))

        assert r.status_code == 200
        body = r.json()
        assert body["user_id"] == "u-1"
        assert body["balance"] == {"value": "0.00", "currency": "RUB"}
        assert body["available"] == {"value": "0.00", "currency": "RUB"}
        assert body["limits"]["max_balance"]["currency"] == "RUB"

    async def test_shows_balance_and_pending_holds(
        self, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        await top_up(db, "u-1", 100_000, "t1")
        async with db.sessionmaker() as s:
            await wallet_service.pay_order(
                s,
                user_id="u-1",
                order_id="o1",
                amount=Money(49_900, "RUB"),
                idempotency_key="pay",
                settings=db.settings.wallet,
                now=NOW,
            )
            await s.commit()

        body = (await client.get("/v1/wallets/me", headers=tokens.headers(tokens.user("u-1")))).json()

        assert body["balance"]["value"] == "1000.00"
        assert body["pending"]["value"] == "499.00"
        assert body["available"]["value"] == "501.00"

    async def test_transactions_are_paged_newest_first_with_reasons(
        self, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        for i in range(3):
            await top_up(db, "u-1", 1_000 * (i + 1), f"t{i}")
        async with db.sessionmaker() as s:
            await wallet_service.pay_order(
                s,
                user_id="u-1",
                order_id="o9",
                amount=Money(500, "RUB"),
                idempotency_key="pay",
                settings=db.settings.wallet,
                now=NOW,
            )
            await s.commit()
        headers = tokens.headers(tokens.user("u-1"))

        first = (await client.get("/v1/wallets/me/transactions?limit=2", headers=headers)).json()
        second = (
            await client.get(f"/v1/wallets/me/transactions?limit=2&cursor={first['next_cursor']}", headers=headers)
        ).json()

        assert [(i["direction"], i["amount"]["value"], i["status"], i["reason"]) for i in first["items"]] == [
            ("debit", "5.00", "pending", "order_payment"),
            ("credit", "30.00", "completed", "wallet_top_up"),
        ]
        assert first["items"][0]["reference"] == "order:o9"
        assert [i["amount"]["value"] for i in second["items"]] == ["20.00", "10.00"]
        assert second["next_cursor"] is None

    async def test_a_bad_cursor_is_a_client_error(self, client: httpx.AsyncClient, tokens: Tokens) -> None:
        r = await client.get("/v1/wallets/me/transactions?cursor=zzz", headers=tokens.headers(tokens.user("u-1")))

        assert r.status_code == 422
        assert r.json()["code"] == "invalid_cursor"

    async def test_players_see_only_their_own_wallet(
        self, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        await top_up(db, "u-1", 100_000, "t1")

        r = await client.get("/v1/wallets/me", headers=tokens.headers(tokens.user("u-2")))

        assert r.json()["balance"]["value"] == "0.00"

    async def test_needs_the_wallets_read_scope_and_a_user(self, client: httpx.AsyncClient, tokens: Tokens) -> None:
        no_scope = await client.get("/v1/wallets/me", headers=tokens.headers(tokens.user("u-1", ["payments:read"])))
        service = await client.get("/v1/wallets/me", headers=tokens.headers(tokens.service("social", ["wallets:read"])))
        anonymous = await client.get("/v1/wallets/me")

        assert (no_scope.status_code, no_scope.json()["code"]) == (403, "insufficient_scope")
        assert (service.status_code, service.json()["code"]) == (403, "wallet_owner_required")
        assert anonymous.status_code == 401


class TestAdmin:
    async def test_an_admin_sees_any_wallet_with_recent_lines(
        self, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        await top_up(db, "u-7", 12_345, "t1")

        r = await client.get("/v1/admin/wallets/u-7", headers=tokens.headers(tokens.admin(["admin:wallets"])))

        assert r.status_code == 200
        assert r.json()["wallet"]["balance"] == {"value": "123.45", "currency": "RUB"}
        assert r.json()["recent"]["items"][0]["reason"] == "wallet_top_up"

    async def test_users_and_admins_without_the_scope_are_refused(
        self, client: httpx.AsyncClient, tokens: Tokens
    ) -> None:
        as_user = await client.get("/v1/admin/wallets/u-7", headers=tokens.headers(tokens.user("u-7")))
        as_other_admin = await client.get(
            "/v1/admin/wallets/u-7", headers=tokens.headers(tokens.admin(["payments:read"]))
        )

        assert as_user.status_code == 403
        assert as_other_admin.status_code == 403

    async def test_an_invalid_user_id_is_rejected(self, client: httpx.AsyncClient, tokens: Tokens) -> None:
        r = await client.get("/v1/admin/wallets/a:b", headers=tokens.headers(tokens.admin(["admin:wallets"])))

        assert r.status_code == 422

    async def test_a_goodwill_credit_is_idempotent(self, client: httpx.AsyncClient, tokens: Tokens) -> None:
        headers = tokens.headers(tokens.admin(["admin:wallets"]), key="adj-1")
        body = {"amount": {"value": "150.00", "currency": "RUB"}, "direction": "credit", "note": "outage goodwill"}

        first = await client.post("/v1/admin/wallets/u-7/adjustments", json=body, headers=headers)
        again = await client.post("/v1/admin/wallets/u-7/adjustments", json=body, headers=headers)
        wallet = await client.get("/v1/admin/wallets/u-7", headers=headers)

        assert first.status_code == 201
        assert first.json()["direction"] == "credit"
        assert first.json()["reason"] == "wallet_adjustment"
        assert again.status_code == 201
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json() == first.json()
        assert wallet.json()["wallet"]["balance"]["value"] == "150.00"

    async def test_a_debit_beyond_the_balance_is_a_402_with_the_shortfall(
        self, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        await top_up(db, "u-7", 10_000, "t1")
        headers = tokens.headers(tokens.admin(["admin:wallets"]), key="adj-2")
        body = {"amount": {"value": "150.00", "currency": "RUB"}, "direction": "debit", "note": "wrong credit"}

        r = await client.post("/v1/admin/wallets/u-7/adjustments", json=body, headers=headers)

        assert r.status_code == 402
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["code"] == "insufficient_funds"
        assert problem["shortfall"] == {"value": "50.00", "currency": "RUB"}
        assert problem["available"] == {"value": "100.00", "currency": "RUB"}

    async def test_amounts_with_too_many_decimals_are_rejected(self, client: httpx.AsyncClient, tokens: Tokens) -> None:
        headers = tokens.headers(tokens.admin(["admin:wallets"]), key="adj-3")
        body = {"amount": {"value": "1.005", "currency": "RUB"}, "direction": "credit", "note": "oops"}

        r = await client.post("/v1/admin/wallets/u-7/adjustments", json=body, headers=headers)

        assert r.status_code == 422
        assert r.json()["code"] == "invalid_wallet_amount"
