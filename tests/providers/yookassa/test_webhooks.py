from __future__ import annotations

import json

import pytest

from payment_service.providers.errors import ProviderSignatureInvalid
from payment_service.providers.ports import EventKind, PaymentRef, ProviderStatus
from tests.providers.harness import Harness


async def paid(h: Harness, amount: int = 10_000, *, capture: bool = True) -> str:
    created = await h.adapter.authorize(h.request(amount, capture=capture))
    await h.pay(created.provider_payment_id)
    return str(created.provider_payment_id)


class TestVerification:
    async def test_notification_from_the_allow_list_is_refetched(self, yookassa: Harness) -> None:
        pid = await paid(yookassa)
        await yookassa.flush()

        event = await yookassa.adapter.parse_webhook(yookassa.sink.received[0].body, {}, remote_addr="127.0.0.1")

        assert event.kind is EventKind.payment
        assert event.event_type == "payment.succeeded"
        assert event.payment is not None
        assert event.payment.status is ProviderStatus.succeeded
        assert event.external_id == f"payment.succeeded:{pid}:succeeded"
        assert event.idempotency_key is not None

    async def test_notification_from_outside_the_allow_list_is_rejected(self, yookassa: Harness) -> None:
        await paid(yookassa)
        await yookassa.flush()

        with pytest.raises(ProviderSignatureInvalid):
            await yookassa.adapter.parse_webhook(yookassa.sink.received[0].body, {}, remote_addr="203.0.113.7")

    async def test_forged_content_is_replaced_by_the_api_truth(self, yookassa: Harness) -> None:
        created = await yookassa.adapter.authorize(yookassa.request(10_000))
        forged = {
            "type": "notification",
            "event": "payment.succeeded",
            "object": {
                "id": created.provider_payment_id,
                "status": "succeeded",
                "amount": {"value": "1.00", "currency": "RUB"},
            },
        }

        event = await yookassa.adapter.parse_webhook(json.dumps(forged).encode(), {}, remote_addr="127.0.0.1")

        assert event.payment is not None
        assert event.payment.status is ProviderStatus.requires_action
        assert event.payment.amount_minor == 10_000

    async def test_notification_about_an_unknown_object_is_rejected(self, yookassa: Harness) -> None:
        forged = {"type": "notification", "event": "payment.succeeded", "object": {"id": "nope"}}

        with pytest.raises(ProviderSignatureInvalid):
            await yookassa.adapter.parse_webhook(json.dumps(forged).encode(), {}, remote_addr="127.0.0.1")

    async def test_refund_notification(self, yookassa: Harness) -> None:
        pid = await paid(yookassa)
        await yookassa.adapter.refund(PaymentRef("k", pid), amount_minor=500, currency="RUB", idempotency_key="rf-1")
        await yookassa.flush()
        body = next(r.body for r in yookassa.sink.received if b"refund.succeeded" in r.body)

        event = await yookassa.adapter.parse_webhook(body, {}, remote_addr="127.0.0.1")

        assert event.kind is EventKind.refund
        assert event.refund is not None
        assert event.refund.amount_minor == 500


class TestDeliveryModes:
    async def test_duplicate(self, yookassa: Harness) -> None:
        await paid(yookassa, 10_061)
        await yookassa.flush()

        events = [
            await yookassa.adapter.parse_webhook(r.body, {}, remote_addr="127.0.0.1") for r in yookassa.sink.received
        ]

        assert len(events) == 2
        assert events[0].external_id == events[1].external_id

    async def test_out_of_order(self, yookassa: Harness) -> None:
        pid = await paid(yookassa, 10_062, capture=False)
        await yookassa.adapter.capture(PaymentRef("k", pid), currency="RUB")
        await yookassa.flush()

        order = [json.loads(r.body)["event"] for r in yookassa.sink.received]

        assert order == ["payment.succeeded", "payment.waiting_for_capture"]

    async def test_never_sent(self, yookassa: Harness) -> None:
        await paid(yookassa, 10_063)
        await yookassa.flush()

        assert yookassa.sink.received == []
        assert yookassa.state.webhooks.deliveries[0].suppressed

    async def test_retried_until_http_200(self, yookassa: Harness) -> None:
        yookassa.sink.answers.extend([(500, b""), (502, b"")])
        await paid(yookassa)
        await yookassa.flush()

        delivery = yookassa.state.webhooks.deliveries[0]
        assert delivery.delivered
        assert [a.get("status") for a in delivery.attempts] == [500, 502, 200]


async def test_202_processing_is_repeated_with_the_same_key(yookassa: Harness) -> None:
    req = yookassa.request(10_056)

    created = await yookassa.adapter.authorize(req)

    posts = [r for r in yookassa.state.requests if r["path"] == "/v3/payments"]
    assert created.status is ProviderStatus.requires_action
    assert len(posts) == 2
    assert posts[0]["headers"]["idempotence-key"] == posts[1]["headers"]["idempotence-key"] == req.idempotency_key
