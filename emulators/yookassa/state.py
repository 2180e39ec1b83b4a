"""In-memory YooKassa: payments, refunds, shops; the state machine of providers-reference §1.6."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from emulators._common import magic
from emulators._common.money import format_minor, parse_decimal_minor
from emulators._common.state import BaseState, EmulatorConfig
from emulators.yookassa import scenarios
from emulators.yookassa.webhooks import notify


class YKError(Exception):
    def __init__(self, status: int, code: str, description: str, parameter: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        b: dict[str, Any] = {
            "type": "error",
            "id": str(uuid.uuid4()),
            "code": self.code,
            "description": self.description,
        }
        if self.parameter:
            b["parameter"] = self.parameter
        return b


def now_iso(delta: timedelta | None = None) -> str:
    t = datetime.now(UTC) + (delta or timedelta())
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def yk_id() -> str:
    u = uuid.uuid4().hex
    return f"{u[:8]}-000f-5000-{'89ab'[random.randrange(4)]}{u[13:16]}-{u[16:28]}"


@dataclass
class PaymentRec:
    obj: dict[str, Any]
    shop_id: str
    method: str
    planned: str | None
    webhook_mode: str | None
    authorized_minor: int
    refunds: list[str] = field(default_factory=list)


class YooKassaState(BaseState):
    provider = "yookassa"

    def __init__(self, config: EmulatorConfig | None = None, *, shops: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        self.shops = shops or {"100500": "test_secret_key"}
        self.payments: dict[str, PaymentRec] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.answered_202: set[tuple[str, str]] = set()

    def reset(self) -> None:
        super().reset()
        self.payments.clear()
        self.refunds.clear()
        self.answered_202.clear()

    def objects(self) -> dict[str, Any]:
        return {"payments": {k: v.obj for k, v in self.payments.items()}, "refunds": self.refunds}

    # -- helpers -------------------------------------------------------------------------------
    def get(self, shop_id: str, payment_id: str) -> PaymentRec:
        rec = self.payments.get(payment_id)
        if rec is None or rec.shop_id != shop_id:
            raise YKError(404, "not_found", "Payment not found", "payment_id")
        return rec

    @staticmethod
    def _amount(value: Any, parameter: str) -> tuple[int, str]:
        if not isinstance(value, dict):
            raise YKError(400, "invalid_request", f"Parameter {parameter} is missing", parameter)
        minor = parse_decimal_minor(value.get("value"))
        if minor is None or minor <= 0:
            raise YKError(400, "invalid_request", "Illegal amount value", f"{parameter}.value")
        currency = str(value.get("currency", ""))
        if currency != "RUB":
            raise YKError(400, "invalid_request", "Currencies do not match", f"{parameter}.currency")
        return minor, currency

    # -- create --------------------------------------------------------------------------------
    def validate_create(self, body: dict[str, Any]) -> tuple[int, str, str]:
        amount_minor, currency = self._amount(body.get("amount"), "amount")
        description = body.get("description")
        if description is not None and len(str(description)) > 128:
            raise YKError(400, "invalid_request", "Description is too long. Max. length is 128", "description")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or len(metadata) > 16:
            raise YKError(400, "invalid_request", "Metadata object is limited to 16 keys", "metadata")
        for k, v in metadata.items():
            if len(str(k)) > 32 or (v is not None and len(str(v)) > 512):
                raise YKError(400, "invalid_request", "Metadata key or value is too long", "metadata")
        sources = [k for k in ("payment_method_data", "payment_method_id", "payment_token") if body.get(k)]
        if len(sources) > 1:
            raise YKError(
                400,
                "invalid_request",
                "Request should contain only one of: payment_method_data, payment_method_id, payment_token",
            )
        if body.get("payment_method_id") or body.get("payment_token"):
            raise YKError(403, "forbidden", "Payment method is not saved", "payment_method_id")
        pmd = body.get("payment_method_data") or {}
        method = str(pmd.get("type", "bank_card"))
        if method not in scenarios.CONFIRMATIONS:
            raise YKError(400, "invalid_request", "Unsupported payment method type", "payment_method_data.type")
        if pmd.get("card"):
            raise YKError(403, "forbidden", "Forbidden to send raw bank card data", "payment_method_data.card")
        confirmation = body.get("confirmation")
        if not isinstance(confirmation, dict):
            raise YKError(400, "invalid_request", "Parameter confirmation is missing", "confirmation")
        ctype = confirmation.get("type")
        if ctype not in scenarios.CONFIRMATIONS[method]:
            raise YKError(
                400,
                "invalid_request",
                "Confirmation type is not supported for this payment method",
                "confirmation.type",
            )
        if ctype == "redirect" and not confirmation.get("return_url"):
            raise YKError(400, "invalid_request", "Return url is missing", "confirmation.return_url")
        if method == "mobile_balance" and not str(pmd.get("phone", "")).isdigit():
            raise YKError(400, "invalid_request", "Phone format is illegal", "payment_method_data.phone")
        capture = bool(body.get("capture", False))
        if not capture and method not in scenarios.TWO_STAGE:
            raise YKError(
                400, "invalid_request", "Two-stage payments are not available for this payment method", "capture"
            )
        if body.get("receipt") is not None:
            self._validate_receipt(body["receipt"], amount_minor)
        return amount_minor, currency, method

    @staticmethod
    def _validate_receipt(receipt: Any, amount_minor: int) -> None:
        if not isinstance(receipt, dict) or not receipt.get("items"):
            raise YKError(400, "invalid_request", "Receipt items are missing", "receipt.items")
        customer = receipt.get("customer") or {}
        if not (customer.get("email") or customer.get("phone") or receipt.get("email") or receipt.get("phone")):
            raise YKError(400, "invalid_request", "Receipt customer email or phone is missing", "receipt.customer")
        line_totals = 0
        unit_totals = 0
        for i, item in enumerate(receipt["items"]):
            if not 1 <= len(str(item.get("description", ""))) <= 128:
                raise YKError(
                    400, "invalid_request", "Illegal receipt item description", f"receipt.items[{i}].description"
                )
            if item.get("vat_code") not in range(1, 13):
                raise YKError(400, "invalid_request", "Illegal vat_code", f"receipt.items[{i}].vat_code")
            minor = parse_decimal_minor((item.get("amount") or {}).get("value"))
            try:
                qty = float(item.get("quantity", 0))
            except (TypeError, ValueError):
                qty = 0
            if minor is None or qty <= 0:
                raise YKError(400, "invalid_request", "Illegal receipt item amount or quantity", f"receipt.items[{i}]")
            line_totals += minor
            unit_totals += round(minor * qty)
        # UNCONFIRMED semantics of items[].amount: accept both the unit-price and the line-total reading.
        if amount_minor not in (line_totals, unit_totals):
            raise YKError(400, "invalid_request", "Receipt sum does not match payment amount", "receipt.items")

    def create(self, shop_id: str, body: dict[str, Any], planned: str | None) -> PaymentRec:
        amount_minor, currency, method = self.validate_create(body)
        pid = yk_id()
        confirmation = dict(body["confirmation"])
        ctype = confirmation["type"]
        base = self.config.public_base_url.rstrip("/")
        if ctype in ("redirect", "mobile_application"):
            confirmation["confirmation_url"] = f"{base}/checkout/{pid}"
        elif ctype == "qr":
            confirmation["confirmation_data"] = sbp_link(pid, amount_minor)
        elif ctype == "embedded":
            confirmation["confirmation_token"] = f"ct-{pid}"
        pm: dict[str, Any] = {"type": method, "id": pid, "saved": False, "status": "inactive"}
        pmd = body.get("payment_method_data") or {}
        if pmd.get("phone"):
            pm["phone"] = pmd["phone"]
        obj: dict[str, Any] = {
            "id": pid,
            "status": "pending",
            "paid": False,
            "amount": {"value": format_minor(amount_minor), "currency": currency},
            "confirmation": confirmation,
            "created_at": now_iso(),
            "description": body.get("description"),
            "metadata": body.get("metadata") or {},
            "payment_method": pm,
            "recipient": {"account_id": shop_id, "gateway_id": "100700"},
            "refundable": False,
            "test": True,
        }
        if obj["description"] is None:
            del obj["description"]
        if body.get("receipt") is not None:
            obj["receipt_registration"] = "pending"
        obj["_capture"] = bool(body.get("capture", False))
        obj["_return_url"] = confirmation.get("return_url")
        rec = PaymentRec(
            obj=obj,
            shop_id=shop_id,
            method=method,
            planned=None if magic.is_fault(planned) or magic.is_webhook_mode(planned) else planned,
            webhook_mode=planned if magic.is_webhook_mode(planned) else None,
            authorized_minor=amount_minor,
        )
        self.payments[pid] = rec
        return rec

    # -- customer action -----------------------------------------------------------------------
    async def complete_action(self, payment_id: str, *, card_number: str | None, outcome: str | None) -> dict[str, Any]:
        rec = self.payments[payment_id]
        if rec.obj["status"] != "pending":
            raise ValueError(f"payment is {rec.obj['status']}")
        card = card_number or magic.DEFAULT_CARD
        decided = outcome or rec.planned or (magic.card_outcome(card) if rec.method == "bank_card" else "success")
        if decided.startswith("decline:"):
            self._cancel(rec, *scenarios.DECLINES[decided.split(":", 1)[1]])
        else:
            self._succeed_action(rec, card, three_ds=decided == "success_3ds")
        return public(rec.obj)

    def _succeed_action(self, rec: PaymentRec, card: str, *, three_ds: bool) -> None:
        obj = rec.obj
        obj.pop("confirmation", None)
        obj["paid"] = True
        pm = obj["payment_method"]
        if rec.method == "bank_card":
            digits = "".join(ch for ch in card if ch.isdigit())
            pm["card"] = {
                "first6": digits[:6],
                "last4": digits[-4:],
                "expiry_month": "12",
                "expiry_year": "2030",
                "card_type": magic.card_brand(digits),
                "issuer_country": "RU",
            }
            pm["title"] = f"Bank card *{digits[-4:]}"
            obj["authorization_details"] = {
                "rrn": str(random.randrange(10**11, 10**12)),
                "auth_code": f"{random.randrange(10**6):06d}",
                "three_d_secure": {"applied": three_ds},
            }
        elif rec.method == "sbp":
            pm["sbp_operation_id"] = uuid.uuid4().hex.upper()
            pm["payer_bank_details"] = {"bank_id": "100000000111", "bic": "044525225"}
        amount = parse_decimal_minor(obj["amount"]["value"]) or 0
        if obj["_capture"]:
            self._captured(rec, amount)
            self.book("charge", obj["id"], amount, obj["amount"]["currency"])
            self._notify(rec, "payment.succeeded")
        else:
            obj["status"] = "waiting_for_capture"
            obj["expires_at"] = now_iso(timedelta(seconds=scenarios.HOLD_SECONDS.get(rec.method, 6 * 3600)))
            self.book("hold", obj["id"], amount, obj["amount"]["currency"])
            self._notify(rec, "payment.waiting_for_capture")

    def _captured(self, rec: PaymentRec, amount_minor: int) -> None:
        obj = rec.obj
        obj["status"] = "succeeded"
        obj["paid"] = True
        obj["amount"] = {"value": format_minor(amount_minor), "currency": obj["amount"]["currency"]}
        fee = amount_minor * self.config.fee_basis_points // 10_000
        obj["income_amount"] = {"value": format_minor(amount_minor - fee), "currency": obj["amount"]["currency"]}
        obj["captured_at"] = now_iso()
        obj["refunded_amount"] = {"value": "0.00", "currency": obj["amount"]["currency"]}
        obj["refundable"] = True
        obj.pop("expires_at", None)
        if "receipt_registration" in obj:
            obj["receipt_registration"] = "succeeded"
        obj["payment_method"]["saved"] = False

    def _cancel(self, rec: PaymentRec, party: str, reason: str) -> None:
        obj = rec.obj
        obj["status"] = "canceled"
        obj["paid"] = False
        obj.pop("confirmation", None)
        obj.pop("expires_at", None)
        obj["cancellation_details"] = {"party": party, "reason": reason}
        if "receipt_registration" in obj:
            obj["receipt_registration"] = "canceled"
        self._notify(rec, "payment.canceled")

    def _notify(self, rec: PaymentRec, event: str) -> None:
        notify(self, event=event, obj=public(rec.obj), key=rec.obj["id"], mode=rec.webhook_mode)

    async def fire_webhook(self, payment_id: str) -> None:
        rec = self.payments[payment_id]
        event = {
            "waiting_for_capture": "payment.waiting_for_capture",
            "succeeded": "payment.succeeded",
            "canceled": "payment.canceled",
        }.get(rec.obj["status"])
        if event:
            notify(self, event=event, obj=public(rec.obj), key=payment_id, mode=None)

    async def expire(self, payment_id: str) -> dict[str, Any]:
        rec = self.payments[payment_id]
        status = rec.obj["status"]
        if status == "pending":
            self._cancel(rec, "yoo_money", "expired_on_confirmation")
        elif status == "waiting_for_capture":
            self.book("release", payment_id, rec.authorized_minor, rec.obj["amount"]["currency"])
            self._cancel(rec, "yoo_money", "expired_on_capture")
        else:
            raise ValueError(f"payment is {status}")
        return public(rec.obj)

    # -- capture / cancel ----------------------------------------------------------------------
    def capture(self, shop_id: str, payment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        rec = self.get(shop_id, payment_id)
        obj = rec.obj
        if obj["_capture"] and obj["status"] in ("pending", "succeeded"):
            raise YKError(400, "invalid_request", "You can not capture payment with autocapture", "payment_id")
        if obj["status"] != "waiting_for_capture":
            raise YKError(400, "invalid_request", "Payment can not be captured in current status.", "payment_id")
        amount = rec.authorized_minor
        if body.get("amount") is not None:
            amount, currency = self._amount(body["amount"], "amount")
            if currency != obj["amount"]["currency"]:
                raise YKError(400, "invalid_request", "Currencies do not match", "amount.currency")
            if amount > rec.authorized_minor:
                raise YKError(400, "invalid_request", "Illegal amount for capture", "amount.value")
            if amount < rec.authorized_minor and rec.method not in scenarios.PARTIAL_CAPTURE:
                raise YKError(
                    400, "invalid_request", "Partial capture is not available for this payment method", "amount"
                )
        self._captured(rec, amount)
        cur = obj["amount"]["currency"]
        self.book("capture", payment_id, amount, cur)
        if amount < rec.authorized_minor:
            self.book("release", payment_id, rec.authorized_minor - amount, cur)
        self._notify(rec, "payment.succeeded")
        return public(obj)

    def cancel(self, shop_id: str, payment_id: str) -> dict[str, Any]:
        rec = self.get(shop_id, payment_id)
        obj = rec.obj
        if obj["_capture"] and obj["status"] in ("pending", "succeeded"):
            raise YKError(400, "invalid_request", "You can not cancel payment with autocapture", "payment_id")
        if obj["status"] != "waiting_for_capture":
            raise YKError(400, "invalid_request", "Payment can not be canceled in current status", "payment_id")
        self.book("release", payment_id, rec.authorized_minor, obj["amount"]["currency"])
        self._cancel(rec, "merchant", "canceled_by_merchant")
        return public(obj)

    # -- refunds -------------------------------------------------------------------------------
    def refund(self, shop_id: str, body: dict[str, Any]) -> dict[str, Any]:
        payment_id = str(body.get("payment_id") or "")
        if not payment_id:
            raise YKError(400, "invalid_request", "Parameter payment_id is missing", "payment_id")
        rec = self.get(shop_id, payment_id)
        amount, currency = self._amount(body.get("amount"), "amount")
        obj = rec.obj
        if obj["status"] != "succeeded":
            raise YKError(400, "invalid_request", "Payment can not be refunded in current status.", "payment_id")
        if currency != obj["amount"]["currency"]:
            raise YKError(400, "invalid_request", "Currencies do not match", "amount.currency")
        paid = parse_decimal_minor(obj["amount"]["value"]) or 0
        refunded = parse_decimal_minor(obj["refunded_amount"]["value"]) or 0
        if refunded >= paid:
            raise YKError(400, "invalid_request", "Payment is already completely refunded", "payment_id")
        if refunded + amount > paid:
            raise YKError(400, "invalid_request", "Refund sum exceeded", "amount.value")
        rid = yk_id()
        refund = {
            "id": rid,
            "payment_id": payment_id,
            "status": "succeeded",
            "created_at": now_iso(),
            "amount": {"value": format_minor(amount), "currency": currency},
        }
        if body.get("description"):
            refund["description"] = body["description"]
        if body.get("metadata"):
            refund["metadata"] = body["metadata"]
        self.refunds[rid] = refund
        rec.refunds.append(rid)
        obj["refunded_amount"] = {"value": format_minor(refunded + amount), "currency": currency}
        obj["refundable"] = refunded + amount < paid
        self.book("refund", payment_id, amount, currency, rid)
        notify(self, event="refund.succeeded", obj=refund, key=rid, mode=rec.webhook_mode)
        return refund

    def get_refund(self, shop_id: str, refund_id: str) -> dict[str, Any]:
        refund = self.refunds.get(refund_id)
        if refund is None or self.payments[refund["payment_id"]].shop_id != shop_id:
            raise YKError(404, "not_found", "Refund not found", "refund_id")
        return refund


def public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def sbp_link(payment_id: str, amount_minor: int) -> str:
    qrc = uuid.uuid5(uuid.NAMESPACE_URL, payment_id).hex.upper()
    return f"https://qr.nspk.ru/{qrc}?type=02&bank=100000000111&sum={amount_minor}&cur=RUB&crc=AB75"
