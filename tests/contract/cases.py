"""One suite of provider contract cases, run against the emulator and, on demand, the provider's sandbox.

Sandbox mode runs only when the provider's credentials are in the environment (see SANDBOX); cases
that need a customer action (paying on the provider's page) run against the emulator only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from payment_service.providers.errors import ProviderInvalidRequest
from payment_service.providers.ports import ChargeRequest, PaymentMethod, PaymentRef, ProviderStatus, RefundStatus
from tests.providers.harness import build, settings_for

SANDBOX: dict[str, tuple[str, dict[str, str], str]] = {
    # provider: (base URL, credential field → env var, base URL env override)
    "yookassa": (
        "https://api.yookassa.ru/v3",
        {"shop_id": "YOOKASSA_SANDBOX_SHOP_ID", "secret_key": "YOOKASSA_SANDBOX_SECRET_KEY"},
        "YOOKASSA_SANDBOX_BASE_URL",
    ),
    "tbank": (
        "https://rest-api-test.tinkoff.ru/v2",
        {"terminal_key": "TBANK_SANDBOX_TERMINAL_KEY", "password": "TBANK_SANDBOX_PASSWORD"},
        "TBANK_SANDBOX_BASE_URL",
    ),
    "sber": (
        "https://3dsec.sberbank.ru/payment/rest",
        {
            "user_name": "SBER_SANDBOX_USER_NAME",
            "password": "SBER_SANDBOX_PASSWORD",
            "callback_secret": "SBER_SANDBOX_CALLBACK_SECRET",
        },
        "SBER_SANDBOX_BASE_URL",
    ),
    "mobile": (
        "",
        {"api_key": "MOBILE_SANDBOX_API_KEY", "webhook_secret": "MOBILE_SANDBOX_WEBHOOK_SECRET"},
        "MOBILE_SANDBOX_BASE_URL",
    ),
}


@dataclass
class Target:
    provider: str
    mode: str
    adapter: Any
    pay: Callable[[str], Awaitable[None]] | None

    def request(self, amount_minor: int = 10_000, **kw: Any) -> ChargeRequest:
        method = PaymentMethod.mobile if self.provider == "mobile" else PaymentMethod.bank_card
        params: dict[str, Any] = {
            "currency": "RUB",
            "method": method,
            "description": "Contract test",
            "return_url": "https://store.example/return",
            "idempotency_key": str(uuid.uuid4()),
            "payer_phone": "79161234567" if method is PaymentMethod.mobile else None,
        }
        params.update(kw)
        return ChargeRequest(amount_minor=amount_minor, **params)

    def needs_customer(self) -> Callable[[str], Awaitable[None]]:
        if self.pay is None:
            pytest.skip("needs a customer action on the provider's page (emulator only)")
        return self.pay


async def make_target(provider: str, mode: str) -> AsyncIterator[Target]:
    if mode == "emulator":
        h = build(provider)
        yield Target(provider, mode, h.adapter, lambda pid: h.pay(pid))
        await h.adapter.aclose()
        return
    base, fields, base_env = SANDBOX[provider]
    creds = {name: os.environ.get(env, "") for name, env in fields.items()}
    base = os.environ.get(base_env, base)
    if not all(creds.values()) or not base:
        pytest.skip(f"{provider} sandbox credentials not set ({', '.join(fields.values())})")
    from payment_service.providers.registry import FACTORIES

    settings = settings_for(provider, base_url=base, total_timeout_seconds=30.0, read_timeout_seconds=30.0)
    adapter = FACTORIES[provider](settings, creds)
    yield Target(provider, mode, adapter, None)
    await adapter.aclose()


class ContractCases:
    provider: ClassVar[str]

    @pytest.fixture(params=["emulator", "sandbox"])
    async def target(self, request: pytest.FixtureRequest) -> AsyncIterator[Target]:
        async for t in make_target(self.provider, request.param):
            yield t

    async def test_create_returns_a_customer_action_and_echoes_the_amount(self, target: Target) -> None:
        result = await target.adapter.authorize(target.request(12_300))

        assert result.status is ProviderStatus.requires_action
        assert result.action is not None
        assert (result.amount_minor, result.currency) == (12_300, "RUB")
        assert result.provider_payment_id

    async def test_status_of_a_fresh_payment(self, target: Target) -> None:
        req = target.request()
        created = await target.adapter.authorize(req)

        status = await target.adapter.get_status(PaymentRef(req.idempotency_key, created.provider_payment_id))

        assert status.provider_payment_id == created.provider_payment_id
        assert status.status in (ProviderStatus.requires_action, ProviderStatus.pending)
        assert status.amount_minor == 10_000

    async def test_capture_before_payment_is_refused(self, target: Target) -> None:
        req = target.request(capture=False)
        created = await target.adapter.authorize(req)

        with pytest.raises(ProviderInvalidRequest):
            await target.adapter.capture(PaymentRef(req.idempotency_key, created.provider_payment_id), currency="RUB")

    async def test_paid_one_stage_payment_succeeds(self, target: Target) -> None:
        pay = target.needs_customer()
        req = target.request()
        created = await target.adapter.authorize(req)

        await pay(created.provider_payment_id)
        status = await target.adapter.get_status(PaymentRef(req.idempotency_key, created.provider_payment_id))

        assert status.status is ProviderStatus.succeeded

    async def test_hold_capture_refund(self, target: Target) -> None:
        pay = target.needs_customer()
        req = target.request(20_000, capture=False)
        created = await target.adapter.authorize(req)
        await pay(created.provider_payment_id)
        ref = PaymentRef(req.idempotency_key, created.provider_payment_id)

        held = await target.adapter.get_status(ref)
        captured = await target.adapter.capture(ref, amount_minor=20_000, currency="RUB")
        refund = await target.adapter.refund(
            ref, amount_minor=20_000, currency="RUB", idempotency_key=str(uuid.uuid4())
        )

        assert held.status is ProviderStatus.authorized
        assert captured.status is ProviderStatus.succeeded
        assert refund.status is RefundStatus.succeeded

    async def test_void_of_a_hold(self, target: Target) -> None:
        pay = target.needs_customer()
        req = target.request(20_000, capture=False)
        created = await target.adapter.authorize(req)
        await pay(created.provider_payment_id)

        voided = await target.adapter.void(PaymentRef(req.idempotency_key, created.provider_payment_id))

        assert voided.status is ProviderStatus.canceled

    async def test_declined_payment_is_failed_with_a_code(self, target: Target) -> None:
        pay = target.needs_customer()
        req = target.request(10_011)  # emulator magic: insufficient funds
        created = await target.adapter.authorize(req)

        await pay(created.provider_payment_id)
        status = await target.adapter.get_status(PaymentRef(req.idempotency_key, created.provider_payment_id))

        assert status.status is ProviderStatus.failed
        assert status.decline_code == "insufficient_funds"
