"""YooKassa Payouts adapter: PayoutRequest ⇄ ``/v3/payouts``; statuses, reasons and errors normalized here.

Destinations on the wire (providers-reference §1.15):

* bank card → ``payout_token`` (the card synonym from YooKassa's payout widget; no PAN, no PCI DSS);
* YooMoney → ``payout_destination_data {"type": "yoo_money", "account_number": ...}``;
* SBP → ``payout_destination_data {"type": "sbp", "phone": ..., "bank_id": ...}``.

Our attempt id travels as the ``Idempotence-Key`` and as ``metadata.attempt_id``. YooKassa cannot
look a payout up by our key, so an answer that was lost is recovered by repeating the create
with the same key (replayed for 24 hours) — the payout engine does that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from payment_service.providers._base import credential, decimal_to_minor, minor_to_decimal
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.errors import (
    ProviderAmountMismatch,
    ProviderError,
    ProviderInvalidRequest,
    ProviderNotFound,
    ProviderOperationNotSupported,
    ProviderSignatureInvalid,
    ProviderTimeout,
    ProviderUnavailable,
)
from payment_service.providers.metrics import WEBHOOKS
from payment_service.providers.payout_settings import YooKassaPayoutsSettings
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
from payment_service.providers.yookassa_payouts import webhooks
from payment_service.providers.yookassa_payouts.client import YooKassaPayoutsApiError, YooKassaPayoutsClient
from payment_service.providers.yookassa_payouts.schemas import YPPayout

PROVIDER = "yookassa_payouts"

# cancellation_details.reason → normalized failure (providers-reference §1.15)
FAILURES: dict[str, PayoutFailureCode] = {
    "fraud_suspected": PayoutFailureCode.fraud_suspected,
    "general_decline": PayoutFailureCode.general_decline,
    "insufficient_funds": PayoutFailureCode.insufficient_funds,
    "issuer_unavailable": PayoutFailureCode.issuer_unavailable,
    "one_time_limit_exceeded": PayoutFailureCode.limit_exceeded,
    "periodic_limit_exceeded": PayoutFailureCode.limit_exceeded,
    "self_employed_annual_limit_exceeded": PayoutFailureCode.limit_exceeded,
    "recipient_check_failed": PayoutFailureCode.recipient_check_failed,
    "recipient_not_found": PayoutFailureCode.recipient_not_found,
    "rejected_by_payee": PayoutFailureCode.rejected_by_payee,
    "unknown": PayoutFailureCode.unknown,
}


def map_error(exc: Exception, operation: str) -> ProviderError:
    """THE mapping of YooKassa Payouts answers into the normalized tree."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, YooKassaPayoutsApiError):
        code, status, desc = exc.error.code, exc.status, exc.error.description
        kw: dict[str, Any] = {"provider": PROVIDER, "operation": operation, "provider_code": code}
        if status == 401 or code == "invalid_credentials":
            return ProviderUnavailable(f"yookassa_payouts: credentials rejected: {desc}", **kw)
        if status == 404 or code == "not_found":
            return ProviderNotFound(f"yookassa_payouts: {desc}", **kw)
        if status in (400, 403, 410) or code in ("invalid_request", "forbidden", "gone"):
            return ProviderInvalidRequest(f"yookassa_payouts: {code}: {desc}", **kw)
        if status == 202:
            return ProviderTimeout("yookassa_payouts: still processing (202); repeat with the same key", **kw)
        return ProviderTimeout(f"yookassa_payouts: unexpected HTTP {status} {code}", **kw)
    if isinstance(exc, httpx.HTTPError | ValueError):
        return ProviderTimeout(
            f"yookassa_payouts: unreadable answer ({type(exc).__name__})", provider=PROVIDER, operation=operation
        )
    return ProviderError(f"yookassa_payouts: {exc}", provider=PROVIDER, operation=operation)


def _masked(p: YPPayout) -> str | None:
    d = p.payout_destination
    if d is None:
        return None
    if d.type == "bank_card" and d.card is not None and d.card.last4:
        return f"card *{d.card.last4}"
    if d.type == "yoo_money" and d.account_number:
        return f"YooMoney *{d.account_number[-4:]}"
    if d.type == "sbp" and d.phone:
        return f"SBP *{d.phone[-4:]}"
    return d.type


