"""Refunds end to end: API → rules → ledger hold → provider emulator → apply → events.

Every scenario ends with the money: the provider really refunded exactly what we booked (its
truth ledger), the payment's ``refunded_amount`` says the same, and the whole ledger still
balances (``env.audit()``).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from payment_service.providers.registry import UnknownProvider
from tests.refund.conftest import PROVIDERS, RefundsEnv


def kopecks(value: str) -> int:
    whole, _, frac = value.partition(".")
    return int(whole) * 100 + int(frac or 0)


@pytest.mark.parametrize("provider", PROVIDERS)
class TestToTheOriginalMethod:
    async def test_full_refund_gives_everything_back_once(self, refunds: RefundsEnv, provider: str) -> None:
        payment = await refunds.paid(provider)
        clearing_before = await refunds.balance(f"provider:{provider}:clearing")

        r = await refunds.refund(payment["id"])

        assert r.status_code == 201, r.text
        refund = r.json()
        assert refund["status"] == "succeeded"
        assert refund["amount"] == {"value": "499.00", "currency": "RUB"}
        assert refund["decision"] == "auto"
        assert refund["provider"] == provider
        assert refunds.provider_refunds(provider) == 49_900
        paid = (await refunds.client.get(f"/v1/payments/{payment['id']}", headers=refunds.user("u1"))).json()
        assert paid["refunded_amount"]["value"] == "499.00"
        assert await refunds.balance("platform:order_clearing") == 0
        assert await refunds.balance(f"provider:{provider}:clearing") == clearing_before + 49_900
        assert await refunds.events(refund["id"]) == ["refund.requested", "refund.succeeded"]
        assert (await refunds.events(payment["id"]))[-1] == "payment.refunded"
        await refunds.flush()
        await refunds.worker.apply_webhooks()  # the provider's own notifications change nothing
        assert await refunds.balance("platform:order_clearing") == 0
        failing = await refunds.rows(
            "SELECT kind, event_type, last_error FROM provider_events WHERE last_error IS NOT NULL"
        )
        assert failing == []
        assert await refunds.audit() == []

    async def test_partial_refunds_up_to_the_captured_amount(self, refunds: RefundsEnv, provider: str) -> None:
        payment = await refunds.paid(provider, amount="1000.00")

        first = await refunds.refund(payment["id"], amount="300.00")
        second = await refunds.refund(payment["id"], amount="200.00")
        rest = await refunds.refund(payment["id"])  # no amount: what is left
        beyond = await refunds.refund(payment["id"], amount="0.01")

        assert [r.json()["status"] for r in (first, second, rest)] == ["succeeded"] * 3
        assert rest.json()["amount"]["value"] == "500.00"
        assert beyond.status_code == 409
        assert beyond.json()["code"] == "refund_exceeds_payment"
        assert beyond.json()["available"]["value"] == "0.00"
        assert refunds.provider_refunds(provider) == 100_000
        assert await refunds.balance("platform:order_clearing") == 0
        fully = (await refunds.payloads("payment.refunded"))[-1]
        assert (fully["refunded_minor"], fully["fully_refunded"]) == (100_000, True)
        assert await refunds.audit() == []


class TestToTheWallet:
    async def test_wallet_refund_is_instant_and_never_touches_the_provider(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("tbank", user="alice", amount="799.00")

        r = await refunds.refund(payment["id"], user="alice", amount="300.00", destination="wallet")

        assert r.status_code == 201, r.text
        assert r.json()["status"] == "succeeded"
        assert r.json()["destination"] == "wallet"
        assert refunds.provider_refunds("tbank") == 0
        assert await refunds.balance("user:alice:wallet") == 30_000
        assert await refunds.balance("platform:order_clearing") == 49_900
        notice = (await refunds.payloads("refund.succeeded"))[-1]["notification_text"]
        assert notice == "Возврат 300,00\u00a0₽ зачислен на ваш кошелёк."
        assert await refunds.audit() == []

    async def test_a_top_up_cannot_be_refunded_into_the_wallet(self, refunds: RefundsEnv) -> None:
        r = await refunds.client.post(
            "/v1/payments",
            json={
                "amount": {"value": "100.00", "currency": "RUB"},
                "method": "bank_card",
                "description": "Top-up",
                "return_url": "https://store.example/return",
                "provider": "yookassa",
            },
            headers=refunds.user("u1"),
        )
        pid = r.json()["id"]
        await refunds.scalar(
            "UPDATE payments SET purpose = 'wallet_top_up', status = 'succeeded', captured_minor = amount_minor, "
            "succeeded_at = now() WHERE id = :p RETURNING 1",
            p=uuid.UUID(pid),
        )

        r = await refunds.refund(pid, destination="wallet")

        assert r.status_code == 409
        assert r.json()["code"] == "refund_destination_not_allowed"


class TestNotRefundable:
    async def test_an_unpaid_payment_cannot_be_refunded(self, refunds: RefundsEnv) -> None:
        r = await refunds.client.post(
            "/v1/payments",
            json={
                "amount": {"value": "100.00", "currency": "RUB"},
                "method": "bank_card",
                "description": "Game",
                "return_url": "https://store.example/return",
                "provider": "yookassa",
            },
            headers=refunds.user("u1"),
        )

        refused = await refunds.refund(r.json()["id"])

        assert refused.status_code == 409
        assert refused.json()["code"] == "payment_not_refundable"
        assert await refunds.scalar("SELECT count(*) FROM refunds") == 0

    async def test_amount_in_another_currency_is_invalid(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa")

        r = await refunds.client.post(
            "/v1/refunds",
            json={"payment_id": payment["id"], "amount": {"value": "1.00", "currency": "USD"}, "reason": "x"},
            headers=refunds.user("u1"),
        )

        assert r.status_code == 422
        assert r.json()["code"] == "invalid_refund_amount"


class TestConcurrentRequests:
    async def test_racing_partial_refunds_never_exceed_the_payment(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa", amount="1000.00")

        answers = await asyncio.gather(*(refunds.refund(payment["id"], amount="300.00") for _ in range(6)))

        codes = sorted(r.status_code for r in answers)
        assert codes == [201, 201, 201, 409, 409, 409], [r.text for r in answers]
        assert {r.json()["code"] for r in answers if r.status_code == 409} == {"refund_exceeds_payment"}
        assert refunds.provider_refunds("yookassa") == 90_000
        assert await refunds.scalar("SELECT refunded_minor FROM payments") == 90_000
        assert await refunds.scalar("SELECT sum(amount_minor) FROM refunds") == 90_000
        assert await refunds.balance("platform:order_clearing") == 10_000
        assert await refunds.audit() == []

    async def test_racing_full_refunds_to_both_destinations_refund_once(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("sber", amount="250.00")

        answers = await asyncio.gather(
            refunds.refund(payment["id"]),
            refunds.refund(payment["id"], destination="wallet"),
            refunds.refund(payment["id"]),
        )

        assert sorted(r.status_code for r in answers) == [201, 409, 409]
        wallet = await refunds.balance("user:u1:wallet")
        assert wallet + refunds.provider_refunds("sber") == 25_000
        assert await refunds.audit() == []


class TestLostAnswers:
    @pytest.mark.parametrize("provider", ["yookassa", "sber"])
    async def test_a_lost_answer_is_unknown_until_the_sync_resolves_it(
        self, refunds: RefundsEnv, provider: str
    ) -> None:
        payment = await refunds.paid(provider)
        refunds.faults.lose_answer(provider)  # the provider refunds; we never hear back

        r = await refunds.refund(payment["id"])

        assert r.status_code == 201, r.text
        assert r.json()["status"] == "unknown"
        assert refunds.provider_refunds(provider) == 49_900
        assert await refunds.scalar("SELECT refunded_minor FROM payments") == 0
        held = await refunds.scalar("SELECT count(*) FROM ledger_holds WHERE status = 'pending'")
        assert held == 1

        await refunds.make_due()
        await refunds.worker.sync_refunds()

        resolved = await refunds.client.get(f"/v1/refunds/{r.json()['id']}", headers=refunds.user("u1"))
        assert resolved.json()["status"] == "succeeded"
        assert refunds.provider_refunds(provider) == 49_900  # not twice
        assert await refunds.scalar("SELECT refunded_minor FROM payments") == 49_900
        assert await refunds.balance("platform:order_clearing") == 0
        assert await refunds.audit() == []

    @pytest.mark.parametrize("provider", ["mobile", "sber"])
    async def test_a_lost_request_is_made_once_by_the_sync(self, refunds: RefundsEnv, provider: str) -> None:
        payment = await refunds.paid(provider)
        refunds.faults.lose_request(provider)  # the provider never saw it; we cannot tell

        r = await refunds.refund(payment["id"], amount="100.00")

        assert r.json()["status"] == "unknown"
        assert refunds.provider_refunds(provider) == 0

        await refunds.make_due()
        await refunds.worker.sync_refunds()
        await refunds.make_due()
        await refunds.worker.sync_refunds()  # a second pass changes nothing

        resolved = await refunds.client.get(f"/v1/refunds/{r.json()['id']}", headers=refunds.user("u1"))
        assert resolved.json()["status"] == "succeeded"
        assert refunds.provider_refunds(provider) == 10_000
        assert await refunds.scalar("SELECT refunded_minor FROM payments") == 10_000
        assert await refunds.audit() == []

    async def test_sber_waits_while_a_call_may_still_be_in_flight(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("sber")
        refunds.faults.lose_request("sber")
        refund = (await refunds.refund(payment["id"])).json()
        await refunds.scalar("UPDATE refunds SET next_sync_at = now() - interval '1 second' RETURNING 1")

        await refunds.worker.sync_refunds()  # the total shows nothing, but the call is too recent

        assert await refunds.scalar("SELECT status FROM refunds") == "unknown"
        assert refunds.provider_refunds("sber") == 0
        assert refund["status"] == "unknown"

    async def test_an_answer_lost_too_long_ago_is_left_to_an_operator(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa")
        refunds.faults.lose_request("yookassa")
        refund = (await refunds.refund(payment["id"])).json()
        await refunds.scalar(
            "UPDATE refunds SET created_at = now() - interval '21 hours', next_sync_at = now() RETURNING 1"
        )

        await refunds.worker.sync_refunds()  # a replay could fall outside the provider's idempotency window

        status, due = (await refunds.rows("SELECT status, next_sync_at FROM refunds"))[0]
        assert (status, due) == ("unknown", None)
        assert refunds.provider_refunds("yookassa") == 0
        assert refund["status"] == "unknown"

    @pytest.mark.parametrize("provider", ["sber", "yookassa"])
    async def test_a_provider_switched_off_here_leaves_the_refund_for_later(
        self, refunds: RefundsEnv, monkeypatch: pytest.MonkeyPatch, provider: str
    ) -> None:
        payment = await refunds.paid(provider)
        refunds.faults.lose_request(provider)
        await refunds.refund(payment["id"])
        await refunds.scalar(
            "UPDATE refunds SET created_at = now() - interval '21 hours', "
            "next_sync_at = now() - interval '1 second' RETURNING 1"
        )
        registry = refunds.resources.providers
        assert registry is not None
        resolve = registry.resolve

        def switched_off(name: str) -> Any:
            if name == provider:
                raise UnknownProvider(f"{name} is switched off")
            return resolve(name)

        monkeypatch.setattr(registry, "resolve", switched_off)

        await refunds.worker.sync_refunds()  # nothing can be asked or called: neither done nor parked

        status, due = (await refunds.rows("SELECT status, next_sync_at FROM refunds"))[0]
        assert status == "unknown"
        assert due is not None  # asked again later, not left to an operator
        assert refunds.provider_refunds(provider) == 0


class TestProviderRefusal:
    async def test_a_refused_refund_fails_and_releases_the_money(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("sber")
        state = refunds.emulator("sber")
        order = next(iter(state.orders.values()))  # type: ignore[attr-defined]
        state.refund(order, 49_900)  # refunded out of band (the provider's dashboard)

        r = await refunds.refund(payment["id"])

        assert r.status_code == 201, r.text
        assert r.json()["status"] == "failed"
        assert await refunds.events(r.json()["id"]) == ["refund.requested", "refund.failed"]
        assert await refunds.scalar("SELECT refunded_minor FROM payments") == 0
        assert await refunds.scalar("SELECT count(*) FROM ledger_holds WHERE status = 'pending'") == 0
        assert await refunds.balance("platform:order_clearing") == 49_900
        retry = await refunds.refund(payment["id"], destination="wallet")  # the reservation was released
        assert retry.json()["status"] == "succeeded"
        assert await refunds.audit() == []


class TestIdempotency:
    async def test_the_same_key_replays_the_refund(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("mobile")
        headers = refunds.user("u1", key="refund-1")

        first = await refunds.refund(payment["id"], amount="100.00", headers=headers)
        second = await refunds.refund(payment["id"], amount="100.00", headers=headers)

        assert second.content == first.content
        assert second.headers["idempotent-replayed"] == "true"
        assert await refunds.scalar("SELECT count(*) FROM refunds") == 1
        assert refunds.provider_refunds("mobile") == 10_000


class TestWebhooks:
    async def test_refund_notifications_are_matched_and_change_nothing_twice(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa")
        refund = (await refunds.refund(payment["id"], amount="100.00")).json()
        await refunds.flush()

        await refunds.worker.apply_webhooks()
        await refunds.worker.apply_webhooks()

        processed = await refunds.scalar(
            "SELECT count(*) FROM provider_events WHERE kind = 'refund' AND status = 'processed'"
        )
        assert processed >= 1
        assert await refunds.events(refund["id"]) == ["refund.requested", "refund.succeeded"]
        assert kopecks("100.00") == await refunds.scalar("SELECT refunded_minor FROM payments")

    async def test_a_notification_for_a_refund_we_do_not_know_is_kept_as_orphaned(self, refunds: RefundsEnv) -> None:
        await refunds.scalar(
            "INSERT INTO provider_events (id, provider, external_id, kind, event_type, provider_payment_id, summary) "
            "VALUES (gen_random_uuid(), 'mobile', 'evt-x', 'refund', 'refund.succeeded', 'ch-x', "
            '\'{"provider_refund_id": "rf-x", "status": "succeeded", "amount_minor": 100, '
            '"currency": "RUB"}\') RETURNING 1'
        )

        await refunds.worker.apply_webhooks()
        waiting = await refunds.scalar("SELECT status FROM provider_events")
        for _ in range(9):
            await refunds.worker.apply_webhooks()

        assert waiting == "received"  # our own answer may not be committed yet: retried
        assert await refunds.scalar("SELECT status FROM provider_events") == "orphaned"
