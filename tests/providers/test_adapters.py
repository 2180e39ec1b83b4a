"""Every adapter against its emulator in-process: success, declines, customer actions, faults, mismatch."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from payment_service.providers.errors import (
    ProviderAmountMismatch,
    ProviderDeclined,
    ProviderInvalidRequest,
    ProviderNotFound,
    ProviderOperationNotSupported,
    ProviderTimeout,
    ProviderUnavailable,
)
from payment_service.providers.ports import (
    ActionType,
    Capability,
    DeclineCode,
    PaymentMethod,
    PaymentRef,
    ProviderStatus,
    ReceiptData,
    ReceiptItem,
    RefundStatus,
)
from tests.providers.harness import Harness, build

PROVIDERS = ["yookassa", "tbank", "sber", "mobile"]

REASONS = {
    11: "insufficient_funds",
    12: "card_expired",
    13: "3ds_failed",
    14: "fraud_suspected",
    15: "issuer_unavailable",
    16: "general_decline",
    17: "invalid_card",
    18: "limit_exceeded",
    19: "expired",
}
EXPECTED = {
    "default": {
        11: DeclineCode.insufficient_funds,
        12: DeclineCode.card_expired,
        13: DeclineCode.three_ds_failed,
        14: DeclineCode.fraud_suspected,
        15: DeclineCode.issuer_unavailable,
        16: DeclineCode.general_decline,
        17: DeclineCode.invalid_card,
        18: DeclineCode.limit_exceeded,
        19: DeclineCode.expired,
    },
    "mobile": {
        11: DeclineCode.insufficient_funds,
        12: DeclineCode.restricted,
        13: DeclineCode.canceled_by_payer,
        14: DeclineCode.fraud_suspected,
        15: DeclineCode.issuer_unavailable,
        16: DeclineCode.canceled_by_payer,
        17: DeclineCode.restricted,
        18: DeclineCode.limit_exceeded,
        19: DeclineCode.expired,
    },
}


@pytest.fixture(params=PROVIDERS)
async def h(request: pytest.FixtureRequest) -> Any:
    harness = build(request.param)
    yield harness
    await harness.adapter.aclose()


class TestOneStage:
    async def test_payment_requires_action_then_succeeds(self, h: Harness) -> None:
        req = h.request(49_900)

        created = await h.adapter.authorize(req)
        await h.pay(created.provider_payment_id)
        status = await h.adapter.get_status(PaymentRef(req.idempotency_key, created.provider_payment_id))

        assert created.status is ProviderStatus.requires_action
        assert created.action is not None
        assert (created.amount_minor, created.currency) == (49_900, "RUB")
        assert status.status is ProviderStatus.succeeded
        assert status.captured_minor == 49_900
        assert [e.kind for e in h.state.ledger] == ["charge"]

    async def test_card_is_masked_never_a_pan(self, h: Harness) -> None:
        if h.provider == "mobile":
            pytest.skip("no card in mobile payments")
        req = h.request(10_000)
        created = await h.adapter.authorize(req)

        await h.pay(created.provider_payment_id, card_number="2200000000000053")
        status = await h.adapter.get_status(PaymentRef(req.idempotency_key, created.provider_payment_id))

        assert status.card is not None
        assert status.card.last4 == "0053"
        assert status.card.scheme == "mir"
        assert "2200000000000053" not in json.dumps(status.raw)


@pytest.mark.parametrize("kopecks", sorted(REASONS))
async def test_each_decline_reason_is_normalized(h: Harness, kopecks: int) -> None:
    req = h.request(10_000 + kopecks)
    created = await h.adapter.authorize(req)

    await h.pay(created.provider_payment_id)
    status = await h.adapter.get_status(PaymentRef(req.idempotency_key, created.provider_payment_id))

    assert status.status is ProviderStatus.failed
    assert status.decline_code is EXPECTED.get(h.provider, EXPECTED["default"])[kopecks]
    assert h.state.ledger == []


class TestFaults:
    async def test_hang_is_a_timeout_with_unknown_outcome(self, h: Harness) -> None:
        with pytest.raises(ProviderTimeout):
            await h.adapter.authorize(h.request(10_051))

    async def test_503_is_unavailable_and_nothing_exists(self, h: Harness) -> None:
        req = h.request(10_052)

        with pytest.raises(ProviderUnavailable):
            await h.adapter.authorize(req)

        assert h.state.objects() in (
            {"payments": {}, "refunds": {}},
            {"payments": {}},
            {"orders": {}},
            {"charges": {}, "refunds": {}},
        )

    async def test_500_is_an_unknown_outcome(self, h: Harness) -> None:
        with pytest.raises(ProviderTimeout):
            await h.adapter.authorize(h.request(10_053))

    async def test_slow_answer_within_the_deadline_succeeds(self, h: Harness) -> None:
        created = await h.adapter.authorize(h.request(10_054))

        assert created.status is ProviderStatus.requires_action

    async def test_charge_then_drop_is_resolved_by_status_sync(self, h: Harness) -> None:
        req = h.request(10_055)

        if h.provider != "tbank":
            # the adapter repeats the create with the same key / order number and reads the stored payment back
            result = await h.adapter.authorize(req)
        else:
            with pytest.raises(ProviderTimeout):
                await h.adapter.authorize(req)
            result = await h.adapter.get_status(PaymentRef(req.idempotency_key))

        assert result.status is ProviderStatus.succeeded
        assert [(e.kind, e.amount_minor) for e in h.state.ledger] == [("charge", 10_055)]

    async def test_connection_refused_is_unavailable(self) -> None:
        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        harness = build("tbank")
        harness.adapter.client.http.client._transport = httpx.MockTransport(refuse)

        with pytest.raises(ProviderUnavailable):
            await harness.adapter.authorize(harness.request())


class TestAmountMismatch:
    async def test_provider_reporting_another_amount_is_detected(self, h: Harness) -> None:
        inner = httpx.ASGITransport(app=h.app)

        class Tamper(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                response = await inner.handle_async_request(request)
                raw = await response.aread()
                try:
                    data = json.loads(raw)
                except ValueError:
                    return httpx.Response(response.status_code, headers=response.headers, content=raw)
                if isinstance(data.get("amount"), dict):
                    data["amount"]["value"] = "1.00"
                elif isinstance(data.get("Amount"), int):
                    data["Amount"] = 100
                elif isinstance(data.get("amount"), int):
                    data["amount"] = 100
                return httpx.Response(response.status_code, json=data)

        h.adapter.client.http.client._transport = Tamper()

        with pytest.raises(ProviderAmountMismatch) as err:
            await h.adapter.authorize(h.request(49_900))

        assert err.value.expected == (49_900, "RUB")
        assert err.value.actual == (100, "RUB")


class TestTwoStage:
    async def test_hold_then_partial_or_full_capture(self, h: Harness) -> None:
        req = h.request(50_000, capture=False)
        created = await h.adapter.authorize(req)
        await h.pay(created.provider_payment_id)
        ref = PaymentRef(req.idempotency_key, created.provider_payment_id)
        held = await h.adapter.get_status(ref)
        amount = 50_000 if h.provider == "mobile" else 30_000

        captured = await h.adapter.capture(ref, amount_minor=amount, currency="RUB")

        assert held.status is ProviderStatus.authorized
        assert captured.status is ProviderStatus.succeeded
        assert captured.amount_minor == amount
        kinds = [e.kind for e in h.state.ledger]
        assert kinds[0] == "hold"
        assert "capture" in kinds
        assert sum(e.amount_minor for e in h.state.ledger if e.kind == "capture") == amount

    async def test_void_releases_the_hold(self, h: Harness) -> None:
        req = h.request(50_000, capture=False)
        created = await h.adapter.authorize(req)
        await h.pay(created.provider_payment_id)

        voided = await h.adapter.void(PaymentRef(req.idempotency_key, created.provider_payment_id))

        assert voided.status is ProviderStatus.canceled
        assert [e.kind for e in h.state.ledger] == ["hold", "release"]

    async def test_capture_of_an_unpaid_payment_is_an_invalid_request(self, h: Harness) -> None:
        req = h.request(50_000, capture=False)
        created = await h.adapter.authorize(req)

        with pytest.raises(ProviderInvalidRequest):
            await h.adapter.capture(PaymentRef(req.idempotency_key, created.provider_payment_id), currency="RUB")


class TestRefund:
    async def test_partial_refunds_up_to_the_amount(self, h: Harness) -> None:
        req = h.request(20_000)
        created = await h.adapter.authorize(req)
        await h.pay(created.provider_payment_id)
        ref = PaymentRef(req.idempotency_key, created.provider_payment_id)

        first = await h.adapter.refund(
            ref, amount_minor=5_000, currency="RUB", idempotency_key="r1-" + req.idempotency_key
        )
        second = await h.adapter.refund(
            ref, amount_minor=15_000, currency="RUB", idempotency_key="r2-" + req.idempotency_key
        )
        with pytest.raises(ProviderInvalidRequest):
            await h.adapter.refund(ref, amount_minor=1, currency="RUB", idempotency_key="r3-" + req.idempotency_key)

        assert first.status is RefundStatus.succeeded
        assert second.status is RefundStatus.succeeded
        assert sum(e.amount_minor for e in h.state.ledger if e.kind == "refund") == 20_000

    async def test_a_repeated_refund_key_refunds_once_exactly_where_the_adapter_says_so(self, h: Harness) -> None:
        # The refund sync calls a refund again with its key only for Capability.idempotent_refund;
        # for the others (Sber) a repeat is a second refund, so it reads the refunded total instead.
        req = h.request(20_000)
        created = await h.adapter.authorize(req)
        await h.pay(created.provider_payment_id)
        ref = PaymentRef(req.idempotency_key, created.provider_payment_id)
        key = "r1-" + req.idempotency_key

        for _ in range(2):
            await h.adapter.refund(ref, amount_minor=5_000, currency="RUB", idempotency_key=key)

        refunded = sum(e.amount_minor for e in h.state.ledger if e.kind == "refund")
        replays = Capability.idempotent_refund in h.adapter.capabilities
        assert refunded == (5_000 if replays else 10_000)


async def test_unknown_attempt_is_not_found(h: Harness) -> None:
    if h.provider == "yookassa":
        with pytest.raises(ProviderOperationNotSupported):
            await h.adapter.get_status(PaymentRef("never-created"))
        return
    with pytest.raises(ProviderNotFound):
        await h.adapter.get_status(PaymentRef("never-created"))


class TestCustomerActions:
    @pytest.mark.parametrize("provider", ["yookassa", "tbank", "sber"])
    async def test_redirect_page_with_3ds_challenge(self, provider: str) -> None:
        h = build(provider)
        req = h.request(77_700)
        created = await h.adapter.authorize(req)
        assert created.action is not None
        assert created.action.type is ActionType.redirect
        url = urlsplit(created.action.url or "")
        page = url.path + ("?" + url.query if url.query else "")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="http://emu") as customer:
            form = await customer.get(page)
            challenge = await customer.post(page, data={"card_number": "5555555555554477"})
            if provider == "yookassa":
                await customer.post(page + "/3ds", data={"card_number": "5555555555554477", "password": "12345678"})
            elif provider == "tbank":
                await customer.post(page, data={"card_number": "5555555555554477", "password": "12345678"})

        status = await h.adapter.get_status(PaymentRef(req.idempotency_key, created.provider_payment_id))

        assert form.status_code == 200
        assert provider == "sber" or "3-D Secure" in challenge.text
        # Sber's page takes card and 3-DS password in one form: without the password the challenge fails
        expected = ProviderStatus.failed if provider == "sber" else ProviderStatus.succeeded
        assert status.status is expected
        await h.adapter.aclose()

    @pytest.mark.parametrize("provider", ["yookassa", "tbank"])
    async def test_sbp_qr_payload(self, provider: str) -> None:
        h = build(provider)
        req = h.request(15_000, method=PaymentMethod.sbp)

        created = await h.adapter.authorize(req)
        await h.pay(created.provider_payment_id)
        status = await h.adapter.get_status(PaymentRef(req.idempotency_key, created.provider_payment_id))

        assert created.action is not None
        assert created.action.type is ActionType.qr
        assert (created.action.qr_payload or "").startswith("https://qr.nspk.ru/")
        assert "sum=15000" in (created.action.qr_payload or "")
        assert status.status is ProviderStatus.succeeded
        await h.adapter.aclose()

    async def test_mobile_payment_waits_for_the_subscriber(self) -> None:
        h = build("mobile")
        created = await h.adapter.authorize(h.request(30_000))

        assert created.action is not None
        assert created.action.type is ActionType.external
        await h.adapter.aclose()


async def test_receipt_is_accepted_when_it_sums_to_the_amount(h: Harness) -> None:
    if h.provider in ("sber", "mobile"):
        pytest.skip("receipt not forwarded by this adapter")
    receipt = ReceiptData(items=(ReceiptItem("Game key", 49_900),), email="buyer@example.com")

    created = await h.adapter.authorize(h.request(49_900, receipt=receipt))

    assert created.status is ProviderStatus.requires_action


async def test_mobile_unsupported_operator_is_a_synchronous_decline() -> None:
    h = build("mobile")

    with pytest.raises(ProviderDeclined) as err:
        await h.adapter.authorize(h.request(30_000, payer_phone="79991234567"))

    assert err.value.decline_code is DeclineCode.unsupported_operator
    assert err.value.result is not None
    assert err.value.result.status is ProviderStatus.failed
    await h.adapter.aclose()


@pytest.mark.parametrize("provider", ["yookassa", "tbank"])
async def test_sbp_cannot_be_two_stage(provider: str) -> None:
    h = build(provider)

    with pytest.raises(ProviderOperationNotSupported):
        await h.adapter.authorize(h.request(15_000, method=PaymentMethod.sbp, capture=False))

    assert h.state.requests == []
    await h.adapter.aclose()
