"""T-Bank adapter: Init/GetState/Confirm/Cancel/CheckOrder/GetQr; statuses and ErrorCodes mapped in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from payment_service.providers._base import check_amount, credential
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.cards import scheme_from_bin, split_masked_pan
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
    ReceiptData,
    RefundResult,
    RefundStatus,
)
from payment_service.providers.settings import TBankSettings
from payment_service.providers.tbank import webhooks
from payment_service.providers.tbank.client import TBankApiError, TBankClient
from payment_service.providers.tbank.schemas import TBNotification, TBResponse

PROVIDER = "tbank"

# ErrorCode → decline (providers-reference §2.8)
DECLINES: dict[str, DeclineCode] = {
    "101": DeclineCode.three_ds_failed,
    "106": DeclineCode.three_ds_failed,
    "108": DeclineCode.three_ds_failed,
    "103": DeclineCode.insufficient_funds,
    "116": DeclineCode.insufficient_funds,
    "1051": DeclineCode.insufficient_funds,
    "99": DeclineCode.issuer_unavailable,
    "120": DeclineCode.call_issuer,
    "1006": DeclineCode.general_decline,
    "1012": DeclineCode.general_decline,
    "1092": DeclineCode.general_decline,
    "1013": DeclineCode.limit_exceeded,
    "1019": DeclineCode.limit_exceeded,
    "1014": DeclineCode.invalid_card,
    "1015": DeclineCode.invalid_card,
    "1082": DeclineCode.invalid_card,
    "1041": DeclineCode.restricted,
    "1057": DeclineCode.restricted,
    "1058": DeclineCode.restricted,
    "1043": DeclineCode.fraud_suspected,
    "1059": DeclineCode.fraud_suspected,
    "1054": DeclineCode.card_expired,
    "1091": DeclineCode.issuer_unavailable,
    "104": DeclineCode.general_decline,
}
_INVALID = {"1", "4", "7", "8", "9", "201", "251", "1126", "107"}
_UNUSABLE = {"202", "204", "205", "191"}  # terminal blocked / token / terminal unknown / contract: nothing created
_NOT_SUPPORTED = {"1099", "3001"}

_STATUS: dict[str, ProviderStatus] = {
    "NEW": ProviderStatus.requires_action,
    "FORM_SHOWED": ProviderStatus.requires_action,
    "AUTHORIZING": ProviderStatus.pending,
    "3DS_CHECKING": ProviderStatus.pending,
    "3DS_CHECKED": ProviderStatus.pending,
    "PAY_CHECKING": ProviderStatus.pending,
    "PREAUTHORIZING": ProviderStatus.pending,
    "PROCESSING": ProviderStatus.pending,
    "CHECKING": ProviderStatus.pending,
    "CHECKED": ProviderStatus.pending,
    "UNKNOWN": ProviderStatus.pending,
    "AUTHORIZED": ProviderStatus.authorized,
    "PARTIAL_REVERSED": ProviderStatus.authorized,
    "REVERSING": ProviderStatus.authorized,
    "CONFIRMING": ProviderStatus.authorized,
    "CONFIRMED": ProviderStatus.succeeded,
    "COMPLETING": ProviderStatus.succeeded,
    "COMPLETED": ProviderStatus.succeeded,
    "REFUNDING": ProviderStatus.succeeded,
    "PARTIAL_REFUNDED": ProviderStatus.succeeded,
    "REFUNDED": ProviderStatus.succeeded,
    "REVERSED": ProviderStatus.canceled,
    "CANCELED": ProviderStatus.canceled,
    "REJECTED": ProviderStatus.failed,
    "AUTH_FAIL": ProviderStatus.failed,
    "DEADLINE_EXPIRED": ProviderStatus.failed,
}
_VAT = {"none": "none", "vat0": "vat0", "vat10": "vat10", "vat110": "vat110", "vat22": "vat22", "vat122": "vat122"}


def decline_code(status: str, error_code: str | None) -> DeclineCode:
    if status == "DEADLINE_EXPIRED":
        return DeclineCode.expired
    if status == "AUTH_FAIL" and error_code in (None, "0"):
        return DeclineCode.three_ds_failed
    return DECLINES.get(error_code or "", DeclineCode.unknown)


def map_error(exc: Exception, operation: str) -> ProviderError:
    """THE mapping of T-Bank answers (ErrorCode at HTTP 200, Success=false) into the normalized tree."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, TBankApiError):
        r = exc.response
        code = r.ErrorCode
        kw: dict[str, Any] = {"provider": PROVIDER, "operation": operation, "provider_code": code}
        text = f"tbank: {code} {r.Message or ''}".strip()
        if code in DECLINES:
            return ProviderDeclined(text, decline_code=DECLINES[code], **kw)
        if code == "255" or (operation == "get" and code == "7"):
            return ProviderNotFound(text, **kw)
        if code in _INVALID:
            return ProviderInvalidRequest(text, **kw)
        if code in _UNUSABLE:
            return ProviderUnavailable(text, **kw)
        if code in _NOT_SUPPORTED:
            return ProviderOperationNotSupported(text, **kw)
        if operation in ("get", "get_qr"):
            return ProviderUnavailable(text, **kw)
        return ProviderTimeout(f"{text} (internal error: outcome unknown)", **kw)
    if isinstance(exc, httpx.HTTPError | ValueError):
        return ProviderTimeout(
            f"tbank: unreadable answer ({type(exc).__name__})", provider=PROVIDER, operation=operation
        )
    return ProviderError(f"tbank: {exc}", provider=PROVIDER, operation=operation)


