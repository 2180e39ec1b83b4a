"""Auto-approval through the API, and the administrators' review queue."""

from __future__ import annotations

import uuid

from payment_service.refund.endpoints import get_policy
from payment_service.refund.rules import OverLimit, RefundPolicy
from tests.refund.conftest import RefundsEnv


async def bought_days_ago(env: RefundsEnv, payment_id: str, days: int) -> None:
    await env.scalar(
        "UPDATE payments SET succeeded_at = now() - make_interval(days => :d) WHERE id = :p RETURNING 1",
        d=days,
        p=uuid.UUID(payment_id),
    )


class TestAutoApproval:
    async def test_little_playtime_within_the_window_is_refunded_at_once(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa", user="gamer")
        refunds.playtime.set("gamer", "game-1", 119)

        r = await refunds.refund(payment["id"], user="gamer")

        assert r.json()["status"] == "succeeded"
        assert r.json()["decision"] == "auto"
        assert r.json()["playtime_minutes"] == 119
        assert r.json()["findings"] == []

    async def test_two_hours_played_waits_for_review_and_reserves_the_amount(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa", user="gamer")
        refunds.playtime.set("gamer", "game-1", 150)

        r = await refunds.refund(payment["id"], user="gamer")

        assert r.status_code == 201
        assert r.json()["status"] == "pending_review"
        assert r.json()["findings"] == ["playtime_exceeded"]
        assert refunds.provider_refunds("yookassa") == 0
        again = await refunds.refund(payment["id"], user="gamer", amount="1.00")
        assert again.json()["code"] == "refund_exceeds_payment"
        requested = (await refunds.payloads("refund.requested"))[-1]
        assert requested["status"] == "pending_review"
        assert requested["notification_text"].startswith("Запрос на возврат 499,00\u00a0₽ принят")

    async def test_an_old_purchase_waits_for_review(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("tbank")
        await bought_days_ago(refunds, payment["id"], 20)

        r = await refunds.refund(payment["id"])

        assert r.json()["status"] == "pending_review"
        assert r.json()["findings"] == ["outside_window"]

    async def test_a_purchase_past_the_hard_window_is_refused(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("tbank")
        await bought_days_ago(refunds, payment["id"], 91)

        r = await refunds.refund(payment["id"])

        assert r.status_code == 409
        assert r.json()["code"] == "refund_window_expired"
        assert await refunds.scalar("SELECT count(*) FROM refunds") == 0

    async def test_too_much_playtime_is_refused_when_the_policy_rejects(self, refunds: RefundsEnv) -> None:
        refunds.app.dependency_overrides[get_policy] = lambda: RefundPolicy(over_playtime=OverLimit.reject)
        payment = await refunds.paid("tbank", user="gamer")
        refunds.playtime.set("gamer", "game-1", 600)

        r = await refunds.refund(payment["id"], user="gamer")

        assert r.status_code == 409
        assert r.json()["code"] == "refund_playtime_exceeded"

    async def test_when_the_platform_cannot_tell_the_playtime_a_human_decides(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("sber")
        refunds.playtime.failures = 1

        r = await refunds.refund(payment["id"])

        assert r.json()["status"] == "pending_review"
        assert r.json()["findings"] == ["playtime_unknown"]
        assert r.json()["playtime_minutes"] is None

    async def test_frequent_refunds_of_other_purchases_go_to_review(self, refunds: RefundsEnv) -> None:
        payments = [await refunds.paid("mobile", user="hopper") for _ in range(5)]
        for earlier in payments[:4]:
            assert (await refunds.refund(earlier["id"], user="hopper", destination="wallet")).json()["status"] == (
                "succeeded"
            )

        r = await refunds.refund(payments[4]["id"], user="hopper", destination="wallet")

        assert r.json()["status"] == "pending_review"
        assert r.json()["findings"] == ["frequent_refunds"]

    async def test_services_are_not_subject_to_the_rules(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa", user="gamer")
        refunds.playtime.set("gamer", "game-1", 6000)
        service = refunds.tokens.headers(refunds.tokens.service("game-catalog", ["refunds:write"]), key="svc-1")

        r = await refunds.refund(payment["id"], headers=service, reason="The game was withdrawn from sale")

        assert r.json()["status"] == "succeeded"
        assert r.json()["decision"] == "service"
        assert refunds.playtime.requests == []  # nobody asked the platform


class TestReviewQueue:
    async def _pending(self, env: RefundsEnv, provider: str = "yookassa", destination: str | None = None) -> str:
        payment = await env.paid(provider, user="gamer")
        env.playtime.set("gamer", "game-1", 500)
        r = await env.refund(payment["id"], user="gamer", destination=destination)
        assert r.json()["status"] == "pending_review"
        return str(r.json()["id"])

    async def test_the_queue_lists_pending_requests_oldest_first(self, refunds: RefundsEnv) -> None:
        first = await self._pending(refunds)
        second = await self._pending(refunds, "tbank")

        r = await refunds.client.get("/v1/admin/refunds?status=pending_review", headers=refunds.admin())

        assert r.status_code == 200
        assert [item["id"] for item in r.json()["items"]] == [first, second]

    async def test_approval_refunds_and_records_who_and_when(self, refunds: RefundsEnv) -> None:
        refund_id = await self._pending(refunds)

        r = await refunds.client.post(
            f"/v1/admin/refunds/{refund_id}/approve",
            json={"note": "Crash on start, confirmed"},
            headers=refunds.admin(),
        )

        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "succeeded"
        assert body["decision"] == "admin"
        assert body["reviewed_by"] == "admin:admin-1"
        assert body["reviewed_at"] is not None
        assert body["review_note"] == "Crash on start, confirmed"
        assert refunds.provider_refunds("yookassa") == 49_900
        assert await refunds.events(refund_id) == ["refund.requested", "refund.succeeded"]
        assert await refunds.audit() == []

    async def test_approval_of_a_wallet_refund_credits_the_wallet(self, refunds: RefundsEnv) -> None:
        refund_id = await self._pending(refunds, "sber", destination="wallet")

        r = await refunds.client.post(f"/v1/admin/refunds/{refund_id}/approve", json={}, headers=refunds.admin())

        assert r.json()["status"] == "succeeded"
        assert await refunds.balance("user:gamer:wallet") == 49_900
        assert await refunds.audit() == []

    async def test_rejection_records_the_reason_and_frees_the_amount(self, refunds: RefundsEnv) -> None:
        refund_id = await self._pending(refunds)

        r = await refunds.client.post(
            f"/v1/admin/refunds/{refund_id}/reject", json={"reason": "Played 8 hours"}, headers=refunds.admin()
        )

        assert r.status_code == 200, r.text
        assert r.json()["status"] == "rejected"
        assert r.json()["review_note"] == "Played 8 hours"
        assert r.json()["reviewed_by"] == "admin:admin-1"
        rejected = (await refunds.payloads("refund.rejected"))[-1]
        assert rejected["reason"] == "Played 8 hours"
        assert rejected["notification_text"] == (
            "Запрос на возврат 499,00\u00a0₽ отклонён. Подробности можно узнать в поддержке."
        )
        payment_id = await refunds.scalar("SELECT payment_id FROM refunds")
        support = refunds.tokens.headers(refunds.tokens.admin(), key="support-1")
        again = await refunds.refund(str(payment_id), headers=support)
        assert again.json()["status"] == "succeeded"  # the rejected amount is refundable again
        assert refunds.provider_refunds("yookassa") == 49_900

    async def test_a_decided_refund_cannot_be_decided_again(self, refunds: RefundsEnv) -> None:
        refund_id = await self._pending(refunds)
        await refunds.client.post(
            f"/v1/admin/refunds/{refund_id}/reject", json={"reason": "no"}, headers=refunds.admin()
        )

        r = await refunds.client.post(f"/v1/admin/refunds/{refund_id}/approve", json={}, headers=refunds.admin())

        assert r.status_code == 409
        assert r.json()["code"] == "refund_not_pending_review"
        assert refunds.provider_refunds("yookassa") == 0

    async def test_a_rejection_needs_a_reason(self, refunds: RefundsEnv) -> None:
        refund_id = await self._pending(refunds)

        r = await refunds.client.post(f"/v1/admin/refunds/{refund_id}/reject", json={}, headers=refunds.admin())

        assert r.status_code == 422

    async def test_the_queue_needs_the_admin_scope(self, refunds: RefundsEnv) -> None:
        refund_id = await self._pending(refunds)
        other_admin = refunds.admin(scopes=["payments:read"])

        listed = await refunds.client.get("/v1/admin/refunds", headers=refunds.user("gamer"))
        approved = await refunds.client.post(
            f"/v1/admin/refunds/{refund_id}/approve", json={}, headers=refunds.user("gamer")
        )
        rejected = await refunds.client.post(
            f"/v1/admin/refunds/{refund_id}/reject", json={"reason": "x"}, headers=other_admin
        )

        assert (listed.status_code, approved.status_code, rejected.status_code) == (403, 403, 403)
        assert await refunds.scalar("SELECT status FROM refunds") == "pending_review"
