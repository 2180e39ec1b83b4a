"""Mobile-commerce adapter: a charge confirmed by the subscriber's SMS reply; full capture only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from payment_service.providers._base import check_amount, credential
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.errors import (
    ProviderAmountMismatch,
    ProviderDeclined,
    ProviderError,
    ProviderInvalidRequest,
    ProviderNotFound,
    ProviderOperationNotSupported,
    ProviderTimeout,
    ProviderUnavailable,
)
from payment_service.providers.metrics import WEBHOOKS
from payment_service.providers.mobile import webhooks
from payment_service.providers.mobile.client import MobileApiError, MobileClient
from payment_service.providers.mobile.schemas import MCCharge, MCRefund
from payment_service.providers.ports import (
    ActionType,
    Capability,
    ChargeRequest,
    CustomerAction,
    DeclineCode,
    EventKind,
    PaymentMethod,
    PaymentRef,
    ProviderEvent,
    ProviderResult,
    ProviderStatus,
    RefundResult,
    RefundStatus,
)
from payment_service.providers.settings import MobileSettings

PROVIDER = "mobile"

DECLINES: dict[str, DeclineCode] = {
    "insufficient_funds": DeclineCode.insufficient_funds,
    "subscriber_declined": DeclineCode.canceled_by_payer,
    "subscriber_timeout": DeclineCode.expired,
    "unsupported_operator": DeclineCode.unsupported_operator,
    "limit_exceeded": DeclineCode.limit_exceeded,
    "content_restricted": DeclineCode.restricted,
    "number_blocked": DeclineCode.restricted,
    "fraud_suspected": DeclineCode.fraud_suspected,
    "operator_unavailable": DeclineCode.issuer_unavailable,
}
_STATUS = {
    "pending_confirmation": ProviderStatus.requires_action,
    "authorized": ProviderStatus.authorized,
    "succeeded": ProviderStatus.succeeded,
    "failed": ProviderStatus.failed,
    "canceled": ProviderStatus.canceled,
}


class _Declined(Exception):
    def __init__(self, code: str, result: ProviderResult) -> None:
        super().__init__(code)
        self.code = code
        self.result = result


def map_error(exc: Exception, operation: str) -> ProviderError:
    """THE mapping of aggregator answers into the normalized tree."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, MobileApiError):
        code = exc.error.code
        kw: dict[str, Any] = {"provider": PROVIDER, "operation": operation, "provider_code": code}
        text = f"mobile: {exc.status} {code}: {exc.error.message}"
        if exc.status == 401:
            return ProviderUnavailable(text, **kw)
        if exc.status == 404:
            return ProviderNotFound(text, **kw)
        if exc.status in (400, 409):
            return ProviderInvalidRequest(text, **kw)
        return ProviderTimeout(text, **kw) if operation != "get" else ProviderUnavailable(text, **kw)
    if isinstance(exc, _Declined):
        return ProviderDeclined(
            f"mobile: declined ({exc.code})",
            decline_code=DECLINES.get(exc.code, DeclineCode.unknown),
            result=exc.result,
            provider=PROVIDER,
            operation=operation,
            provider_code=exc.code,
        )
    if isinstance(exc, httpx.HTTPError | ValueError):
        return ProviderTimeout(
            f"mobile: unreadable answer ({type(exc).__name__})", provider=PROVIDER, operation=operation
        )
    return ProviderError(f"mobile: {exc}", provider=PROVIDER, operation=operation)


def to_result(c: MCCharge) -> ProviderResult:
    status = _STATUS.get(c.status, ProviderStatus.pending)
    return ProviderResult(
        provider=PROVIDER,
        provider_payment_id=c.id,
        status=status,
        amount_minor=c.amount,
        currency=c.currency,
        captured_minor=c.captured_amount,
        refunded_minor=c.refunded_amount,
        action=CustomerAction(ActionType.external) if status is ProviderStatus.requires_action else None,
        decline_code=DECLINES.get(c.failure_code or "", DeclineCode.unknown)
        if status is ProviderStatus.failed
        else None,
        provider_status=c.status,
        fee_minor=c.fee,
        idempotency_key=c.merchant_charge_id,
        raw=c.model_dump(mode="json"),
    )


def refund_result(r: MCRefund) -> RefundResult:
    return RefundResult(
        provider=PROVIDER,
        provider_refund_id=r.id,
        provider_payment_id=r.charge_id,
        status={"succeeded": RefundStatus.succeeded, "pending": RefundStatus.pending}.get(
            r.status, RefundStatus.failed
        ),
        amount_minor=r.amount,
        currency=r.currency,
    )


