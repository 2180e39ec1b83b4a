"""Referral payouts for the Social Service: REST and Kafka intake, one payout and one answer per request."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from payment_service.db import transaction
from payment_service.inbox import service as inbox_service
from payment_service.inbox.consumer import EventConsumer
from payment_service.inbox.schemas import IncomingEvent
from payment_service.inbox.service import PermanentError
from payment_service.ledger import accounts
from payment_service.outbox.relay import OutboxRelay
from payment_service.referral_payout import tasks as referral_tasks
from tests.outbox.helpers import binary_event, isolated_settings, produce, read_topic, running, wait_until
from tests.payout.conftest import PayoutsEnv

EXPENSE = accounts.referral_expense()


def request(request_id: str, user: str, value: str, method: str = "bank", **extra: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "user_id": user,
        "amount": {"value": value, "currency": extra.pop("currency", "RUB")},
        "reason": "Друг купил первую игру",
        "referral_id": f"ref-{request_id}",
        "method": method,
        **extra,
    }


def kafka_data(body: dict[str, Any]) -> dict[str, Any]:
    value = body["amount"]["value"].replace(".", "")
    return {
        **{k: v for k, v in body.items() if k != "amount"},
        "amount_minor": int(value),
        "currency": body["amount"]["currency"],
    }


async def post(env: PayoutsEnv, body: dict[str, Any], **headers: Any) -> Any:
    return await env.client.post("/v1/referral-payouts", json=body, headers=headers or env.social())


async def status(env: PayoutsEnv, request_id: str) -> dict[str, Any]:
    r = await env.client.get(f"/v1/referral-payouts/{request_id}", headers=env.social())
    assert r.status_code == 200, r.text
    return dict(r.json())


async def answers(env: PayoutsEnv) -> dict[str, list[str]]:
    """request id → the answer event types written for it."""
    out: dict[str, list[str]] = {}
    for t in ("referral_payout.completed", "referral_payout.failed"):
        for e in await env.events(t):
            out.setdefault(e.key, []).append(t.split(".")[1])
    return out


async def deliver(env: PayoutsEnv, event_id: str, data: dict[str, Any], source: str = "social-service") -> bool:
    event = IncomingEvent(
        id=event_id,
        source=source,
        type=referral_tasks.REQUEST_TYPE,
        data=data,
        topic=referral_tasks.REQUEST_TOPIC,
        partition=0,
        offset=0,
        key=data.get("user_id"),
    )
    async with transaction(env.resources.sessionmaker) as session:
        return await inbox_service.process(session, event, referral_tasks.handle_referral_request)


class TestOnceAndOnlyOnce:
    async def test_a_request_delivered_again_over_rest_and_kafka_is_paid_once_and_answered_once(
        self, payouts: PayoutsEnv
    ) -> None:
        await payouts.set_up_payee("referrer-1")
        body = request("req-1", "referrer-1", "500.00")

        first = await post(payouts, body)
        again = await post(payouts, body)  # another Idempotency-Key: the request id decides
        redelivered = await deliver(payouts, "evt-1", kafka_data(body))
        replayed = await deliver(payouts, "evt-1", kafka_data(body))  # the inbox drops it
        await payouts.submit()
        await payouts.settle()
        await payouts.sync()
        late = await deliver(payouts, "evt-2", kafka_data(body))  # a producer retry with a new event id

        assert first.status_code == 201
        assert again.status_code == 200
        assert again.json()["payout_id"] == first.json()["payout_id"] is not None
        assert (redelivered, replayed, late) == (True, False, True)
        assert (await status(payouts, "req-1"))["status"] == "completed"
        assert await payouts.scalar("SELECT count(*) FROM payouts") == 1
        assert len(payouts.yookassa.payouts) == 1
        assert await answers(payouts) == {"req-1": ["completed"]}
        assert await payouts.balance(accounts.referrer_balance("referrer-1")) == (0, 0)
        assert await payouts.balance(EXPENSE) == (500_00, 500_00)
        assert await payouts.audit() == []

    async def test_some_failing_at_the_provider_get_one_failed_answer_each(self, payouts: PayoutsEnv) -> None:
        amounts = {"r-ok-1": "300.00", "r-gone": "300.20", "r-declined": "300.16", "r-ok-2": "400.00"}
        for request_id, value in amounts.items():
            user = f"user-{request_id}"
            await payouts.set_up_payee(user)
            assert (await post(payouts, request(request_id, user, value))).status_code == 201

        await payouts.submit()
        await payouts.settle()
        await post(payouts, request("r-gone", "user-r-gone", "300.20"))  # asked again after the answer

        got = await answers(payouts)
        assert got == {"r-ok-1": ["completed"], "r-gone": ["failed"], "r-declined": ["failed"], "r-ok-2": ["completed"]}
        failed = {e.key: e.payload["reason_code"] for e in await payouts.events("referral_payout.failed")}
        assert failed == {"r-gone": "recipient_not_found", "r-declined": "general_decline"}
        assert (await status(payouts, "r-gone"))["failure_code"] == "recipient_not_found"
        for request_id in amounts:
            assert await payouts.balance(accounts.referrer_balance(f"user-{request_id}")) == (0, 0)
        assert await payouts.balance(EXPENSE) == (700_00, 700_00)  # failed rewards were reversed
        assert await payouts.audit() == []

    async def test_a_transient_failure_is_retried_and_answered_once(self, payouts: PayoutsEnv) -> None:
        await payouts.set_up_payee("referrer-2")
        payouts.yookassa.queue_outcome("cancel:issuer_unavailable")

        await post(payouts, request("req-retry", "referrer-2", "250.00"))
        for _ in range(2):
            await payouts.submit()
            await payouts.settle()

        answered = await status(payouts, "req-retry")
        assert answered["status"] == "completed"
        assert await answers(payouts) == {"req-retry": ["completed"]}
        assert sorted(r.obj["status"] for r in payouts.yookassa.payouts.values()) == ["canceled", "succeeded"]

    async def test_over_kafka_two_deliveries_give_one_payout_and_one_published_answer(
        self, payouts: PayoutsEnv
    ) -> None:
        await payouts.set_up_payee("referrer-k")
        kafka = isolated_settings(payouts.resources.settings)
        data = kafka_data(request("req-kafka", "referrer-k", "600.00"))
        headers, value = binary_event(event_id="ce-1", type=referral_tasks.REQUEST_TYPE, data=data)
        await produce(kafka, referral_tasks.REQUEST_TOPIC, [("referrer-k", headers, value)] * 2)
        consumer = EventConsumer(kafka, payouts.resources.sessionmaker, dict(referral_tasks.CONSUMERS))
        relay = OutboxRelay(kafka)

        async with running(consumer.run), running(relay.run):
            await wait_until(
                lambda: consumer.stats.processed + consumer.stats.duplicates >= 2, timeout=30, what="both deliveries"
            )
            await payouts.submit()
            await payouts.settle()
            published = await read_topic(kafka, "payments.referral_payout", count=1, extra_wait=1.0)

        assert (consumer.stats.processed, consumer.stats.duplicates) == (1, 1)
        assert len(published) == 1
        assert orjson.loads(published[0].value)["request_id"] == "req-kafka"
        assert dict(published[0].headers)["ce_type"] == b"referral_payout.completed"
        assert len(payouts.yookassa.payouts) == 1


class TestMethodsAndRefusals:
    async def test_internal_balance_credits_the_wallet_at_once(self, payouts: PayoutsEnv) -> None:
        r = await post(payouts, request("req-wallet", "player-1", "150.00", method="internal_balance"))
        over = await post(payouts, request("req-too-much", "player-1", "70000.00", method="internal_balance"))

        assert r.status_code == 201
        assert r.json()["status"] == "completed"
        assert over.json()["status"] == "failed"
        assert over.json()["failure_code"] == "wallet_limit_exceeded"
        assert await payouts.balance(accounts.user_wallet("player-1")) == (150_00, 150_00)
        assert await answers(payouts) == {"req-wallet": ["completed"], "req-too-much": ["failed"]}
        assert await payouts.audit() == []

    async def test_refusals_are_failed_answers_and_credit_nothing(self, payouts: PayoutsEnv) -> None:
        await payouts.set_up_payee("unverified", verify=False)
        await payouts.set_up_payee("card-holder")
        cases = {
            "no-payee": request("no-payee", "stranger", "100.00"),
            "unverified": request("unverified", "unverified", "100.00"),
            "wrong-method": request("wrong-method", "card-holder", "100.00", method="e_wallet"),
            "dollars": request("dollars", "card-holder", "100.00", currency="USD"),
        }

        got = {k: (await post(payouts, body)).json() for k, body in cases.items()}

        assert {k: (v["status"], v["failure_code"]) for k, v in got.items()} == {
            "no-payee": ("failed", "payee_not_found"),
            "unverified": ("failed", "payee_not_verified"),
            "wrong-method": ("failed", "payout_method_missing"),
            "dollars": ("failed", "invalid_amount"),
        }
        assert await payouts.scalar("SELECT count(*) FROM ledger_transfers") == 0
        assert set(await answers(payouts)) == set(cases)

    async def test_the_same_request_id_with_other_content_is_refused(self, payouts: PayoutsEnv) -> None:
        await post(payouts, request("req-c", "player-2", "100.00", method="internal_balance"))

        conflict = await post(payouts, request("req-c", "player-2", "999.00", method="internal_balance"))
        with pytest.raises(PermanentError):
            await deliver(payouts, "evt-c", kafka_data(request("req-c", "player-2", "5.00", method="internal_balance")))

        assert conflict.status_code == 409
        assert conflict.json()["code"] == "referral_request_conflict"
        assert await payouts.balance(accounts.user_wallet("player-2")) == (100_00, 100_00)

    async def test_unknown_sources_and_malformed_requests_go_to_the_dead_letter_queue(
        self, payouts: PayoutsEnv
    ) -> None:
        good = kafka_data(request("req-x", "player-3", "10.00", method="internal_balance"))

        with pytest.raises(PermanentError, match="not accepted"):
            await deliver(payouts, "evt-x1", good, source="streaming-service")
        with pytest.raises(PermanentError, match="invalid"):
            await deliver(payouts, "evt-x2", {**good, "amount_minor": -5})

        assert await payouts.scalar("SELECT count(*) FROM referral_payouts") == 0


class TestAccessAndOperators:
    async def test_status_is_for_the_social_service_and_operators(self, payouts: PayoutsEnv) -> None:
        await post(payouts, request("req-s", "player-4", "10.00", method="internal_balance"))

        user = await payouts.client.get("/v1/referral-payouts/req-s", headers=payouts.user("player-4"))
        writer_only = await payouts.client.get(
            "/v1/referral-payouts/req-s", headers=payouts.social(["referral_payouts:write"])
        )
        admin = await payouts.client.get("/v1/referral-payouts/req-s", headers=payouts.admin())
        unknown = await payouts.client.get("/v1/referral-payouts/nope", headers=payouts.social())
        no_scope = await post(
            payouts, request("req-t", "player-4", "10.00"), **payouts.social(["referral_payouts:read"])
        )

        assert (user.status_code, writer_only.status_code, admin.status_code) == (404, 404, 200)
        assert unknown.status_code == 404
        assert no_scope.status_code == 403

    async def test_an_operator_cancel_answers_failed_and_reverses_the_reward(self, payouts: PayoutsEnv) -> None:
        await payouts.set_up_payee("referrer-5")
        await post(payouts, request("req-cancel", "referrer-5", "200.00"))
        await post(payouts, request("req-go", "referrer-5", "300.00"))

        canceled = await payouts.client.post("/v1/admin/referral-payouts/req-cancel/cancel", headers=payouts.admin())
        retried = await payouts.client.post("/v1/admin/referral-payouts/req-go/retry", headers=payouts.admin())
        again = await payouts.client.post("/v1/admin/referral-payouts/req-cancel/cancel", headers=payouts.admin())

        assert canceled.status_code == 200
        assert (canceled.json()["status"], canceled.json()["failure_code"]) == ("failed", "canceled")
        assert canceled.json()["payout_status"] == "canceled"
        assert retried.json()["payout_status"] == "processing"
        assert again.status_code == 409
        assert await answers(payouts) == {"req-cancel": ["failed"]}
        assert await payouts.balance(accounts.referrer_balance("referrer-5")) == (300_00, 0)
        assert await payouts.audit() == []
