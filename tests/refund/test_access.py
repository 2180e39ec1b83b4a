"""Who may refund and see what: object-level authorization and listing."""

from __future__ import annotations

from tests.refund.conftest import RefundsEnv


class TestOwnership:
    async def test_a_user_cannot_refund_someone_elses_payment(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa", user="alice")

        r = await refunds.refund(payment["id"], user="mallory")

        assert r.status_code == 404
        assert r.json()["code"] == "payment_not_found"
        assert refunds.provider_refunds("yookassa") == 0

    async def test_a_user_sees_only_refunds_of_their_own_payments(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa", user="alice")
        refund = (await refunds.refund(payment["id"], user="alice", amount="10.00")).json()

        theirs = await refunds.client.get(f"/v1/refunds/{refund['id']}", headers=refunds.user("mallory"))
        listed = await refunds.client.get("/v1/refunds", headers=refunds.user("mallory"))
        filtered = await refunds.client.get("/v1/refunds?payer_id=alice", headers=refunds.user("mallory"))
        own = await refunds.client.get(f"/v1/refunds/{refund['id']}", headers=refunds.user("alice"))

        assert theirs.status_code == 404
        assert theirs.json()["code"] == "refund_not_found"
        assert listed.json()["items"] == []
        assert filtered.json()["items"] == []  # a user's payer_id filter is ignored
        assert own.json()["id"] == refund["id"]

    async def test_staff_with_the_scope_see_everyones_refunds(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("tbank", user="alice")
        refund = (await refunds.refund(payment["id"], user="alice", amount="10.00")).json()
        support = refunds.tokens.headers(refunds.tokens.service("user", ["refunds:read"]))

        one = await refunds.client.get(f"/v1/refunds/{refund['id']}", headers=support)
        listed = await refunds.client.get(f"/v1/refunds?payment_id={payment['id']}", headers=support)

        assert one.status_code == 200
        assert [r["id"] for r in listed.json()["items"]] == [refund["id"]]

    async def test_a_user_cannot_refund_a_donation(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa", user="fan")
        await refunds.scalar("UPDATE payments SET purpose = 'donation' RETURNING 1")

        r = await refunds.refund(payment["id"], user="fan")

        assert r.status_code == 409
        assert r.json()["code"] == "payment_not_refundable"


class TestListing:
    async def test_own_refunds_are_paginated_newest_first(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("mobile", user="alice", amount="100.00")
        ids = [
            (await refunds.refund(payment["id"], user="alice", amount="10.00", destination="wallet")).json()["id"]
            for _ in range(3)
        ]
        h = refunds.user("alice")

        page1 = (await refunds.client.get("/v1/refunds?limit=2", headers=h)).json()
        page2 = (await refunds.client.get(f"/v1/refunds?limit=2&cursor={page1['next_cursor']}", headers=h)).json()

        assert [r["id"] for r in page1["items"] + page2["items"]] == ids[::-1]
        assert page2["next_cursor"] is None

    async def test_a_bad_cursor_is_a_validation_error(self, refunds: RefundsEnv) -> None:
        r = await refunds.client.get("/v1/refunds?cursor=bm9wZQ", headers=refunds.user("alice"))

        assert r.status_code == 422

    async def test_refunding_needs_the_write_scope(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa", user="alice")
        reader = refunds.tokens.headers(refunds.tokens.user("alice", scopes=["refunds:read"]), key="k1")

        r = await refunds.refund(payment["id"], headers=reader)

        assert r.status_code == 403
