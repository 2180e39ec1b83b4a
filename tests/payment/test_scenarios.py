"""Payments end to end: API → provider emulator → webhook → worker → ledger → outbox.

Each scenario ends by checking the money: provider clearing and the purpose account move by
exactly the captured amount, once, and nothing moves for a payment that did not succeed.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from payment_service.db import transaction
from payment_service.payment import service as payment_service
from payment_service.payment import tasks as payment_tasks
from payment_service.provider_event.service import MAX_APPLY_ATTEMPTS
from payment_service.providers.ports import ProviderResult, ProviderStatus
from tests.payment.conftest import PaymentsEnv

RETURN = "https://store.example/return"


async def create(
    env: PaymentsEnv, *, user: str = "u1", amount: str = "499.00", key: str | None = None, **body: Any
) -> Any:
    payload = {
        "amount": {"value": amount, "currency": "RUB"},
        "method": "bank_card",
        "description": "Game key",
        "return_url": RETURN,
    }
    payload.update(body)
    return await env.client.post(
        "/v1/payments", json=payload, headers=env.tokens.headers(env.tokens.user(user), key=key or uuid.uuid4().hex)
    )


async def provider_id(env: PaymentsEnv, payment_id: str, number: int = 1) -> str:
    value = await env.scalar(
        "SELECT provider_payment_id FROM payment_attempts WHERE payment_id = :p AND number = :n",
        p=uuid.UUID(payment_id),
        n=number,
    )
    assert value, "the attempt has no provider payment id"
    return str(value)


async def events(env: PaymentsEnv, payment_id: str) -> list[str]:
    async with env.resources.engine.connect() as conn:
        from sqlalchemy import text

        rows = await conn.execute(text("SELECT type FROM outbox_events WHERE key = :k ORDER BY seq"), {"k": payment_id})
        return [r[0] for r in rows]


async def rows(env: PaymentsEnv, sql: str) -> list[Any]:
    async with env.resources.engine.connect() as conn:
        return list(await conn.execute(text(sql)))


async def get(env: PaymentsEnv, payment_id: str, user: str = "u1") -> Any:
    r = await env.client.get(f"/v1/payments/{payment_id}", headers=env.tokens.headers(env.tokens.user(user)))
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("provider", ["yookassa", "tbank", "sber"])
class TestOneStageCardPayment:
    async def test_redirect_then_webhook_then_ledger(self, payments: PaymentsEnv, provider: str) -> None:
        r = await create(payments, provider=provider)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "requires_action"
        assert body["action"]["type"] == "redirect"
        assert body["action"]["url"].startswith("http")
        assert body["provider"] == provider

        await payments.pay(provider, await provider_id(payments, body["id"]), card_number=None, outcome=None)
        assert await payments.worker.apply_webhooks() >= 1

        paid = await get(payments, body["id"])
        assert paid["status"] == "succeeded"
        assert paid["captured_amount"] == {"value": "499.00", "currency": "RUB"}
        assert paid["card"]["last4"].isdigit()
        fee = -await payments.balance(f"provider:{provider}:fees")
        assert fee == (1397 if provider == "yookassa" else 0)  # YooKassa reports its 2.8 % fee
        assert await payments.balance(f"provider:{provider}:clearing") == -49_900 + fee
        assert await payments.balance("platform:order_clearing") == 49_900
        emitted = await events(payments, body["id"])
        assert emitted[:2] == ["payment.pending", "payment.requires_action"]
        assert emitted[-1] == "payment.succeeded"
        assert emitted.count("payment.succeeded") == 1
        assert set(emitted[2:-1]) <= {"payment.authorized"}  # T-Bank reports AUTHORIZED before CONFIRMED

    async def test_decline_is_a_failed_payment_and_moves_no_money(self, payments: PaymentsEnv, provider: str) -> None:
        r = await create(payments, provider=provider, amount="499.11")  # magic kopecks 11: insufficient funds
        body = r.json()
        await payments.pay(provider, await provider_id(payments, body["id"]), card_number=None, outcome=None)
        await payments.worker.apply_webhooks()

        failed = await get(payments, body["id"])
        assert failed["status"] == "failed"
        assert failed["decline_code"] == "insufficient_funds"
        assert await payments.balance(f"provider:{provider}:clearing") == 0
        assert "payment.failed" in await events(payments, body["id"])


class TestTwoStage:
    async def test_authorize_capture_part_release_rest(self, payments: PaymentsEnv) -> None:
        r = await create(payments, provider="yookassa", capture=False, amount="1000.00")
        pid = r.json()["id"]
        await payments.pay("yookassa", await provider_id(payments, pid), card_number=None, outcome=None)
        await payments.worker.apply_webhooks()
        assert (await get(payments, pid))["status"] == "authorized"
        assert await payments.balance("platform:order_clearing") == 0  # held, not posted

        admin = payments.tokens.admin()
        captured = await payments.client.post(
            f"/v1/payments/{pid}/capture",
            json={"amount": {"value": "600.00", "currency": "RUB"}},
            headers=payments.tokens.headers(admin, key="cap-1"),
        )

        assert captured.status_code == 200, captured.text
        assert captured.json()["status"] == "succeeded"
        assert captured.json()["captured_amount"]["value"] == "600.00"
        assert await payments.balance("platform:order_clearing") == 60_000
        fee = -await payments.balance("provider:yookassa:fees")
        assert await payments.balance("provider:yookassa:clearing") == -60_000 + fee

    async def test_user_cannot_capture(self, payments: PaymentsEnv) -> None:
        pid = (await create(payments, provider="yookassa", capture=False)).json()["id"]

        r = await payments.client.post(
            f"/v1/payments/{pid}/capture", json={}, headers=payments.tokens.headers(payments.tokens.user("u1"), key="c")
        )

        assert r.status_code == 403
        assert r.json()["code"] == "insufficient_scope"

    async def test_cancel_voids_the_hold(self, payments: PaymentsEnv) -> None:
        pid = (await create(payments, provider="tbank", capture=False)).json()["id"]
        await payments.pay("tbank", await provider_id(payments, pid), card_number=None, outcome=None)
        await payments.worker.apply_webhooks()

        r = await payments.client.post(
            f"/v1/payments/{pid}/cancel", json={}, headers=payments.tokens.headers(payments.tokens.user("u1"), key="x")
        )

        assert r.status_code == 200, r.text
        assert r.json()["status"] == "canceled"
        assert await payments.balance("platform:order_clearing") == 0
        held = await payments.scalar("SELECT count(*) FROM ledger_holds WHERE status = 'pending'")
        assert held == 0


class TestUnknownOutcomes:
    async def test_timeout_leaves_unknown_then_sync_resolves_without_double_charge(self, payments: PaymentsEnv) -> None:
        registry = payments.resources.providers
        assert registry is not None
        registry.settings.sber.max_attempts = 1  # no in-call retry: the lost answer stays lost
        r = await create(payments, provider="sber", amount="499.55")  # charged, then the answer is dropped

        body = r.json()
        assert body["status"] == "pending"
        assert body["attempts"][0]["status"] == "unknown"
        assert len(body["attempts"]) == 1  # no failover on an unknown outcome

        await payments.scalar("UPDATE payment_attempts SET next_sync_at = now() - interval '1 second' RETURNING 1")
        await payments.worker.sync()

        resolved = await get(payments, body["id"])
        assert resolved["status"] in ("succeeded", "requires_action")
        charges = [e for e in payments.emulators.state("sber").ledger if e.kind in ("charge", "capture")]
        assert len(charges) <= 1

    async def test_an_unknown_outcome_is_checked_after_5_s_a_customer_action_after_a_minute(
        self, payments: PaymentsEnv
    ) -> None:
        registry = payments.resources.providers
        assert registry is not None
        registry.settings.sber.max_attempts = 1
        unknown = (await create(payments, provider="sber", amount="499.55")).json()  # the answer is lost
        waiting = (await create(payments, provider="yookassa")).json()  # the customer's turn (redirect)

        delay = {
            r.status: r.due
            for r in await rows(
                payments, "SELECT status, extract(epoch FROM next_sync_at - updated_at) AS due FROM payment_attempts"
            )
        }

        assert unknown["attempts"][0]["status"] == "unknown"
        assert waiting["status"] == "requires_action"
        assert 4 <= delay["unknown"] <= 6
        assert 59 <= delay["requires_action"] <= 61

    async def test_unknown_outcomes_are_checked_before_payments_waiting_for_their_customer(
        self, payments: PaymentsEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        registry = payments.resources.providers
        assert registry is not None
        registry.settings.sber.max_attempts = 1
        await create(payments, provider="yookassa")  # waiting for the customer, due first below
        await create(payments, provider="sber", amount="499.55")  # the answer is lost: unknown
        await payments.scalar(
            "UPDATE payment_attempts SET next_sync_at = now() - CASE status WHEN 'unknown' THEN interval '1 second' "
            "ELSE interval '1 minute' END RETURNING 1"
        )
        monkeypatch.setattr(payment_tasks, "SYNC_BATCH", 1)

        again = await payments.worker.sync()

        checked = {
            r.provider: r.sync_count for r in await rows(payments, "SELECT provider, sync_count FROM payment_attempts")
        }
        assert checked == {"sber": 1, "yookassa": 0}
        assert again is True  # a full batch of unknown outcomes: run again at once

    async def test_one_sync_run_moves_every_checked_attempt_to_its_next_backoff_step(
        self, payments: PaymentsEnv
    ) -> None:
        for _ in range(3):
            await create(payments, provider="yookassa")
        await payments.scalar(
            "UPDATE payment_attempts SET next_sync_at = now() - interval '1 second', "
            "sync_count = CASE WHEN sync_count = 0 AND ctid = (SELECT min(ctid) FROM payment_attempts) THEN 2 ELSE 0 END "
            "RETURNING 1"
        )

        await payments.worker.sync()

        steps = sorted(
            (r.sync_count, round(r.due))
            for r in await rows(
                payments, "SELECT sync_count, extract(epoch FROM next_sync_at - now()) AS due FROM payment_attempts"
            )
        )
        assert [s for s, _ in steps] == [1, 1, 3]
        assert 14 <= steps[0][1] <= 15  # second step: 15 s
        assert 299 <= steps[2][1] <= 300  # fourth step: 5 min

    async def test_definite_failure_fails_over_to_the_next_provider(self, payments: PaymentsEnv) -> None:
        payments.emulators.state("yookassa").queue_outcome("error_503", count=5)  # 503, nothing created

        r = await create(payments, provider="yookassa")

        body = r.json()
        assert r.status_code == 201, r.text
        assert body["attempts"][0]["provider"] == "yookassa"
        assert body["attempts"][0]["status"] == "failed"
        assert body["attempts"][0]["failover"] is True
        assert len(body["attempts"]) == 2
        assert body["attempts"][1]["provider"] != "yookassa"
        assert body["status"] == "requires_action"


class TestWebhooks:
    async def test_duplicate_webhooks_have_one_effect(self, payments: PaymentsEnv) -> None:
        pid = (await create(payments, provider="tbank", amount="499.61")).json()["id"]  # every webhook twice
        await payments.pay("tbank", await provider_id(payments, pid), card_number=None, outcome=None)

        await payments.worker.apply_webhooks()
        await payments.worker.apply_webhooks()

        assert (await get(payments, pid))["status"] == "succeeded"
        assert await payments.balance("platform:order_clearing") == 49_961
        assert (await events(payments, pid)).count("payment.succeeded") == 1

    async def test_out_of_order_webhooks_do_not_regress(self, payments: PaymentsEnv) -> None:
        pid = (await create(payments, provider="tbank", amount="499.62", capture=False)).json()["id"]
        ppid = await provider_id(payments, pid)
        await payments.pay("tbank", ppid, card_number=None, outcome=None)
        await payments.emulators.flush()

        await payments.worker.apply_webhooks()

        assert (await get(payments, pid))["status"] == "authorized"

    async def test_forged_webhook_is_rejected(self, payments: PaymentsEnv) -> None:
        r = await payments.client.post(
            "/v1/webhooks/tbank",
            json={"TerminalKey": "TestTerminalDEMO", "OrderId": "x", "Status": "CONFIRMED", "Token": "bad"},
        )

        assert r.status_code == 401
        assert r.json()["code"] == "webhook_signature_invalid"

    async def test_unknown_provider_is_404(self, payments: PaymentsEnv) -> None:
        r = await payments.client.post("/v1/webhooks/paypal", json={})

        assert r.status_code == 404

    async def test_an_event_that_cannot_be_applied_is_counted_and_failed_without_blocking_others(
        self, payments: PaymentsEnv
    ) -> None:
        bad = (await create(payments, provider="tbank", amount="499.01")).json()["id"]
        good = (await create(payments, provider="tbank", amount="499.02")).json()["id"]
        bad_ppid = await provider_id(payments, bad)
        await payments.pay("tbank", bad_ppid, card_number=None, outcome=None)
        await payments.pay("tbank", await provider_id(payments, good), card_number=None, outcome=None)
        await payments.scalar(
            'UPDATE provider_events SET summary = \'{"status": "no-such-status"}\' '
            "WHERE provider_payment_id = :p RETURNING 1",
            p=bad_ppid,
        )

        assert await payments.worker.apply_webhooks() >= 1  # the good one, in the same run

        assert (await get(payments, good))["status"] == "succeeded"
        row = "SELECT {} FROM provider_events WHERE provider_payment_id = :p ORDER BY received_at LIMIT 1"
        assert await payments.scalar(row.format("attempts"), p=bad_ppid) == 1
        assert await payments.scalar(row.format("status"), p=bad_ppid) == "received"
        assert (await payments.scalar(row.format("last_error"), p=bad_ppid)).startswith("KeyError")
        for _ in range(MAX_APPLY_ATTEMPTS - 1):
            await payments.worker.apply_webhooks()
        assert await payments.scalar(row.format("attempts"), p=bad_ppid) == MAX_APPLY_ATTEMPTS
        assert await payments.scalar(row.format("status"), p=bad_ppid) == "failed"
        assert (await get(payments, bad))["status"] == "requires_action"  # nothing of it was applied

    async def test_a_write_that_fails_inside_an_events_savepoint_is_undone_and_the_event_counted(
        self, payments: PaymentsEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pid = (await create(payments, provider="tbank", amount="499.03")).json()["id"]
        ppid = await provider_id(payments, pid)
        await payments.pay("tbank", ppid, card_number=None, outcome=None)
        real = payment_service.apply_webhook

        async def applied_then_failed(session: Any, **kw: Any) -> bool:
            await real(session, **kw)  # books the charge and marks the payment succeeded...
            await session.flush()
            await session.execute(text("SELECT 1 / 0"))  # ...then the database refuses a statement
            return True

        monkeypatch.setattr(payment_service, "apply_webhook", applied_then_failed)
        await payments.worker.apply_webhooks()

        assert (await get(payments, pid))["status"] == "requires_action"  # the savepoint undid it all
        assert await payments.balance("platform:order_clearing") == 0
        counted = "SELECT attempts, last_error FROM provider_events WHERE provider_payment_id = :p"
        async with payments.resources.engine.begin() as conn:
            rows = (await conn.execute(text(counted), {"p": ppid})).all()
        assert rows
        assert all(r.attempts == 1 and "division by zero" in r.last_error for r in rows)
        monkeypatch.setattr(payment_service, "apply_webhook", real)
        await payments.worker.apply_webhooks()  # the next run applies them
        assert (await get(payments, pid))["status"] == "succeeded"
        assert await payments.balance("platform:order_clearing") == 49_903

    async def test_webhook_for_unknown_payment_is_kept_as_orphaned(self, payments: PaymentsEnv) -> None:
        state = payments.emulators.state("tbank")
        pid = (await create(payments, provider="tbank")).json()["id"]
        ppid = await provider_id(payments, pid)
        await payments.scalar("UPDATE payment_attempts SET provider_payment_id = 'other' RETURNING 1")
        await payments.scalar("UPDATE payment_attempts SET id = gen_random_uuid() RETURNING 1")
        await state.complete_action(ppid, card_number=None, outcome=None)
        await payments.emulators.flush()

        await payments.worker.apply_webhooks()

        assert await payments.scalar("SELECT count(*) FROM provider_events WHERE status = 'orphaned'") >= 1


async def _second_tbank_payment(env: PaymentsEnv, body: dict[str, Any], recorded: str, **params: Any) -> Any:
    """A second T-Bank ``Init`` for the payment's attempt (T-Bank does not dedupe on OrderId), as a
    create taken over by its retry would send: same order, amount and notification URL."""
    registry = env.resources.providers
    assert registry is not None
    first = env.emulators.state("tbank").payments[recorded]
    return await registry.resolve("tbank").client.init(  # type: ignore[attr-defined]
        {
            "Amount": first.amount,
            "OrderId": body["attempts"][0]["id"],
            "Description": "twin",
            "NotificationURL": first.notification_url,
            **params,
        }
    )


class TestSecondProviderPayment:
    """Two provider payments under one attempt (a create taken over by a retry while the first
    request was still calling T-Bank, which does not dedupe Init by OrderId): the attempt keeps the
    payment it recorded; money taken on the other one is booked for a refund, never merged."""

    async def test_money_on_the_other_provider_payment_is_refunded_and_the_recorded_one_still_pays(
        self, payments: PaymentsEnv
    ) -> None:
        body = (await create(payments, provider="tbank", amount="933.00")).json()
        recorded = await provider_id(payments, body["id"])
        attempt_id = body["attempts"][0]["id"]
        other = await _second_tbank_payment(payments, body, recorded)
        assert other.PaymentId != recorded

        await payments.pay("tbank", str(other.PaymentId), card_number=None, outcome=None)
        await payments.worker.apply_webhooks()

        after_other = await get(payments, body["id"])
        assert after_other["status"] == "requires_action"  # not merged into the attempt
        assert await provider_id(payments, body["id"]) == recorded
        late = await payments.scalar(
            "SELECT count(*) FROM ledger_transfers WHERE idempotency_key = :k",
            k=f"payment:{body['id']}:late:{attempt_id}:{other.PaymentId}",
        )
        assert late == 1
        refund_required = [
            r.payload
            for r in await rows(payments, "SELECT payload FROM outbox_events WHERE type = 'payment.refund_required'")
        ]
        assert [e["provider_payment_id"] for e in refund_required] == [str(other.PaymentId)]
        assert refund_required[0]["amount_minor"] == 93300

        await payments.pay("tbank", recorded, card_number=None, outcome=None)
        await payments.worker.apply_webhooks()

        assert (await get(payments, body["id"]))["status"] == "succeeded"

    async def test_a_hold_on_the_other_provider_payment_is_sent_to_be_voided(self, payments: PaymentsEnv) -> None:
        body = (await create(payments, provider="tbank", amount="934.00", capture=False)).json()
        recorded = await provider_id(payments, body["id"])
        other = await _second_tbank_payment(payments, body, recorded, PayType="T")

        await payments.pay("tbank", str(other.PaymentId), card_number=None, outcome=None)  # the hold
        await payments.worker.apply_webhooks()

        assert (await get(payments, body["id"]))["status"] == "requires_action"  # not merged
        requests = [
            r.payload
            for r in await rows(payments, "SELECT payload FROM outbox_events WHERE type = 'payment.refund_required'")
        ]
        assert [(e["provider_payment_id"], e["amount_minor"]) for e in requests] == [(str(other.PaymentId), 93400)]
        assert "void" in requests[0]["reason"]
        assert await payments.scalar("SELECT count(*) FROM ledger_holds") == 0  # nothing booked for it

        async with transaction(payments.resources.sessionmaker) as session:  # the report again (the sync)
            payment = await payment_service.get_for_update(session, payment_id=uuid.UUID(body["id"]))
            assert payment is not None
            again = ProviderResult(
                provider="tbank",
                provider_payment_id=str(other.PaymentId),
                status=ProviderStatus.authorized,
                amount_minor=93400,
                currency="RUB",
            )
            changed = await payment_service.apply_provider_result(
                session, payment=payment, attempt=payment.attempts[0], result=again, now=payments.resources.clock.now()
            )
        assert changed is False
        assert await payments.scalar("SELECT count(*) FROM outbox_events WHERE type = 'payment.refund_required'") == 1


class TestAccess:
    async def test_users_see_only_their_own_payments(self, payments: PaymentsEnv) -> None:
        pid = (await create(payments, user="alice", provider="yookassa")).json()["id"]

        theirs = await payments.client.get(
            f"/v1/payments/{pid}", headers=payments.tokens.headers(payments.tokens.user("bob"))
        )
        listed = await payments.client.get("/v1/payments", headers=payments.tokens.headers(payments.tokens.user("bob")))

        assert theirs.status_code == 404
        assert listed.json()["items"] == []

    async def test_user_cannot_pay_for_someone_else(self, payments: PaymentsEnv) -> None:
        r = await create(payments, user="alice", payer_id="bob")

        assert r.status_code == 403
        assert r.json()["code"] == "payer_not_allowed"

    async def test_same_key_replays_the_payment(self, payments: PaymentsEnv) -> None:
        first = await create(payments, key="pay-1", provider="yookassa")
        second = await create(payments, key="pay-1", provider="yookassa")

        assert second.content == first.content
        assert await payments.scalar("SELECT count(*) FROM payments") == 1

    async def test_list_is_paginated_newest_first(self, payments: PaymentsEnv) -> None:
        ids = [(await create(payments, provider="yookassa")).json()["id"] for _ in range(3)]
        h = payments.tokens.headers(payments.tokens.user("u1"))

        page1 = (await payments.client.get("/v1/payments?limit=2", headers=h)).json()
        page2 = (await payments.client.get(f"/v1/payments?limit=2&cursor={page1['next_cursor']}", headers=h)).json()

        assert [p["id"] for p in page1["items"] + page2["items"]] == ids[::-1]
        assert page2["next_cursor"] is None


class TestMethods:
    async def test_sbp_returns_a_qr_payload(self, payments: PaymentsEnv) -> None:
        r = await create(payments, provider="yookassa", method="sbp")

        body = r.json()
        assert body["status"] == "requires_action"
        assert body["action"]["type"] == "qr"
        assert body["action"]["qr_payload"].startswith("https://qr.nspk.ru/")

    async def test_mobile_balance_payment_through_the_aggregator(self, payments: PaymentsEnv) -> None:
        r = await create(payments, provider="mobile", method="mobile", payer_phone="79161234567", amount="150.00")

        body = r.json()
        assert r.status_code == 201, r.text
        assert body["provider"] == "mobile"
        assert body["status"] == "requires_action"
        await payments.pay("mobile", await provider_id(payments, body["id"]), card_number=None, outcome=None)
        await payments.worker.apply_webhooks()
        assert (await get(payments, body["id"]))["status"] == "succeeded"
        assert await payments.balance("platform:order_clearing") == 15_000


class TestExpiry:
    async def test_unpaid_payment_expires_and_moves_no_money(self, payments: PaymentsEnv) -> None:
        pid = (await create(payments, provider="tbank")).json()["id"]
        await payments.scalar("UPDATE payments SET expires_at = now() - interval '1 minute' RETURNING 1")

        await payments.worker.expire()

        assert (await get(payments, pid))["status"] == "expired"
        assert await payments.balance("platform:order_clearing") == 0
        assert "payment.expired" in await events(payments, pid)

    async def test_a_payment_paid_just_before_expiry_is_applied_not_expired(self, payments: PaymentsEnv) -> None:
        pid = (await create(payments, provider="tbank", amount="499.63")).json()["id"]  # webhooks never sent
        await payments.emulators.state("tbank").complete_action(
            await provider_id(payments, pid), card_number=None, outcome=None
        )
        await payments.scalar("UPDATE payments SET expires_at = now() - interval '1 minute' RETURNING 1")

        await payments.worker.expire()

        assert (await get(payments, pid))["status"] == "succeeded"
        assert await payments.balance("platform:order_clearing") == 49_963

    async def test_uncaptured_authorization_is_voided_after_the_capture_window(self, payments: PaymentsEnv) -> None:
        pid = (await create(payments, provider="yookassa", capture=False)).json()["id"]
        await payments.pay("yookassa", await provider_id(payments, pid), card_number=None, outcome=None)
        await payments.worker.apply_webhooks()
        await payments.scalar("UPDATE payments SET capture_before = now() - interval '1 minute' RETURNING 1")

        await payments.worker.expire()

        assert (await get(payments, pid))["status"] == "expired"
        assert await payments.scalar("SELECT count(*) FROM ledger_holds WHERE status = 'pending'") == 0
        released = [e for e in payments.emulators.state("yookassa").ledger if e.kind == "release"]
        assert len(released) == 1


class TestLateMoney:
    async def test_success_reported_for_a_given_up_attempt_is_booked_for_refund_once(
        self, payments: PaymentsEnv
    ) -> None:
        pid = (await create(payments, provider="tbank", amount="499.00")).json()["id"]
        ppid = await provider_id(payments, pid)
        # As if the status sync had judged the attempt never received and failed the payment.
        await payments.scalar("UPDATE payment_attempts SET status = 'failed' RETURNING 1")
        await payments.scalar(
            "UPDATE payments SET status = 'failed', decline_code = 'provider_not_reached' RETURNING 1"
        )

        await payments.pay("tbank", ppid, card_number=None, outcome=None)
        await payments.worker.apply_webhooks()
        await payments.emulators.state("tbank").fire_webhook(ppid)
        await payments.emulators.flush()
        await payments.worker.apply_webhooks()

        assert (await get(payments, pid))["status"] == "failed"
        assert await payments.balance("platform:order_clearing") == 49_900  # kept on the books, not dropped
        assert (await events(payments, pid)).count("payment.refund_required") == 1


class TestWalletTopUpCeiling:
    async def test_a_top_up_past_the_wallet_ceiling_is_kept_for_refund_not_credited(
        self, payments: PaymentsEnv
    ) -> None:
        from payment_service.auth import USER_SCOPES, Principal, PrincipalKind
        from payment_service.config import get_settings
        from payment_service.db import transaction
        from payment_service.kit.money import Money
        from payment_service.ledger import accounts
        from payment_service.ledger import service as ledger_service
        from payment_service.ledger.schemas import Posting
        from payment_service.models.payment import PaymentPurpose
        from payment_service.payment import service as payment_service
        from payment_service.payment.schemas import PaymentCreate

        res = payments.resources
        almost_full = get_settings().wallet.max_balance_minor - 100
        async with transaction(res.sessionmaker) as session:
            await ledger_service.transfer(
                session,
                postings=[Posting(accounts.external_world(), accounts.user_wallet("u9"), Money(almost_full, "RUB"))],
                idempotency_key="seed-u9",
                reference="test:seed",
                reason="test_seed",
                now=res.clock.now(),
            )
        principal = Principal(PrincipalKind.user, "u9", USER_SCOPES)
        data = PaymentCreate.model_validate(
            {"amount": {"value": "499.00", "currency": "RUB"}, "method": "bank_card", "description": "Top-up",
             "return_url": RETURN, "provider": "tbank"}
        )  # fmt: skip
        async with transaction(res.sessionmaker) as session:
            assert res.providers is not None
            payment = await payment_service.create(
                session, principal=principal, data=data, purpose=PaymentPurpose.wallet_top_up, claim=None,
                providers=res.providers, clock=res.clock,
            )  # fmt: skip
        await payments.pay("tbank", await provider_id(payments, str(payment.id)), card_number=None, outcome=None)
        await payments.worker.apply_webhooks()

        body = await get(payments, str(payment.id), user="u9")
        assert body["status"] == "failed"
        assert body["decline_code"] == "wallet_limit_exceeded"
        assert await payments.balance("user:u9:wallet") == almost_full
        assert await payments.balance("platform:order_clearing") == 49_900
        assert "payment.refund_required" in await events(payments, str(payment.id))
