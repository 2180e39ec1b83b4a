"""Sber adapter: register(.PreAuth)/getOrderStatusExtended/deposit/reverse/refund; one error mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from payment_service.providers._base import check_amount, credential
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.cards import scheme_from_name, split_masked_pan
from payment_service.providers.errors import (
    ProviderDeclined,
    ProviderError,
    ProviderInvalidRequest,
    ProviderNotFound,
    ProviderOperationNotSupported,
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
    RefundResult,
    RefundStatus,
)
from payment_service.providers.sber import webhooks
from payment_service.providers.sber.client import SberApiError, SberClient
from payment_service.providers.sber.schemas import SberOrderStatus
from payment_service.providers.settings import SberSettings

PROVIDER = "sber"
CURRENCY_NUMERIC = {"RUB": "643"}
CURRENCY_ALPHA = {v: k for k, v in CURRENCY_NUMERIC.items()}

# actionCode → decline (RBS codes; UNCONFIRMED table, see emulators/README.md)
DECLINES: dict[int, DeclineCode] = {
    116: DeclineCode.insufficient_funds,
    101: DeclineCode.card_expired,
    -2006: DeclineCode.three_ds_failed,
    59: DeclineCode.fraud_suspected,
    91: DeclineCode.issuer_unavailable,
    5: DeclineCode.general_decline,
    14: DeclineCode.invalid_card,
    121: DeclineCode.limit_exceeded,
    -2007: DeclineCode.expired,
}
_STATUS = {
    0: ProviderStatus.requires_action,
    1: ProviderStatus.authorized,
    2: ProviderStatus.succeeded,
    3: ProviderStatus.canceled,
    4: ProviderStatus.succeeded,
    5: ProviderStatus.pending,
    6: ProviderStatus.failed,
}


def map_error(exc: Exception, operation: str) -> ProviderError:
    """THE mapping of Sber answers (errorCode at HTTP 200, actionCode on declined orders)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, SberApiError):
        kw: dict[str, Any] = {"provider": PROVIDER, "operation": operation, "provider_code": exc.code}
        text = f"sber: {exc.code} {exc.message}"
        if exc.code == "5" and "оступ" in exc.message:  # "Доступ запрещён": credentials, nothing created
            return ProviderUnavailable(text, **kw)
        if exc.code == "6":
            return ProviderNotFound(text, **kw)
        if exc.code in ("1", "3", "4", "5", "7"):
            return ProviderInvalidRequest(text, **kw)
        if operation == "get":
            return ProviderUnavailable(text, **kw)
        return ProviderTimeout(f"{text} (system error: outcome unknown)", **kw)
    if isinstance(exc, SberDeclinedOrder):
        code = DECLINES.get(exc.action_code, DeclineCode.unknown)
        return ProviderDeclined(
            f"sber: declined (actionCode {exc.action_code})",
            decline_code=code,
            result=exc.result,
            provider=PROVIDER,
            operation=operation,
            provider_code=str(exc.action_code),
        )
    if isinstance(exc, httpx.HTTPError | ValueError):
        return ProviderTimeout(
            f"sber: unreadable answer ({type(exc).__name__})", provider=PROVIDER, operation=operation
        )
    return ProviderError(f"sber: {exc}", provider=PROVIDER, operation=operation)


class SberDeclinedOrder(Exception):
    def __init__(self, action_code: int, result: ProviderResult) -> None:
        super().__init__(str(action_code))
        self.action_code = action_code
        self.result = result


