"""YooKassa adapter: ChargeRequest ⇄ /v3/payments, statuses and errors normalized in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from payment_service.providers._base import check_amount, credential, decimal_to_minor, minor_to_decimal
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.cards import scheme_from_name
from payment_service.providers.errors import (
    ProviderAmountMismatch,
    ProviderDeclined,
    ProviderError,
    ProviderInvalidRequest,
    ProviderOperationNotSupported,
    ProviderSignatureInvalid,
    ProviderTimeout,
    ProviderUnavailable,
)
from payment_service.providers.metrics import WEBHOOKS
from payment_service.providers.ports import (
    ActionType,
    Capability,
    ChargeRequest,
    CustomerAction,
    DeclineCode,
    EventKind,
    MaskedCard,
    PaymentMethod,
    PaymentRef,
    ProviderEvent,
    ProviderResult,
    ProviderStatus,
    ReceiptData,
    RefundResult,
    RefundStatus,
)
from payment_service.providers.settings import YooKassaSettings
from payment_service.providers.yookassa import webhooks
from payment_service.providers.yookassa.client import YooKassaApiError, YooKassaClient
from payment_service.providers.yookassa.schemas import YKPayment, YKRefund

PROVIDER = "yookassa"

_METHOD = {
    PaymentMethod.bank_card: ("bank_card", "redirect"),
    PaymentMethod.sbp: ("sbp", "qr"),
    PaymentMethod.yoomoney: ("yoo_money", "redirect"),
    PaymentMethod.sberpay: ("sberbank", "redirect"),
    PaymentMethod.mobile: ("mobile_balance", "external"),
}
_VAT = {"none": 1, "vat0": 2, "vat10": 3, "vat110": 5, "vat22": 11, "vat122": 12}

# cancellation_details.reason → normalized decline code (providers-reference §1.5)
DECLINES: dict[str, DeclineCode] = {
    "3d_secure_failed": DeclineCode.three_ds_failed,
    "call_issuer": DeclineCode.call_issuer,
    "card_expired": DeclineCode.card_expired,
    "country_forbidden": DeclineCode.restricted,
    "fraud_suspected": DeclineCode.fraud_suspected,
    "general_decline": DeclineCode.general_decline,
    "identification_required": DeclineCode.restricted,
    "insufficient_funds": DeclineCode.insufficient_funds,
    "invalid_card_number": DeclineCode.invalid_card,
    "invalid_csc": DeclineCode.invalid_card,
    "issuer_unavailable": DeclineCode.issuer_unavailable,
    "payment_method_limit_exceeded": DeclineCode.limit_exceeded,
    "payment_method_restricted": DeclineCode.restricted,
    "permission_revoked": DeclineCode.restricted,
    "unsupported_mobile_operator": DeclineCode.unsupported_operator,
    "expired_on_confirmation": DeclineCode.expired,
    "internal_timeout": DeclineCode.issuer_unavailable,
    "rejected_by_timeout": DeclineCode.expired,
    "deal_expired": DeclineCode.expired,
}
_MERCHANT_SIDE = {"canceled_by_merchant", "expired_on_capture"}


def map_error(exc: Exception, operation: str) -> ProviderError:
    """THE mapping of YooKassa answers into the normalized tree (HTTP errors and declines)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, YooKassaApiError):
        code, status, desc = exc.error.code, exc.status, exc.error.description
        kw: dict[str, Any] = {"provider": PROVIDER, "operation": operation, "provider_code": code}
        if status == 401 or code == "invalid_credentials":
            return ProviderUnavailable(f"yookassa: credentials rejected: {desc}", **kw)
        if status in (400, 403, 404, 410) or code in ("invalid_request", "forbidden", "not_found", "gone"):
            return ProviderInvalidRequest(f"yookassa: {code}: {desc}", **kw)
        if status == 202:
            return ProviderTimeout("yookassa: still processing (202); repeat with the same key", **kw)
        return ProviderTimeout(f"yookassa: unexpected HTTP {status} {code}", **kw)
    if isinstance(exc, ProviderDeclinedReason):
        code_ = DECLINES.get(exc.reason, DeclineCode.unknown)
        return ProviderDeclined(
            f"yookassa: declined ({exc.reason})",
            decline_code=code_,
            result=exc.result,
            provider=PROVIDER,
            operation=operation,
            provider_code=exc.reason,
        )
    if isinstance(exc, httpx.HTTPError | ValueError):
        return ProviderTimeout(
            f"yookassa: unreadable answer ({type(exc).__name__})", provider=PROVIDER, operation=operation
        )
    return ProviderError(f"yookassa: {exc}", provider=PROVIDER, operation=operation)


class ProviderDeclinedReason(Exception):
    def __init__(self, reason: str, result: ProviderResult) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result


