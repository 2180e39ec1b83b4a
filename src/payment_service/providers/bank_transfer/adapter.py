"""Bank-transfer adapter: PayoutRequest ⇄ ``/v1/transfers`` of our bank's transfer API.

Bank transfers settle asynchronously (``processing`` → ``completed`` | ``rejected``, usually the next
business day); the bank signs its webhooks (HMAC, :mod:`.webhooks`) and lets us find a transfer
by our attempt id (``client_reference``), so a lost answer is resolved with ``get_status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from payment_service.providers._base import credential
from payment_service.providers.bank_transfer import webhooks
from payment_service.providers.bank_transfer.client import BankTransferApiError, BankTransferClient
from payment_service.providers.bank_transfer.schemas import BTTransfer
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.errors import (
    ProviderAmountMismatch,
    ProviderError,
    ProviderInvalidRequest,
    ProviderNotFound,
    ProviderOperationNotSupported,
    ProviderTimeout,
    ProviderUnavailable,
)
from payment_service.providers.metrics import WEBHOOKS
from payment_service.providers.payout_settings import BankTransferSettings
from payment_service.providers.ports import (
    PayoutCapability,
    PayoutEvent,
    PayoutFailureCode,
    PayoutMethod,
    PayoutRef,
    PayoutRequest,
    PayoutResult,
    ProviderPayoutStatus,
)

PROVIDER = "bank_transfer"

FAILURES: dict[str, PayoutFailureCode] = {
    "insufficient_funds": PayoutFailureCode.insufficient_funds,
    "account_not_found": PayoutFailureCode.recipient_not_found,
    "account_closed": PayoutFailureCode.invalid_destination,
    "name_mismatch": PayoutFailureCode.invalid_destination,
    "limit_exceeded": PayoutFailureCode.limit_exceeded,
    "compliance_rejected": PayoutFailureCode.fraud_suspected,
    "bank_unavailable": PayoutFailureCode.issuer_unavailable,
}


def map_error(exc: Exception, operation: str) -> ProviderError:
    """THE mapping of the bank's answers into the normalized tree."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, BankTransferApiError):
        code, status = exc.error.code, exc.status
        kw: dict[str, Any] = {"provider": PROVIDER, "operation": operation, "provider_code": code}
        if status == 401:
            return ProviderUnavailable(f"bank_transfer: credentials rejected: {exc.error.message}", **kw)
        if status == 404:
            return ProviderNotFound(f"bank_transfer: {exc.error.message}", **kw)
        if 400 <= status < 500:
            return ProviderInvalidRequest(f"bank_transfer: {code}: {exc.error.message}", **kw)
        return ProviderTimeout(f"bank_transfer: unexpected HTTP {status} {code}", **kw)
    if isinstance(exc, httpx.HTTPError | ValueError):
        return ProviderTimeout(
            f"bank_transfer: unreadable answer ({type(exc).__name__})", provider=PROVIDER, operation=operation
        )
    return ProviderError(f"bank_transfer: {exc}", provider=PROVIDER, operation=operation)


def to_result(t: BTTransfer, *, idempotency_key: str | None = None) -> PayoutResult:
    failure = None
    if t.status == "completed":
        status = ProviderPayoutStatus.succeeded
    elif t.status == "rejected":
        status = ProviderPayoutStatus.failed
        failure = FAILURES.get(t.rejection.code if t.rejection else "", PayoutFailureCode.unknown)
    else:
        status = ProviderPayoutStatus.pending
    last4 = t.recipient.account_last4 if t.recipient else None
    return PayoutResult(
        provider=PROVIDER,
        provider_payout_id=t.id,
        status=status,
        amount_minor=t.amount,
        currency=t.currency,
        failure_code=failure,
        provider_status=(f"{t.status}:{t.rejection.code}" if t.rejection else t.status)[:64],
        idempotency_key=idempotency_key or t.client_reference,
        destination_masked=f"account *{last4}" if last4 else None,
        raw={k: v for k, v in t.model_dump(mode="json").items() if k != "recipient"},
    )


class BankTransferProvider:
    name = PROVIDER
    capabilities = frozenset({PayoutCapability.status_by_idempotency_key})

    def __init__(
        self,
        settings: BankTransferSettings,
        credentials: Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings
        self.methods = frozenset(settings.payout_methods)
        self.webhook_secret = credential(credentials, PROVIDER, "webhook_secret")
        self.client = BankTransferClient(
            settings, api_key=credential(credentials, PROVIDER, "api_key"), transport=transport, breaker=breaker
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self.client.http.breaker

    async def aclose(self) -> None:
        await self.client.aclose()

    async def create_transfer(self, request: PayoutRequest) -> PayoutResult:
        d = request.destination
        if d.method is not PayoutMethod.bank_account:
            raise ProviderOperationNotSupported(
                f"bank_transfer cannot pay to {d.method}", provider=PROVIDER, operation="payout_create"
            )
        recipient: dict[str, Any] = {"name": d.holder_name, "account_number": d.account_number, "bic": d.bic}
        if d.inn:
            recipient["inn"] = d.inn
        body = {
            "amount": request.amount_minor,
            "currency": request.currency,
            "client_reference": request.idempotency_key,
            "recipient": recipient,
            "purpose": request.description[:210],
            "metadata": dict(request.metadata),
        }
        try:
            result = to_result(
                await self.client.create_transfer(body, key=request.idempotency_key),
                idempotency_key=request.idempotency_key,
            )
        except Exception as exc:
            raise map_error(exc, "payout_create") from exc
        if (result.amount_minor, result.currency) != (request.amount_minor, request.currency):
            raise ProviderAmountMismatch(
                f"bank_transfer: asked {request.amount_minor} {request.currency}, "
                f"bank reports {result.amount_minor} {result.currency}",
                expected=(request.amount_minor, request.currency),
                actual=(result.amount_minor, result.currency),
                provider=PROVIDER,
                operation="payout_create",
            )
        return result

    async def get_status(self, ref: PayoutRef) -> PayoutResult:
        try:
            if ref.provider_payout_id is not None:
                found: BTTransfer | None = await self.client.get_transfer(ref.provider_payout_id)
            else:
                found = await self.client.find_transfer(ref.idempotency_key)
        except Exception as exc:
            raise map_error(exc, "payout_get") from exc
        if found is None:
            raise ProviderNotFound(
                "bank_transfer: no transfer with this client reference", provider=PROVIDER, operation="payout_get"
            )
        return to_result(found, idempotency_key=ref.idempotency_key)

    async def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, remote_addr: str | None = None
    ) -> PayoutEvent:
        try:
            event = webhooks.verify_and_parse(
                body, headers, secret=self.webhook_secret, tolerance_seconds=self.settings.webhook_tolerance_seconds
            )
        except Exception as exc:
            WEBHOOKS.labels(PROVIDER, "rejected").inc()
            raise map_error(exc, "webhook") from exc
        WEBHOOKS.labels(PROVIDER, "ok").inc()
        payout = to_result(event.data)
        return PayoutEvent(
            provider=PROVIDER,
            external_id=event.id,
            event_type=event.type,
            provider_payout_id=payout.provider_payout_id,
            payout=payout,
        )