def to_result(s: SberOrderStatus, *, order_id: str | None, action: CustomerAction | None = None) -> ProviderResult:
    status = _STATUS.get(s.orderStatus if s.orderStatus is not None else 0, ProviderStatus.pending)
    info = s.paymentAmountInfo
    card = None
    if s.cardAuthInfo and s.cardAuthInfo.maskedPan:
        first6, last4 = split_masked_pan(s.cardAuthInfo.maskedPan)
        if last4:
            exp = s.cardAuthInfo.expiration or ""
            card = MaskedCard(
                last4=last4,
                first6=first6,
                scheme=scheme_from_name(s.cardAuthInfo.paymentSystem, first6),
                expiry_year=int(exp[:4]) if len(exp) == 6 and exp.isdigit() else None,
                expiry_month=int(exp[4:]) if len(exp) == 6 and exp.isdigit() else None,
            )
    amount = s.amount or 0
    captured = info.depositedAmount if info else (amount if status is ProviderStatus.succeeded else 0)
    if status is ProviderStatus.succeeded and captured:
        amount = captured
    return ProviderResult(
        provider=PROVIDER,
        provider_payment_id=order_id or s.md_order() or "",
        status=status,
        amount_minor=amount,
        currency=CURRENCY_ALPHA.get(s.currency or "643", s.currency or "RUB"),
        captured_minor=captured,
        refunded_minor=info.refundedAmount if info else 0,
        action=action if status is ProviderStatus.requires_action else None,
        decline_code=DECLINES.get(s.actionCode or 0, DeclineCode.unknown) if status is ProviderStatus.failed else None,
        provider_status=str(s.orderStatus),
        card=card,
        fee_minor=info.feeAmount if info else None,
        idempotency_key=s.orderNumber,
        raw=s.model_dump(mode="json"),
    )


