"""The payout engine against the YooKassa Payouts and bank emulators: money held, posted, returned."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from payment_service.db import transaction
from payment_service.kit.money import Money
from payment_service.ledger import accounts
from payment_service.models.payout import PayoutSource
from payment_service.payout import service as payout_service
from tests.payout.conftest import BIC, PayoutsEnv, bank_account

STREAMER = "streamer-7"
BALANCE = accounts.streamer_balance(STREAMER)
YK_CLEARING = accounts.provider_payouts("yookassa_payouts")
BANK_CLEARING = accounts.provider_payouts("bank_transfer")


async def create(
    env: PayoutsEnv, kopecks: int, *, user: str = STREAMER, source: PayoutSource = PayoutSource.streamer
) -> uuid.UUID:
    async with transaction(env.resources.sessionmaker) as session:
        payout = await payout_service.create_payout(
            session,
            user_id=user,
            source=source,
            balance_account=accounts.streamer_balance(user),
            amount=Money(kopecks, "RUB"),
            reference=f"test:{uuid.uuid4()}",
            description="Выплата вознаграждения стримеру",
            router=env.registry,
            now=env.clock.now(),
            created_by="test",
        )
        return payout.id


async def get(env: PayoutsEnv, payout_id: uuid.UUID, user: str = STREAMER) -> dict[str, Any]:
    r = await env.client.get(f"/v1/payouts/{payout_id}", headers=env.user(user))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def funded(env: PayoutsEnv, kopecks: int = 10_000_00, details: dict[str, Any] | None = None) -> None:
    await env.set_up_payee(STREAMER, details)
    await env.credit(BALANCE, kopecks)


class TestCardPayouts:
    async def test_the_money_is_held_then_posted_when_the_provider_confirms(self, payouts: PayoutsEnv) -> None:
        await funded(payouts)

        payout_id = await create(payouts, 3_000_00)
        held = await payouts.balance(BALANCE)
        await payouts.submit()
        processing = await get(payouts, payout_id)
        await payouts.settle()
        done = await get(payouts, payout_id)

        assert held == (10_000_00, 7_000_00)
        assert processing["status"] == "processing"
        assert processing["destination"] == "card *4444"
        assert done["status"] == "succeeded"
        assert await payouts.balance(BALANCE) == (7_000_00, 7_000_00)
        assert await payouts.balance(YK_CLEARING) == (-3_000_00, -3_000_00)
        assert [(e.kind, e.amount_minor) for e in payouts.yookassa.ledger] == [
            ("reserve", 3_000_00),
            ("payout", 3_000_00),
        ]
        created, succeeded = await payouts.events("payout.created"), await payouts.events("payout.succeeded")
        assert [e.key for e in created + succeeded] == [STREAMER, STREAMER]
        assert succeeded[0].payload["notification_text"] == "Выплата 3\u00a0000,00\u00a0₽ отправлена на карту *4444"
        assert await payouts.audit() == []

    async def test_a_refusal_returns_the_money_to_the_balance_with_the_reason(self, payouts: PayoutsEnv) -> None:
        await funded(payouts)

        payout_id = await create(payouts, 500_20)  # emulator: cancel:recipient_not_found
        await payouts.submit()
        await payouts.settle()
        payout = await get(payouts, payout_id)

        assert payout["status"] == "failed"
        assert payout["failure_code"] == "recipient_not_found"
        assert await payouts.balance(BALANCE) == (10_000_00, 10_000_00)
        assert await payouts.balance(YK_CLEARING) == (0, 0)
        failed = await payouts.events("payout.failed")
        assert failed[0].payload["failure_code"] == "recipient_not_found"
        assert "Деньги вернулись на ваш баланс" in failed[0].payload["notification_text"]
        assert await payouts.audit() == []

    async def test_a_transient_refusal_is_retried_as_a_new_attempt(self, payouts: PayoutsEnv) -> None:
        await funded(payouts)
        payouts.yookassa.queue_outcome("cancel:issuer_unavailable")

        payout_id = await create(payouts, 1_000_00)
        await payouts.submit()
        await payouts.settle()
        between = await get(payouts, payout_id)
        await payouts.submit()
        await payouts.settle()
        payout = await get(payouts, payout_id)

        assert between["status"] == "pending"
        assert between["failure_code"] == "issuer_unavailable"
        assert payout["status"] == "succeeded"
        assert [a["status"] for a in payout["attempts"]] == ["failed", "succeeded"]
        sent_keys = [r["headers"]["idempotence-key"] for r in payouts.yookassa.requests if r["method"] == "POST"]
        assert sent_keys == [a["id"] for a in payout["attempts"]]
        assert sorted(r.obj["status"] for r in payouts.yookassa.payouts.values()) == ["canceled", "succeeded"]
        assert await payouts.balance(BALANCE) == (9_000_00, 9_000_00)
        assert await payouts.audit() == []

    async def test_a_timeout_leaves_the_outcome_unknown_until_the_status_sync_learns_it(
        self, payouts: PayoutsEnv
    ) -> None:
        await funded(payouts)
        payouts.yookassa.queue_outcome("hang", count=2)  # both HTTP attempts time out, nothing is created

        payout_id = await create(payouts, 2_000_00)
        await payouts.submit()
        unknown = await get(payouts, payout_id)
        await payouts.sync()  # the same create again, same Idempotence-Key
        synced = await get(payouts, payout_id)
        await payouts.settle()
        payout = await get(payouts, payout_id)

        assert unknown["status"] == "processing"
        assert unknown["attempts"][0]["status"] == "unknown"
        assert synced["attempts"][0]["status"] == "pending"
        assert payout["status"] == "succeeded"
        assert len(payouts.yookassa.payouts) == 1
        assert await payouts.balance(BALANCE) == (8_000_00, 8_000_00)
        assert await payouts.audit() == []

    async def test_an_answer_lost_after_the_payout_was_made_does_not_pay_twice(self, payouts: PayoutsEnv) -> None:
        await funded(payouts)
        payouts.yookassa.queue_outcome("drop_after_charge")

        payout_id = await create(payouts, 1_500_00)
        await payouts.submit()
        await payouts.settle()
        payout = await get(payouts, payout_id)

        assert payout["status"] == "succeeded"
        assert len(payouts.yookassa.payouts) == 1
        assert [e.kind for e in payouts.yookassa.ledger] == ["reserve", "payout"]
        assert await payouts.audit() == []

    async def test_a_duplicate_webhook_has_no_second_effect(self, payouts: PayoutsEnv) -> None:
        await funded(payouts)

        payout_id = await create(payouts, 700_61)  # emulator: webhook_duplicate
        await payouts.submit()
        await payouts.settle()

        deliveries = [d for d in payouts.yookassa.webhooks.deliveries if d.delivered]
        assert len(deliveries) == 2
        assert (await get(payouts, payout_id))["status"] == "succeeded"
        assert len(await payouts.events("payout.succeeded")) == 1
        assert await payouts.balance(BALANCE) == (10_000_00 - 700_61, 10_000_00 - 700_61)
        assert await payouts.audit() == []

    async def test_a_forged_notification_is_checked_against_the_api(self, payouts: PayoutsEnv) -> None:
        await funded(payouts)
        payout_id = await create(payouts, 800_00)
        await payouts.submit()
        provider_id = next(iter(payouts.yookassa.payouts))
        forged = {
            "type": "notification",
            "event": "payout.succeeded",
            "object": {"id": provider_id, "status": "succeeded"},
        }

        trusted_ip = await payouts.client.post("/v1/webhooks/payouts/yookassa_payouts", json=forged)
        transport = httpx.ASGITransport(app=payouts.app, client=("203.0.113.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://svc.test") as outsider:
            foreign_ip = await outsider.post("/v1/webhooks/payouts/yookassa_payouts", json=forged)
        unknown = await payouts.client.post(
            "/v1/webhooks/payouts/yookassa_payouts", json={**forged, "object": {"id": "po-nope"}}
        )

        assert trusted_ip.status_code == 200  # applied what the API says: still pending
        assert (await get(payouts, payout_id))["status"] == "processing"
        assert foreign_ip.status_code == 401
        assert unknown.status_code == 401
        assert await payouts.balance(BALANCE) == (10_000_00, 9_200_00)


class TestBankTransfers:
    DETAILS = {
        "method": "bank_account",
        "account_number": bank_account(42),
        "bic": BIC,
        "holder_name": "Иванов Иван Иванович",
    }

    async def test_a_bank_account_is_paid_and_the_signed_webhook_confirms_it(self, payouts: PayoutsEnv) -> None:
        await funded(payouts, details=self.DETAILS)

        payout_id = await create(payouts, 5_000_00)
        await payouts.submit()
        await payouts.settle()
        payout = await get(payouts, payout_id)

        sent = json.loads(next(r["body"] for r in payouts.bank.requests if r["method"] == "POST"))
        assert sent["recipient"] == {
            "name": "Иванов Иван Иванович",
            "account_number": self.DETAILS["account_number"],
            "bic": BIC,
        }
        assert sent["client_reference"] == payout["attempts"][0]["id"]
        assert payout["status"] == "succeeded"
        assert payout["provider"] == "bank_transfer"
        assert await payouts.balance(BANK_CLEARING) == (-5_000_00, -5_000_00)
        assert await payouts.audit() == []

    async def test_without_a_webhook_the_status_sync_finds_the_outcome(self, payouts: PayoutsEnv) -> None:
        await funded(payouts, details=self.DETAILS)

        payout_id = await create(payouts, 5_000_63)  # emulator: webhook_never
        await payouts.submit()
        await payouts.settle()
        before_sync = await get(payouts, payout_id)
        await payouts.sync()
        payout = await get(payouts, payout_id)

        assert before_sync["status"] == "processing"
        assert payout["status"] == "succeeded"
        assert await payouts.audit() == []

    async def test_a_lost_answer_is_found_by_our_reference(self, payouts: PayoutsEnv) -> None:
        await funded(payouts, details=self.DETAILS)
        payouts.bank.queue_outcome("error_500", count=2)

        payout_id = await create(payouts, 1_000_00)
        await payouts.submit()
        unknown = await get(payouts, payout_id)
        payouts.clock.offset += payout_service.NOT_REACHED_AFTER * 2
        await payouts.sync()  # the bank never got it: a definite failure, retried as a new attempt
        retried = await get(payouts, payout_id)
        await payouts.submit()
        await payouts.settle()
        payout = await get(payouts, payout_id)

        assert unknown["attempts"][0]["status"] == "unknown"
        assert retried["status"] == "pending"
        assert retried["failure_code"] == "provider_not_reached"
        assert [a["status"] for a in payout["attempts"]] == ["failed", "succeeded"]
        assert len(payouts.bank.transfers) == 1
        assert await payouts.audit() == []

    async def test_a_rejected_transfer_fails_and_a_forged_webhook_is_refused(self, payouts: PayoutsEnv) -> None:
        await funded(payouts, details=self.DETAILS)

        payout_id = await create(payouts, 2_000_21)  # emulator: reject:account_closed
        await payouts.submit()
        forged = await payouts.client.post(
            "/v1/webhooks/payouts/bank_transfer",
            content=b'{"id": "evt_1", "type": "transfer.completed", "created_at": 1, "data": {}}',
            headers={"X-BT-Signature": "t=1,v1=deadbeef"},
        )
        await payouts.settle()
        payout = await get(payouts, payout_id)

        assert forged.status_code == 401
        assert payout["status"] == "failed"
        assert payout["failure_code"] == "invalid_destination"
        assert await payouts.balance(BALANCE) == (10_000_00, 10_000_00)
        assert await payouts.audit() == []


class TestCreation:
    async def test_refusals_leave_nothing_behind(self, payouts: PayoutsEnv) -> None:
        await payouts.set_up_payee("unverified", verify=False)
        await payouts.set_up_payee(STREAMER)
        await payouts.credit(BALANCE, 1_000_00)

        with pytest.raises(payout_service.PayeeNotVerified):
            await create(payouts, 600_00, user="unverified")
        with pytest.raises(payout_service.PayeeNotFound):
            await create(payouts, 600_00, user="nobody")
        with pytest.raises(payout_service.PayoutBelowMinimum):
            await create(payouts, 100_00)
        with pytest.raises(payout_service.InsufficientBalance):
            await create(payouts, 2_000_00)

        assert await payouts.scalar("SELECT count(*) FROM payouts") == 0
        assert await payouts.balance(BALANCE) == (1_000_00, 1_000_00)

    async def test_the_same_reference_creates_one_payout(self, payouts: PayoutsEnv) -> None:
        await funded(payouts)
        ids = []
        for _ in range(2):
            async with transaction(payouts.resources.sessionmaker) as session:
                payout = await payout_service.create_payout(
                    session,
                    user_id=STREAMER,
                    source=PayoutSource.streamer,
                    balance_account=BALANCE,
                    amount=Money(1_000_00, "RUB"),
                    reference="streamer:streamer-7:2026-W48",
                    description="Выплата",
                    router=payouts.registry,
                    now=payouts.clock.now(),
                    created_by="test",
                )
                ids.append(payout.id)

        assert ids[0] == ids[1]
        assert await payouts.balance(BALANCE) == (10_000_00, 9_000_00)


class TestOperators:
    async def test_cancel_returns_the_money_only_while_no_provider_has_the_payout(self, payouts: PayoutsEnv) -> None:
        await funded(payouts)
        waiting = await create(payouts, 1_000_00)
        canceled = await payouts.client.post(f"/v1/admin/payouts/{waiting}/cancel", headers=payouts.admin())
        sent = await create(payouts, 2_000_00)
        await payouts.submit()

        refused = await payouts.client.post(f"/v1/admin/payouts/{sent}/cancel", headers=payouts.admin())
        by_user = await payouts.client.post(f"/v1/admin/payouts/{sent}/cancel", headers=payouts.user(STREAMER))

        assert canceled.status_code == 200
        assert canceled.json()["status"] == "canceled"
        assert refused.status_code == 409
        assert refused.json()["code"] == "payout_not_cancelable"
        assert by_user.status_code == 403
        assert len(await payouts.events("payout.canceled")) == 1
        assert await payouts.balance(BALANCE) == (10_000_00, 8_000_00)
        assert await payouts.audit() == []

    async def test_retry_asks_the_provider_now_and_stuck_payouts_are_reported(self, payouts: PayoutsEnv) -> None:
        await funded(payouts)
        payouts.clock.offset = -timedelta(hours=3)
        payout_id = await create(payouts, 1_000_00)
        payouts.clock.offset = timedelta()
        await payouts.submit()
        stuck = await payouts.health()
        listed = await payouts.client.get("/v1/admin/payouts?stuck=true", headers=payouts.admin())
        payouts.yookassa.config.webhook_url = None  # the notification never comes
        payouts.yookassa.settle(next(iter(payouts.yookassa.payouts)))

        retried = await payouts.client.post(f"/v1/admin/payouts/{payout_id}/retry", headers=payouts.admin())
        again = await payouts.client.post(f"/v1/admin/payouts/{payout_id}/retry", headers=payouts.admin())

        gauge = REGISTRY.get_sample_value("payouts_stuck", {"source": "streamer", "status": "processing"})
        assert stuck is False
        assert gauge == 1.0
        assert [p["id"] for p in listed.json()["items"]] == [str(payout_id)]
        assert retried.status_code == 200
        assert retried.json()["status"] == "succeeded"
        assert again.status_code == 409
        assert await payouts.audit() == []


class TestPayeeAccounts:
    async def test_details_are_stored_encrypted_and_shown_masked(self, payouts: PayoutsEnv) -> None:
        account = bank_account(7)
        details = {"method": "bank_account", "account_number": account, "bic": BIC, "holder_name": "Петров Пётр"}

        payee = await payouts.set_up_payee("streamer-9", details, verify=False, schedule="weekly", schedule_day=5)
        stored = await payouts.scalar("SELECT details_ciphertext FROM payee_accounts WHERE user_id = 'streamer-9'")
        mine = await payouts.client.get("/v1/payees/me", headers=payouts.user("streamer-9"))

        assert payee["destination"] == f"account *{account[-4:]} (BIC {BIC})"
        assert payee["kyc_status"] == "unverified"
        assert stored.startswith("vault:v")
        assert account not in stored
        assert "Петров" not in stored
        assert mine.json()["schedule"] == "weekly"
        assert mine.json()["schedule_day"] == 5

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            (
                {
                    "details": {
                        "method": "bank_account",
                        "account_number": "40817810099910004312",
                        "bic": BIC,
                        "holder_name": "X",
                    }
                },
                "invalid_payout_details",
            ),
            ({"details": {"method": "sbp", "phone": "79001234567"}}, "invalid_payout_details"),
            ({"schedule": "weekly"}, "invalid_schedule"),
            ({"schedule": "monthly", "schedule_day": 31}, "validation_failed"),
            ({"min_payout": {"value": "10.00", "currency": "RUB"}}, "amount_below_minimum"),
        ],
    )
    async def test_bad_settings_are_refused(self, payouts: PayoutsEnv, body: dict[str, Any], code: str) -> None:
        r = await payouts.client.put("/v1/payees/me", json=body, headers=payouts.user("streamer-9"))

        assert r.status_code == 422
        assert r.json()["code"] == code

    async def test_users_see_only_their_own_payouts_and_payee(self, payouts: PayoutsEnv) -> None:
        await funded(payouts)
        payout_id = await create(payouts, 1_000_00)

        other = await payouts.client.get(f"/v1/payouts/{payout_id}", headers=payouts.user("someone-else"))
        admin = await payouts.client.get(f"/v1/payouts/{payout_id}", headers=payouts.admin())
        service = await payouts.client.get("/v1/payees/me", headers=payouts.social())
        verification = await payouts.client.put(
            f"/v1/admin/payees/{STREAMER}/verification", json={"status": "verified"}, headers=payouts.user(STREAMER)
        )

        assert other.status_code == 404
        assert admin.status_code == 200
        assert service.status_code == 403
        assert verification.status_code == 403


class TestVaultOutage:
    async def test_nothing_is_sent_or_stored_while_vault_is_down(self, payouts: PayoutsEnv) -> None:
        await funded(payouts)
        payout_id = await create(payouts, 1_000_00)
        vault = payouts.resources.settings.vault
        addr, vault.addr = vault.addr, "http://127.0.0.1:9"
        try:
            await payouts.submit()
            waiting = await get(payouts, payout_id)
            refused = await payouts.client.put(
                "/v1/payees/me",
                json={"details": {"method": "yoomoney", "account_number": "4100116075156746"}},
                headers=payouts.user(STREAMER),
            )
        finally:
            vault.addr = addr
        canceled = await payouts.client.post(f"/v1/admin/payouts/{payout_id}/cancel", headers=payouts.admin())

        assert waiting["status"] == "pending"
        assert waiting["attempts"][0]["status"] == "created"
        assert payouts.yookassa.requests == []
        assert (refused.status_code, refused.json()["code"]) == (503, "payout_details_unavailable")
        assert (await payouts.client.get("/v1/payees/me", headers=payouts.user(STREAMER))).json()[
            "method"
        ] == "bank_card"
        assert canceled.json()["status"] == "canceled"
        assert await payouts.audit() == []