def to_result(p: YKPayment, *, idempotency_key: str | None = None) -> ProviderResult:
    amount = decimal_to_minor(p.amount.value)
    action: CustomerAction | None = None
    decline: DeclineCode | None = None
    if p.status == "pending":
        status = ProviderStatus.pending
        c = p.confirmation
        if c is not None:
            status = ProviderStatus.requires_action
            if c.type == "qr":
                action = CustomerAction(ActionType.qr, url=c.confirmation_data, qr_payload=c.confirmation_data)
            elif c.type in ("redirect", "mobile_application"):
                action = CustomerAction(ActionType.redirect, url=c.confirmation_url)
            else:
                action = CustomerAction(ActionType.external)
    elif p.status == "waiting_for_capture":
        status = ProviderStatus.authorized
    elif p.status == "succeeded":
        status = ProviderStatus.succeeded
    else:
        reason = p.cancellation_details.reason if p.cancellation_details else "unknown"
        if reason in _MERCHANT_SIDE:
            status = ProviderStatus.canceled
        else:
            status = ProviderStatus.failed
            decline = DECLINES.get(reason, DeclineCode.unknown)
    card = None
    if p.payment_method is not None and p.payment_method.card is not None:
        c6 = p.payment_method.card
        card = MaskedCard(
            last4=c6.last4,
            first6=c6.first6,
            scheme=scheme_from_name(c6.card_type, c6.first6),
            expiry_month=int(c6.expiry_month) if c6.expiry_month else None,
            expiry_year=int(c6.expiry_year) if c6.expiry_year else None,
            issuer_country=c6.issuer_country,
        )
    fee = None
    if p.income_amount is not None:
        fee = amount - decimal_to_minor(p.income_amount.value)
    metadata = p.metadata or {}
    return ProviderResult(
        provider=PROVIDER,
        provider_payment_id=p.id,
        status=status,
        amount_minor=amount,
        currency=p.amount.currency,
        captured_minor=amount if p.status == "succeeded" else 0,
        refunded_minor=decimal_to_minor(p.refunded_amount.value) if p.refunded_amount else 0,
        action=action,
        decline_code=decline,
        provider_status=p.status,
        card=card,
        fee_minor=fee,
        idempotency_key=idempotency_key or (str(metadata["attempt_id"]) if "attempt_id" in metadata else None),
        raw=p.model_dump(mode="json"),
    )


def refund_result(r: YKRefund) -> RefundResult:
    status = {"pending": RefundStatus.pending, "succeeded": RefundStatus.succeeded}.get(r.status, RefundStatus.failed)
    decline = None
    if status is RefundStatus.failed:
        reason = r.cancellation_details.reason if r.cancellation_details else "unknown"
        decline = DECLINES.get(reason, DeclineCode.unknown)
    return RefundResult(
        provider=PROVIDER,
        provider_refund_id=r.id,
        provider_payment_id=r.payment_id,
        status=status,
        amount_minor=decimal_to_minor(r.amount.value),
        currency=r.amount.currency,
        decline_code=decline,
    )