class MobileProvider:
    name = PROVIDER
    capabilities = frozenset(
        {
            Capability.two_stage,
            Capability.partial_refund,
            Capability.status_by_idempotency_key,
            Capability.idempotent_refund,
        }
    )

    def __init__(
        self,
        settings: MobileSettings,
        credentials: Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings
        self.methods = frozenset(settings.methods)
        self._webhook_secret = credential(credentials, PROVIDER, "webhook_secret")
        self.client = MobileClient(
            settings, api_key=credential(credentials, PROVIDER, "api_key"), transport=transport, breaker=breaker
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self.client.http.breaker

    async def aclose(self) -> None:
        await self.client.aclose()

    async def authorize(self, request: ChargeRequest) -> ProviderResult:
        if request.method is not PaymentMethod.mobile:
            raise ProviderOperationNotSupported(
                f"mobile: method {request.method}", provider=PROVIDER, operation="create"
            )
        if not request.payer_phone:
            raise ProviderInvalidRequest("mobile: payer_phone is required", provider=PROVIDER, operation="create")
        body: dict[str, Any] = {
            "merchant_charge_id": request.idempotency_key,
            "phone": request.payer_phone,
            "amount": request.amount_minor,
            "currency": request.currency,
            "description": request.description[:128],
            "capture": request.capture,
        }
        if request.notification_url:
            body["callback_url"] = request.notification_url
        try:
            try:
                charge = await self.client.create_charge(body, key=request.idempotency_key)
            except MobileApiError as exc:
                # our attempt id was already used: a repeat of this attempt whose first answer was lost
                found = (
                    await self.client.find_charge(request.idempotency_key)
                    if exc.error.code == "duplicate_charge"
                    else None
                )
                if found is None:
                    raise
                charge = found
            result = to_result(charge)
            check_amount(result, amount_minor=request.amount_minor, currency=request.currency, operation="create")
            if result.status is ProviderStatus.failed:
                raise _Declined(str(result.raw.get("failure_code")), result)
            return result
        except Exception as exc:
            raise map_error(exc, "create") from exc

    async def capture(self, ref: PaymentRef, *, amount_minor: int | None = None, currency: str) -> ProviderResult:
        try:
            cid = await self._cid(ref)
            if amount_minor is not None:
                current = await self.client.get_charge(cid)
                if amount_minor != current.amount:
                    raise ProviderOperationNotSupported(
                        "mobile balance holds are captured in full only", provider=PROVIDER, operation="capture"
                    )
            return to_result(await self.client.capture(cid, key=f"{ref.idempotency_key}-capture"))
        except Exception as exc:
            raise map_error(exc, "capture") from exc

    async def void(self, ref: PaymentRef) -> ProviderResult:
        try:
            cid = await self._cid(ref)
            return to_result(await self.client.cancel(cid, key=f"{ref.idempotency_key}-cancel"))
        except Exception as exc:
            raise map_error(exc, "void") from exc

    async def refund(self, ref: PaymentRef, *, amount_minor: int, currency: str, idempotency_key: str) -> RefundResult:
        try:
            cid = await self._cid(ref)
            result = refund_result(await self.client.refund(cid, amount_minor, key=idempotency_key))
        except Exception as exc:
            raise map_error(exc, "refund") from exc
        if (result.amount_minor, result.currency) != (amount_minor, currency):
            raise ProviderAmountMismatch(
                "mobile: refund amount differs",
                expected=(amount_minor, currency),
                actual=(result.amount_minor, result.currency),
                provider=PROVIDER,
                operation="refund",
            )
        return result

    async def get_status(self, ref: PaymentRef) -> ProviderResult:
        try:
            if ref.provider_payment_id:
                return to_result(await self.client.get_charge(ref.provider_payment_id))
            found = await self.client.find_charge(ref.idempotency_key)
            if found is None:
                raise ProviderNotFound(f"mobile: no charge {ref.idempotency_key}", provider=PROVIDER, operation="get")
            return to_result(found)
        except Exception as exc:
            raise map_error(exc, "get") from exc

    async def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, remote_addr: str | None = None, query: str = ""
    ) -> ProviderEvent:
        try:
            event = webhooks.verify_and_parse(body, headers, secret=self._webhook_secret)
            if event.type.startswith("refund."):
                refund = refund_result(MCRefund.model_validate(event.data))
                out = ProviderEvent(
                    provider=PROVIDER,
                    external_id=event.id,
                    kind=EventKind.refund,
                    event_type=event.type,
                    provider_payment_id=refund.provider_payment_id,
                    refund=refund,
                    raw=event.model_dump(mode="json"),
                )
            else:
                payment = to_result(MCCharge.model_validate(event.data))
                out = ProviderEvent(
                    provider=PROVIDER,
                    external_id=event.id,
                    kind=EventKind.payment,
                    event_type=event.type,
                    provider_payment_id=payment.provider_payment_id,
                    payment=payment,
                    idempotency_key=payment.idempotency_key,
                    raw=event.model_dump(mode="json"),
                )
        except Exception as exc:
            WEBHOOKS.labels(PROVIDER, "rejected").inc()
            raise map_error(exc, "webhook") from exc
        WEBHOOKS.labels(PROVIDER, "ok").inc()
        return out

    async def _cid(self, ref: PaymentRef) -> str:
        if ref.provider_payment_id:
            return ref.provider_payment_id
        return (await self.get_status(ref)).provider_payment_id