class SberProvider:
    name = PROVIDER
    capabilities = frozenset(
        {
            Capability.two_stage,
            Capability.partial_capture,
            Capability.partial_refund,
            Capability.status_by_idempotency_key,
        }
    )

    def __init__(
        self,
        settings: SberSettings,
        credentials: Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings
        self.methods = frozenset(settings.methods)
        self._callback_secret = credential(credentials, PROVIDER, "callback_secret")
        self.client = SberClient(
            settings,
            user_name=credential(credentials, PROVIDER, "user_name"),
            password=credential(credentials, PROVIDER, "password"),
            transport=transport,
            breaker=breaker,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self.client.http.breaker

    async def aclose(self) -> None:
        await self.client.aclose()

    async def authorize(self, request: ChargeRequest) -> ProviderResult:
        if request.method is not PaymentMethod.bank_card:
            raise ProviderOperationNotSupported(f"sber: method {request.method}", provider=PROVIDER, operation="create")
        if request.currency not in CURRENCY_NUMERIC:
            raise ProviderOperationNotSupported(
                f"sber: currency {request.currency}", provider=PROVIDER, operation="create"
            )
        params: dict[str, Any] = {
            "orderNumber": request.idempotency_key,
            "amount": request.amount_minor,
            "currency": CURRENCY_NUMERIC[request.currency],
            "returnUrl": request.return_url,
            "failUrl": request.return_url,
            "description": request.description[:512],
            "jsonParams": json.dumps(dict(request.metadata), ensure_ascii=False),
        }
        if request.notification_url:
            params["dynamicCallbackUrl"] = request.notification_url
        try:
            try:
                reg = await self.client.register(params, two_stage=not request.capture)
            except SberApiError as exc:
                if exc.code != "1":
                    raise
                # orderNumber already registered: a repeat of this very attempt (the first
                # answer was lost); read it back, with its page when we know how it is addressed
                status = await self.client.status(order_number=request.idempotency_key)
                md_order = status.md_order()
                return self._checked(
                    to_result(status, order_id=md_order, action=self._page_of(md_order)), request, status
                )
            action = CustomerAction(ActionType.redirect, url=reg.formUrl)
            try:
                status = await self.client.status(order_id=reg.orderId)
            except ProviderError:
                # the order exists: never report this as "nothing created"; amount unverified until status-sync
                return ProviderResult(
                    provider=PROVIDER,
                    provider_payment_id=reg.orderId or "",
                    status=ProviderStatus.requires_action,
                    amount_minor=request.amount_minor,
                    currency=request.currency,
                    action=action,
                    idempotency_key=request.idempotency_key,
                )
            return self._checked(to_result(status, order_id=reg.orderId, action=action), request, status)
        except Exception as exc:
            raise map_error(exc, "create") from exc

    def _page_of(self, md_order: str | None) -> CustomerAction | None:
        """The order's payment page rebuilt from ``payment_page_url`` (status reads carry no formUrl)."""
        template = self.settings.payment_page_url
        if not md_order or template is None:
            return None
        return CustomerAction(ActionType.redirect, url=template.replace("{md_order}", quote(md_order, safe="")))

    @staticmethod
    def _checked(result: ProviderResult, request: ChargeRequest, status: SberOrderStatus) -> ProviderResult:
        check_amount(result, amount_minor=request.amount_minor, currency=request.currency, operation="create")
        if result.status is ProviderStatus.failed:
            raise SberDeclinedOrder(status.actionCode or 0, result)
        return result

    async def capture(self, ref: PaymentRef, *, amount_minor: int | None = None, currency: str) -> ProviderResult:
        try:
            oid = await self._oid(ref)
            await self.client.deposit(oid, amount_minor or 0)
            return to_result(await self.client.status(order_id=oid), order_id=oid)
        except Exception as exc:
            raise map_error(exc, "capture") from exc

    async def void(self, ref: PaymentRef) -> ProviderResult:
        try:
            oid = await self._oid(ref)
            await self.client.reverse(oid)
            return to_result(await self.client.status(order_id=oid), order_id=oid)
        except Exception as exc:
            raise map_error(exc, "void") from exc

    async def refund(self, ref: PaymentRef, *, amount_minor: int, currency: str, idempotency_key: str) -> RefundResult:
        try:
            oid = await self._oid(ref)
            await self.client.refund(oid, amount_minor)
        except Exception as exc:
            raise map_error(exc, "refund") from exc
        return RefundResult(
            provider=PROVIDER,
            provider_refund_id=f"{oid}:{idempotency_key}",
            provider_payment_id=oid,
            status=RefundStatus.succeeded,
            amount_minor=amount_minor,
            currency=currency,
        )

    async def get_status(self, ref: PaymentRef) -> ProviderResult:
        try:
            if ref.provider_payment_id:
                s = await self.client.status(order_id=ref.provider_payment_id)
            else:
                s = await self.client.status(order_number=ref.idempotency_key)
            return to_result(s, order_id=ref.provider_payment_id or s.md_order())
        except Exception as exc:
            raise map_error(exc, "get") from exc

    async def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, remote_addr: str | None = None, query: str = ""
    ) -> ProviderEvent:
        try:
            params = webhooks.callback_params(body, query)
            webhooks.verify(params, self._callback_secret)
            # the checksum proves origin; the status read gives the truth to act on (§3.5)
            status = await self.client.status(order_id=params["mdOrder"])
            payment = to_result(status, order_id=params["mdOrder"])
        except Exception as exc:
            WEBHOOKS.labels(PROVIDER, "rejected").inc()
            raise map_error(exc, "webhook") from exc
        WEBHOOKS.labels(PROVIDER, "ok").inc()
        return ProviderEvent(
            provider=PROVIDER,
            external_id=f"{params['mdOrder']}:{params['operation']}:{params['status']}:{params.get('amount', '')}",
            kind=EventKind.payment,
            event_type=params["operation"],
            provider_payment_id=params["mdOrder"],
            payment=payment,
            idempotency_key=params["orderNumber"],
            raw=params,
        )

    async def _oid(self, ref: PaymentRef) -> str:
        if ref.provider_payment_id:
            return ref.provider_payment_id
        s = await self.client.status(order_number=ref.idempotency_key)
        oid = s.md_order()
        if not oid:
            raise ProviderNotFound(f"sber: no order {ref.idempotency_key}", provider=PROVIDER, operation="get")
        return oid
