from __future__ import annotations

import pytest

from payment_service.providers.errors import ProviderDisabled, ProviderOperationNotSupported
from payment_service.providers.ports import ChargeRequest, PaymentMethod, PaymentRef
from payment_service.providers.qiwi.adapter import QiwiProvider
from payment_service.providers.qiwi.schemas import QiwiBill
from payment_service.providers.qiwi.webhooks import signature, signature_valid
from payment_service.providers.settings import QiwiSettings


def test_disabled_by_default() -> None:
    assert QiwiSettings().enabled is False


async def test_every_operation_refuses_with_the_reason() -> None:
    provider = QiwiProvider(QiwiSettings(enabled=True))
    request = ChargeRequest(
        amount_minor=100,
        currency="RUB",
        method=PaymentMethod.bank_card,
        description="x",
        return_url="https://x",
        idempotency_key="k",
    )

    with pytest.raises(ProviderDisabled, match="revoked KIWI Bank's licence on 21 February 2024") as err:
        await provider.authorize(request)
    with pytest.raises(ProviderOperationNotSupported):
        await provider.get_status(PaymentRef("k"))
    with pytest.raises(ProviderDisabled):
        await provider.parse_webhook(b"{}", {})

    assert err.value.provider == "qiwi"


def test_historic_signature_vector() -> None:
    bill = QiwiBill.model_validate(
        {
            "siteId": "test",
            "billId": "test_bill",
            "amount": {"value": "1", "currency": "RUB"},
            "status": {"value": "PAID"},
        }
    )
    expected = "07e0ebb10916d97760c196034105d010607a6c6b7d72bfa1c3451448ac484a3b"

    assert signature(bill, "test-merchant-secret-for-signature-check") == expected
    assert signature_valid(bill, "test-merchant-secret-for-signature-check", expected.upper())
