from __future__ import annotations

import time

import pytest

from payment_service.providers.errors import ProviderSignatureInvalid
from payment_service.providers.mobile.webhooks import sign, verify_and_parse
from payment_service.providers.ports import EventKind, PaymentRef, ProviderStatus
from tests.providers.harness import Harness


async def paid(h: Harness, amount: int = 30_000) -> str:
    created = await h.adapter.authorize(h.request(amount))
    await h.pay(created.provider_payment_id)
    await h.flush()
    return str(created.provider_payment_id)


class TestSignature:
    async def test_valid_event(self, mobile: Harness) -> None:
        await paid(mobile)
        received = mobile.sink.received[0]

        event = await mobile.adapter.parse_webhook(received.body, received.headers)

        assert event.event_type == "charge.succeeded"
        assert event.payment is not None
        assert event.payment.status is ProviderStatus.succeeded
        assert event.external_id.startswith("evt_")

    async def test_forged_signature_is_rejected(self, mobile: Harness) -> None:
        await paid(mobile, 30_064)
        received = mobile.sink.received[0]

        with pytest.raises(ProviderSignatureInvalid):
            await mobile.adapter.parse_webhook(received.body, received.headers)

    def test_stale_signature_is_rejected(self) -> None:
        body = b'{"id": "evt_1", "type": "charge.succeeded", "data": {}}'
        old = int(time.time()) - 3600

        with pytest.raises(ProviderSignatureInvalid, match="too old"):
            verify_and_parse(body, {"X-MC-Signature": sign("s", old, body)}, secret="s")

    def test_missing_header_is_rejected(self) -> None:
        with pytest.raises(ProviderSignatureInvalid):
            verify_and_parse(b"{}", {}, secret="s")

    async def test_refund_event(self, mobile: Harness) -> None:
        pid = await paid(mobile)
        await mobile.adapter.refund(PaymentRef("k", pid), amount_minor=1_000, currency="RUB", idempotency_key="rf-1")
        await mobile.flush()
        received = mobile.sink.received[-1]

        event = await mobile.adapter.parse_webhook(received.body, received.headers)

        assert event.kind is EventKind.refund
        assert event.refund is not None
        assert event.refund.amount_minor == 1_000


async def test_capture_must_be_full(mobile: Harness) -> None:
    from payment_service.providers.errors import ProviderOperationNotSupported

    req = mobile.request(30_000, capture=False)
    created = await mobile.adapter.authorize(req)
    await mobile.pay(created.provider_payment_id)

    with pytest.raises(ProviderOperationNotSupported):
        await mobile.adapter.capture(
            PaymentRef(req.idempotency_key, created.provider_payment_id), amount_minor=10_000, currency="RUB"
        )