def _card(pan: str | None, exp: str | None) -> MaskedCard | None:
    if not pan or "*" not in pan:
        return None  # SBP notifications carry a phone here
    first6, last4 = split_masked_pan(pan)
    if last4 is None:
        return None
    month = year = None
    if exp and len(exp) == 4 and exp.isdigit():
        month, year = int(exp[:2]), 2000 + int(exp[2:])
    return MaskedCard(
        last4=last4, first6=first6, scheme=scheme_from_bin(first6 or ""), expiry_month=month, expiry_year=year
    )


def to_result(
    *,
    payment_id: str,
    status: str,
    amount: int,
    order_id: str | None,
    error_code: str | None = None,
    action: CustomerAction | None = None,
    card: MaskedCard | None = None,
    raw: Mapping[str, Any] | None = None,
) -> ProviderResult:
    normalized = _STATUS.get(status, ProviderStatus.pending)
    return ProviderResult(
        provider=PROVIDER,
        provider_payment_id=payment_id,
        status=normalized,
        amount_minor=amount,
        currency="RUB",
        captured_minor=amount if normalized is ProviderStatus.succeeded else 0,
        action=action if normalized is ProviderStatus.requires_action else None,
        decline_code=decline_code(status, error_code) if normalized is ProviderStatus.failed else None,
        provider_status=status,
        card=card,
        idempotency_key=order_id,
        raw=dict(raw or {}),
    )


def _receipt(receipt: ReceiptData) -> dict[str, Any]:
    body: dict[str, Any] = {
        "FfdVersion": "1.2",
        "Taxation": "osn",
        "Items": [
            {
                "Name": item.description[:128],
                "Price": item.amount_minor // item.quantity,
                "Quantity": item.quantity,
                "Amount": item.amount_minor,
                "Tax": _VAT.get(item.vat, "vat22"),
                "PaymentMethod": item.payment_mode,
                "PaymentObject": item.payment_subject,
                "MeasurementUnit": "шт",
            }
            for item in receipt.items
        ],
    }
    if receipt.email:
        body["Email"] = receipt.email
    if receipt.phone:
        body["Phone"] = receipt.phone
    return body


