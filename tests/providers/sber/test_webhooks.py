from __future__ import annotations

from urllib.parse import urlencode

import pytest

from payment_service.providers.errors import ProviderNotFound, ProviderSignatureInvalid
from payment_service.providers.ports import ProviderStatus
from payment_service.providers.sber.webhooks import checksum
from tests.providers.harness import Harness


def test_checksum_vector() -> None:
    params = {
        "amount": "150000",
        "mdOrder": "3ff3bc2c-5b1f-7b6e-8d3a-0a1b2c3d4e5f",
        "operation": "deposited",
        "orderNumber": "10001",
        "status": "1",
    }

    assert (
        checksum(params, "test-callback-secret") == "A7722F68F9F8509EA981DF626AEA744FBC8520EC6A311DA737E80462DCD8820C"
    )


async def callback_query(h: Harness, amount: int = 10_000) -> str:
    created = await h.adapter.authorize(h.request(amount))
    await h.pay(created.provider_payment_id)
    await h.flush()
    received = h.sink.received[0]
    assert received.method == "GET"
    return received.query


class TestCallbacks:
    async def test_valid_get_callback_is_verified_and_refetched(self, sber: Harness) -> None:
        query = await callback_query(sber)

        event = await sber.adapter.parse_webhook(b"", {}, query=query)

        assert event.event_type == "deposited"
        assert event.payment is not None
        assert event.payment.status is ProviderStatus.succeeded
        assert event.idempotency_key is not None

    async def test_same_params_as_a_form_post(self, sber: Harness) -> None:
        query = await callback_query(sber)

        event = await sber.adapter.parse_webhook(query.encode(), {"content-type": "application/x-www-form-urlencoded"})

        assert event.event_type == "deposited"

    async def test_forged_checksum_is_rejected(self, sber: Harness) -> None:
        query = await callback_query(sber, 10_064)

        with pytest.raises(ProviderSignatureInvalid):
            await sber.adapter.parse_webhook(b"", {}, query=query)

    async def test_tampered_operation_is_rejected(self, sber: Harness) -> None:
        query = (await callback_query(sber)).replace("deposited", "refunded")

        with pytest.raises(ProviderSignatureInvalid):
            await sber.adapter.parse_webhook(b"", {}, query=query)

    async def test_lowercase_checksum_is_accepted(self, sber: Harness) -> None:
        params = {"mdOrder": "x", "orderNumber": "1", "operation": "deposited", "status": "1"}
        params["checksum"] = checksum(params, "test-callback-secret").lower()

        # the checksum verifies; then the re-fetch finds no such order
        with pytest.raises(ProviderNotFound):
            await sber.adapter.parse_webhook(b"", {}, query=urlencode(params))