def _receipt(receipt: ReceiptData) -> dict[str, Any]:
    customer = {k: v for k, v in (("email", receipt.email), ("phone", receipt.phone)) if v}
    body: dict[str, Any] = {
        "customer": customer,
        "items": [
            {
                "description": item.description[:128],
                "quantity": f"{item.quantity}.00",
                # unit price per line: quantity 1 makes both readings of items[].amount agree (UNCONFIRMED semantics)
                "amount": {"value": minor_to_decimal(item.amount_minor // item.quantity), "currency": "RUB"},
                "vat_code": _VAT.get(item.vat, 11),
                "payment_mode": item.payment_mode,
                "payment_subject": item.payment_subject,
            }
            for item in receipt.items
        ],
    }
    if receipt.tax_system_code is not None:
        body["tax_system_code"] = receipt.tax_system_code
    return body


class YooKassaProvider:
    name = PROVIDER
    capabilities = frozenset(
        {Capability.two_stage, Capability.partial_capture, Capability.partial_refund, Capability.idempotent_refund}
    )

    def __init__(
        self,
        settings: YooKassaSettings,
        credentials: Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings
        self.methods = frozenset(settings.methods)
        self.client = YooKassaClient(
            settings,
            shop_id=credential(credentials, PROVIDER, "shop_id"),
            secret_key=credential(credentials, PROVIDER, "secret_key"),
            transport=transport,
            breaker=breaker,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self.client.http.breaker

    async def aclose(self) -> None:
        await self.client.aclose()

    async def authorize(self, request: ChargeRequest) -> ProviderResult:
        if request.method not in _METHOD:
            raise ProviderOperationNotSupported(
                f"yookassa: method {request.method}", provider=PROVIDER, operation="create"
            )
        if request.method is PaymentMethod.sbp and not request.capture:
            raise ProviderOperationNotSupported("SBP has no two-stage mode", provider=PROVIDER, operation="create")
        wire_method, confirmation_type = _METHOD[request.method]
        confirmation: dict[str, Any] = {"type": confirmation_type}
        if confirmation_type in ("redirect", "qr"):
            confirmation["return_url"] = request.return_url
        pmd: dict[str, Any] = {"type": wire_method}
        if request.method is PaymentMethod.mobile:
            if not request.payer_phone:
                raise ProviderInvalidRequest(
                    "yookassa: mobile payments need payer_phone", provider=PROVIDER, operation="create"
                )
            pmd["phone"] = request.payer_phone
        body: dict[str, Any] = {
            "amount": {"value": minor_to_decimal(request.amount_minor), "currency": request.currency},
            "capture": request.capture,
            "confirmation": confirmation,
            "payment_method_data": pmd,
            "description": request.description[:128],
            "metadata": {**dict(request.metadata), "attempt_id": request.idempotency_key},
        }
        if request.receipt is not None:
            body["receipt"] = _receipt(request.receipt)
        try:
            payment = await self.client.create_payment(body, key=request.idempotency_key)
            result = to_result(payment, idempotency_key=request.idempotency_key)
            check_amount(result, amount_minor=request.amount_minor, currency=request.currency, operation="create")
            if result.status is ProviderStatus.failed:
                raise ProviderDeclinedReason(
                    payment.cancellation_details.reason if payment.cancellation_details else "", result
                )
            return result
        except Exception as exc:
            raise map_error(exc, "create") from exc

    async def capture(self, ref: PaymentRef, *, amount_minor: int | None = None, currency: str) -> ProviderResult:
        pid = self._pid(ref, "capture")
        body: dict[str, Any] = {}
        if amount_minor is not None:
            body["amount"] = {"value": minor_to_decimal(amount_minor), "currency": currency}
        try:
            result = to_result(await self.client.capture_payment(pid, body, key=f"{ref.idempotency_key}-capture"))
            if amount_minor is not None:
                check_amount(result, amount_minor=amount_minor, currency=currency, operation="capture")
            return result
        except Exception as exc:
            raise map_error(exc, "capture") from exc

    async def void(self, ref: PaymentRef) -> ProviderResult:
        pid = self._pid(ref, "void")
        try:
            return to_result(await self.client.cancel_payment(pid, key=f"{ref.idempotency_key}-cancel"))
        except Exception as exc:
            raise map_error(exc, "void") from exc

    async def refund(self, ref: PaymentRef, *, amount_minor: int, currency: str, idempotency_key: str) -> RefundResult:
        pid = self._pid(ref, "refund")
        body = {"payment_id": pid, "amount": {"value": minor_to_decimal(amount_minor), "currency": currency}}
        try:
            result = refund_result(await self.client.create_refund(body, key=idempotency_key))
        except Exception as exc:
            raise map_error(exc, "refund") from exc
        if (result.amount_minor, result.currency) != (amount_minor, currency):
            raise ProviderAmountMismatch(
                "yookassa: refund amount differs",
                expected=(amount_minor, currency),
                actual=(result.amount_minor, result.currency),
                provider=PROVIDER,
                operation="refund",
            )
        return result

    async def get_status(self, ref: PaymentRef) -> ProviderResult:
        if ref.provider_payment_id is None:
            raise ProviderOperationNotSupported(
                "yookassa cannot look a payment up by our attempt id: repeat authorize with the same "
                "idempotency key (replayed for 24 h) to learn the payment id",
                provider=PROVIDER,
                operation="get",
            )
        try:
            return to_result(
                await self.client.get_payment(ref.provider_payment_id), idempotency_key=ref.idempotency_key
            )
        except Exception as exc:
            raise map_error(exc, "get") from exc

    async def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, remote_addr: str | None = None, query: str = ""
    ) -> ProviderEvent:
        try:
            webhooks.verify_source(remote_addr, self.settings.webhook_ip_allowlist)
            note = webhooks.parse_notification(body)
            object_id = str(note.object["id"])
            try:
                if note.event in webhooks.REFUND_EVENTS:
                    refund = refund_result(await self.client.get_refund(object_id))
                    event = ProviderEvent(
                        provider=PROVIDER,
                        external_id=f"{note.event}:{refund.provider_refund_id}:{refund.status}",
                        kind=EventKind.refund,
                        event_type=note.event,
                        provider_payment_id=refund.provider_payment_id,
                        refund=refund,
                        raw=note.model_dump(mode="json"),
                    )
                else:
                    payment = to_result(await self.client.get_payment(object_id))
                    event = ProviderEvent(
                        provider=PROVIDER,
                        external_id=f"{note.event}:{payment.provider_payment_id}:{payment.provider_status}",
                        kind=EventKind.payment,
                        event_type=note.event,
                        provider_payment_id=payment.provider_payment_id,
                        payment=payment,
                        idempotency_key=payment.idempotency_key,
                        raw=note.model_dump(mode="json"),
                    )
            except YooKassaApiError as exc:
                if exc.status == 404:
                    raise ProviderSignatureInvalid(
                        f"yookassa: notified object {object_id} does not exist", provider=PROVIDER, operation="webhook"
                    ) from exc
                raise
        except Exception as exc:
            WEBHOOKS.labels(PROVIDER, "rejected").inc()
            raise map_error(exc, "webhook") from exc
        WEBHOOKS.labels(PROVIDER, "ok").inc()
        return event

    @staticmethod
    def _pid(ref: PaymentRef, operation: str) -> str:
        if not ref.provider_payment_id:
            raise ProviderInvalidRequest(
                "yookassa: provider_payment_id is required", provider=PROVIDER, operation=operation
            )
        return ref.provider_payment_id