class TBankProvider:
    name = PROVIDER
    capabilities = frozenset(
        {
            Capability.two_stage,
            Capability.partial_capture,
            Capability.partial_refund,
            Capability.status_by_idempotency_key,
            Capability.idempotent_refund,
        }
    )

    def __init__(
        self,
        settings: TBankSettings,
        credentials: Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings
        self.methods = frozenset(settings.methods)
        self._password = credential(credentials, PROVIDER, "password")
        self.client = TBankClient(
            settings,
            terminal_key=credential(credentials, PROVIDER, "terminal_key"),
            password=self._password,
            transport=transport,
            breaker=breaker,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self.client.http.breaker

    async def aclose(self) -> None:
        await self.client.aclose()

    async def authorize(self, request: ChargeRequest) -> ProviderResult:
        if request.method not in (PaymentMethod.bank_card, PaymentMethod.sbp):
            raise ProviderOperationNotSupported(
                f"tbank: method {request.method}", provider=PROVIDER, operation="create"
            )
        if request.currency != "RUB":
            raise ProviderOperationNotSupported("tbank accepts RUB only", provider=PROVIDER, operation="create")
        sbp = request.method is PaymentMethod.sbp
        if sbp and not request.capture:
            raise ProviderOperationNotSupported("SBP has no two-stage mode", provider=PROVIDER, operation="create")
        data = {k[:20]: str(v)[:100] for k, v in list(request.metadata.items())[:18]}
        if sbp:
            data["QR"] = "true"
        params: dict[str, Any] = {
            "Amount": request.amount_minor,
            "OrderId": request.idempotency_key,
            "Description": request.description[:140],
            "PayType": "O" if request.capture else "T",
            "SuccessURL": request.return_url,
            "FailURL": request.return_url,
            "DATA": data,
        }
        if request.notification_url:
            params["NotificationURL"] = request.notification_url
        if request.receipt is not None:
            params["Receipt"] = _receipt(request.receipt)
        try:
            resp = await self.client.init(params)
            assert resp.PaymentId is not None
            action = CustomerAction(ActionType.redirect, url=resp.PaymentURL)
            if sbp:
                qr = await self.client.get_qr(resp.PaymentId)
                action = CustomerAction(ActionType.qr, url=qr.Data, qr_payload=qr.Data)
            result = to_result(
                payment_id=resp.PaymentId,
                status=resp.Status or "NEW",
                amount=resp.Amount if resp.Amount is not None else -1,
                order_id=resp.OrderId,
                action=action,
                raw=resp.model_dump(mode="json"),
            )
            return check_amount(
                result, amount_minor=request.amount_minor, currency=request.currency, operation="create"
            )
        except Exception as exc:
            raise map_error(exc, "create") from exc

    async def capture(self, ref: PaymentRef, *, amount_minor: int | None = None, currency: str) -> ProviderResult:
        try:
            pid = await self._pid(ref)
            resp = await self.client.confirm(pid, amount_minor)
            return await self._state_after(pid, resp)
        except Exception as exc:
            raise map_error(exc, "capture") from exc

    async def void(self, ref: PaymentRef) -> ProviderResult:
        try:
            pid = await self._pid(ref)
            resp = await self.client.cancel(pid, None)
            return await self._state_after(pid, resp)
        except Exception as exc:
            raise map_error(exc, "void") from exc

    async def refund(self, ref: PaymentRef, *, amount_minor: int, currency: str, idempotency_key: str) -> RefundResult:
        try:
            pid = await self._pid(ref)
            resp = await self.client.cancel(pid, amount_minor, external_request_id=idempotency_key)
        except Exception as exc:
            raise map_error(exc, "refund") from exc
        if resp.Status not in ("REFUNDED", "PARTIAL_REFUNDED", "REFUNDING"):
            raise ProviderInvalidRequest(
                f"tbank: refund left the payment {resp.Status}", provider=PROVIDER, operation="refund"
            )
        return RefundResult(
            provider=PROVIDER,
            provider_refund_id=f"{pid}:{idempotency_key}",
            provider_payment_id=pid,
            status=RefundStatus.pending if resp.Status == "REFUNDING" else RefundStatus.succeeded,
            amount_minor=amount_minor,
            currency=currency,
        )

    async def get_status(self, ref: PaymentRef) -> ProviderResult:
        try:
            pid = await self._pid(ref)
            resp = await self.client.get_state(pid)
            error_code = None
            if _STATUS.get(resp.Status or "") is ProviderStatus.failed and resp.OrderId:
                # GetState carries no decline reason; CheckOrder lists ErrorCode per payment
                order = await self.client.check_order(resp.OrderId)
                error_code = next((p.ErrorCode for p in order.Payments if p.PaymentId == pid), None)
            return self._from_state(resp, ref.idempotency_key, error_code=error_code)
        except Exception as exc:
            raise map_error(exc, "get") from exc

    async def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, remote_addr: str | None = None, query: str = ""
    ) -> ProviderEvent:
        try:
            note: TBNotification = webhooks.verify_and_parse(
                body, terminal_key=self.client.terminal_key, password=self._password
            )
        except Exception as exc:
            WEBHOOKS.labels(PROVIDER, "rejected").inc()
            raise map_error(exc, "webhook") from exc
        WEBHOOKS.labels(PROVIDER, "ok").inc()
        payment = to_result(
            payment_id=note.PaymentId,
            status=note.Status,
            amount=note.Amount,
            order_id=note.OrderId,
            error_code=note.ErrorCode,
            card=_card(note.Pan, note.ExpDate),
            raw=note.model_dump(mode="json"),
        )
        return ProviderEvent(
            provider=PROVIDER,
            external_id=f"{note.PaymentId}:{note.Status}:{note.Amount}",
            kind=EventKind.payment,
            event_type=note.Status,
            provider_payment_id=note.PaymentId,
            payment=payment,
            idempotency_key=note.OrderId,
            ack_body=webhooks.ACK,
            raw=note.model_dump(mode="json"),
        )

    # -- helpers -------------------------------------------------------------------------------
    async def _pid(self, ref: PaymentRef) -> str:
        if ref.provider_payment_id:
            return ref.provider_payment_id
        order = await self.client.check_order(ref.idempotency_key)
        if not order.Payments:
            raise ProviderNotFound(
                f"tbank: no payment for order {ref.idempotency_key}", provider=PROVIDER, operation="get"
            )
        return order.Payments[-1].PaymentId

    def _from_state(self, resp: TBResponse, order_id: str | None, *, error_code: str | None = None) -> ProviderResult:
        pan = exp = None
        for p in resp.Params or []:
            if p.get("Key") == "Pan":
                pan = str(p.get("Value"))
            if p.get("Key") == "ExpDate":
                exp = str(p.get("Value"))
        assert resp.PaymentId is not None
        return to_result(
            payment_id=resp.PaymentId,
            status=resp.Status or "UNKNOWN",
            amount=resp.Amount or 0,
            order_id=resp.OrderId or order_id,
            error_code=error_code,
            card=_card(pan, exp),
            raw=resp.model_dump(mode="json"),
        )

    async def _state_after(self, pid: str, resp: TBResponse) -> ProviderResult:
        try:
            return self._from_state(await self.client.get_state(pid), resp.OrderId)
        except ProviderError:
            # the operation itself succeeded; report what its answer said
            return to_result(
                payment_id=pid, status=resp.Status or "UNKNOWN", amount=resp.NewAmount or 0, order_id=resp.OrderId
            )