def to_result(p: YPPayout, *, idempotency_key: str | None = None) -> PayoutResult:
    failure: PayoutFailureCode | None = None
    if p.status == "succeeded":
        status = ProviderPayoutStatus.succeeded
    elif p.status == "canceled":
        status = ProviderPayoutStatus.failed
        reason = p.cancellation_details.reason if p.cancellation_details else "unknown"
        failure = FAILURES.get(reason, PayoutFailureCode.unknown)
    else:
        status = ProviderPayoutStatus.pending
    metadata = p.metadata or {}
    reason_text = f"{p.status}:{p.cancellation_details.reason}" if p.cancellation_details else p.status
    return PayoutResult(
        provider=PROVIDER,
        provider_payout_id=p.id,
        status=status,
        amount_minor=decimal_to_minor(p.amount.value),
        currency=p.amount.currency,
        failure_code=failure,
        provider_status=reason_text[:64],
        idempotency_key=idempotency_key or (str(metadata["attempt_id"]) if "attempt_id" in metadata else None),
        destination_masked=_masked(p),
        raw={k: v for k, v in p.model_dump(mode="json").items() if k != "payout_destination"},
    )


def _destination(request: PayoutRequest) -> dict[str, Any]:
    d = request.destination
    if d.method is PayoutMethod.bank_card:
        return {"payout_token": d.card_token}
    if d.method is PayoutMethod.yoomoney:
        return {"payout_destination_data": {"type": "yoo_money", "account_number": d.account_number}}
    if d.method is PayoutMethod.sbp:
        return {"payout_destination_data": {"type": "sbp", "phone": d.phone, "bank_id": d.bank_id}}
    raise ProviderOperationNotSupported(
        f"yookassa_payouts cannot pay to {d.method}", provider=PROVIDER, operation="payout_create"
    )


class YooKassaPayoutsProvider:
    name = PROVIDER
    capabilities: frozenset[PayoutCapability] = frozenset()

    def __init__(
        self,
        settings: YooKassaPayoutsSettings,
        credentials: Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings
        self.methods = frozenset(settings.payout_methods)
        self.client = YooKassaPayoutsClient(
            settings,
            agent_id=credential(credentials, PROVIDER, "agent_id"),
            secret_key=credential(credentials, PROVIDER, "secret_key"),
            transport=transport,
            breaker=breaker,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self.client.http.breaker

    async def aclose(self) -> None:
        await self.client.aclose()

    async def create_transfer(self, request: PayoutRequest) -> PayoutResult:
        body: dict[str, Any] = {
            "amount": {"value": minor_to_decimal(request.amount_minor), "currency": request.currency},
            **_destination(request),
            "description": request.description[:128],
            "metadata": {**dict(request.metadata), "attempt_id": request.idempotency_key},
        }
        try:
            result = to_result(
                await self.client.create_payout(body, key=request.idempotency_key),
                idempotency_key=request.idempotency_key,
            )
        except Exception as exc:
            raise map_error(exc, "payout_create") from exc
        if (result.amount_minor, result.currency) != (request.amount_minor, request.currency):
            raise ProviderAmountMismatch(
                f"yookassa_payouts: asked {request.amount_minor} {request.currency}, "
                f"provider reports {result.amount_minor} {result.currency}",
                expected=(request.amount_minor, request.currency),
                actual=(result.amount_minor, result.currency),
                provider=PROVIDER,
                operation="payout_create",
            )
        return result

    async def get_status(self, ref: PayoutRef) -> PayoutResult:
        if ref.provider_payout_id is None:
            raise ProviderOperationNotSupported(
                "yookassa_payouts cannot look a payout up by our attempt id: repeat the create with the "
                "same idempotency key (replayed for 24 h) to learn the payout id",
                provider=PROVIDER,
                operation="payout_get",
            )
        try:
            return to_result(await self.client.get_payout(ref.provider_payout_id), idempotency_key=ref.idempotency_key)
        except Exception as exc:
            raise map_error(exc, "payout_get") from exc

    async def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, remote_addr: str | None = None
    ) -> PayoutEvent:
        try:
            webhooks.verify_source(remote_addr, self.settings.webhook_ip_allowlist)
            note = webhooks.parse_notification(body)
            object_id = str(note.object["id"])
            try:
                payout = to_result(await self.client.get_payout(object_id))
            except YooKassaPayoutsApiError as exc:
                if exc.status == 404:
                    raise ProviderSignatureInvalid(
                        f"yookassa_payouts: notified payout {object_id} does not exist",
                        provider=PROVIDER,
                        operation="webhook",
                    ) from exc
                raise
        except Exception as exc:
            WEBHOOKS.labels(PROVIDER, "rejected").inc()
            raise map_error(exc, "webhook") from exc
        WEBHOOKS.labels(PROVIDER, "ok").inc()
        return PayoutEvent(
            provider=PROVIDER,
            external_id=f"{note.event}:{payout.provider_payout_id}:{payout.provider_status}",
            event_type=note.event,
            provider_payout_id=payout.provider_payout_id,
            payout=payout,
        )
