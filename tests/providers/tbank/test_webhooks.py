from __future__ import annotations

import json

import pytest

from payment_service.providers.errors import ProviderSignatureInvalid
from payment_service.providers.ports import ProviderStatus
from payment_service.providers.tbank.client import make_token
from payment_service.providers.tbank.webhooks import verify_and_parse
from tests.providers.harness import Harness


class TestToken:
    def test_spec_vector(self) -> None:
        params = {
            "TerminalKey": "MerchantTerminalKey",
            "Amount": 19200,
            "OrderId": "21090",
            "Description": "Подарочная карта на 1000 рублей",
            "DATA": {"Phone": "+71234567890"},
            "Receipt": {"Items": []},
        }

        assert (
            make_token(params, "usaf8fw8fsw21g") == "0024a00af7c350a3a67ca168ce06502aa72772456662e38696d48b56ee9c97d9"
        )

    def test_notification_vector_with_boolean(self) -> None:
        params = {
            "TerminalKey": "1321054611234DEMO",
            "OrderId": "201709",
            "Success": True,
            "Status": "AUTHORIZED",
            "PaymentId": 8742591,
            "ErrorCode": "0",
            "Amount": 9855,
            "CardId": 322264,
            "Pan": "430000******0777",
            "ExpDate": "1122",
            "RebillId": 101709,
        }

        assert make_token(params, "Dfsfh56dgKl") == "b906d28e76c6428e37b25fcf86c0adc52c63d503013fdd632e300593d165766b"

    def test_self_computed_vector(self) -> None:
        params = {"TerminalKey": "TinkoffBankTest", "PaymentId": "13660"}

        assert make_token(params, "secret") == "3e83ab334fd28e00764996feee8e5a7ed054b4d8dd6a75e7d2f7f17f740987af"


async def notifications(h: Harness, amount: int = 10_000) -> list[bytes]:
    created = await h.adapter.authorize(h.request(amount))
    await h.pay(created.provider_payment_id)
    await h.flush()
    return [r.body for r in h.sink.received]


class TestNotifications:
    async def test_valid_notifications_parse_and_ack_ok(self, tbank: Harness) -> None:
        bodies = await notifications(tbank)

        events = {e.event_type: e for e in [await tbank.adapter.parse_webhook(b, {}) for b in bodies]}

        assert sorted(events) == ["AUTHORIZED", "CONFIRMED"]
        confirmed = events["CONFIRMED"].payment
        assert confirmed is not None
        assert confirmed.status is ProviderStatus.succeeded
        assert confirmed.card is not None
        assert events["CONFIRMED"].ack_body == "OK"
        assert all(isinstance(json.loads(b)["PaymentId"], int) for b in bodies)

    async def test_forged_token_is_rejected(self, tbank: Harness) -> None:
        bodies = await notifications(tbank, 10_064)

        with pytest.raises(ProviderSignatureInvalid):
            await tbank.adapter.parse_webhook(bodies[0], {})

    async def test_tampered_amount_is_rejected(self, tbank: Harness) -> None:
        body = json.loads((await notifications(tbank))[0])
        body["Amount"] = 1

        with pytest.raises(ProviderSignatureInvalid):
            await tbank.adapter.parse_webhook(json.dumps(body).encode(), {})

    async def test_another_terminal_is_rejected(self) -> None:
        body = {
            "TerminalKey": "Other",
            "OrderId": "1",
            "Success": True,
            "Status": "CONFIRMED",
            "PaymentId": 1,
            "Amount": 1,
        }
        body["Token"] = make_token(body, "pw")

        with pytest.raises(ProviderSignatureInvalid):
            verify_and_parse(json.dumps(body).encode(), terminal_key="Mine", password="pw")

    async def test_emulator_retries_until_the_answer_is_exactly_ok(self, tbank: Harness) -> None:
        tbank.sink.answers.extend([(200, b"ok"), (200, b"<html>OK</html>")])
        await notifications(tbank)

        deliveries = tbank.state.webhooks.deliveries
        assert all(d.delivered for d in deliveries)
        assert sum(len(d.attempts) for d in deliveries) == len(deliveries) + 2


async def test_repeated_refund_with_the_same_external_request_id_refunds_once(tbank: Harness) -> None:
    from payment_service.providers.ports import PaymentRef

    req = tbank.request(20_000)
    created = await tbank.adapter.authorize(req)
    await tbank.pay(created.provider_payment_id)
    ref = PaymentRef(req.idempotency_key, created.provider_payment_id)

    await tbank.adapter.refund(ref, amount_minor=5_000, currency="RUB", idempotency_key="rf-1")
    await tbank.adapter.refund(ref, amount_minor=5_000, currency="RUB", idempotency_key="rf-1")

    assert [e.amount_minor for e in tbank.state.ledger if e.kind == "refund"] == [5_000]
