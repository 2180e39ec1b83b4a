"""In-memory T-Bank acquiring: payments by PaymentId, terminals, the status machine of §2.4."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from emulators._common import magic
from emulators._common.state import BaseState, EmulatorConfig
from emulators.tbank import scenarios
from emulators.tbank.webhooks import notify


class TBError(Exception):
    def __init__(self, code: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


@dataclass
class TBPayment:
    payment_id: str
    terminal: str
    order_id: str
    amount: int
    pay_type: str
    status: str = "NEW"
    planned: str | None = None
    webhook_mode: str | None = None
    notification_url: str | None = None
    success_url: str | None = None
    description: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    authorized: int = 0
    confirmed: int = 0
    refunded: int = 0
    error_code: str = "0"
    message: str = ""
    card_id: int | None = None
    pan: str | None = None
    exp_date: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class TBankState(BaseState):
    provider = "tbank"

    def __init__(self, config: EmulatorConfig | None = None, *, terminals: dict[str, str] | None = None, **kw: Any):
        super().__init__(config, **kw)
        self.terminals = terminals or {"TestTerminalDEMO": "test_password"}
        self.payments: dict[str, TBPayment] = {}
        self.cancel_requests: dict[tuple[str, str], dict[str, Any]] = {}
        self._next_id = 3_093_639_000

    def reset(self) -> None:
        super().reset()
        self.payments.clear()
        self.cancel_requests.clear()

    def objects(self) -> dict[str, Any]:
        return {"payments": {k: v.as_json() for k, v in self.payments.items()}}

    def new_id(self) -> str:
        self._next_id += random.randrange(1, 50)
        return str(self._next_id)

    def get(self, terminal: str, payment_id: Any) -> TBPayment:
        p = self.payments.get(str(payment_id))
        if p is None or p.terminal != terminal:
            raise TBError("255", "Платеж не найден")
        return p

    # -- customer action -----------------------------------------------------------------------
    async def complete_action(self, payment_id: str, *, card_number: str | None, outcome: str | None) -> dict[str, Any]:
        p = self.payments[payment_id]
        if p.status not in ("NEW", "FORM_SHOWED"):
            raise ValueError(f"payment is {p.status}")
        card = "".join(ch for ch in (card_number or magic.DEFAULT_CARD) if ch.isdigit())
        is_sbp = p.data.get("QR") == "true"
        decided = outcome or p.planned or ("success" if is_sbp else magic.card_outcome(card))
        if not is_sbp:
            p.card_id = random.randrange(100_000, 999_999)
            p.pan = f"{card[:6]}******{card[-4:]}"
            p.exp_date = "1230"
        if decided.startswith("decline:"):
            status, code, message = scenarios.DECLINES[decided.split(":", 1)[1]]
            p.status, p.error_code, p.message = status, code, message
            self._notify(p, success=False)
            return p.as_json()
        p.authorized = p.amount
        p.status = "AUTHORIZED"
        if p.pay_type == "T":
            self.book("hold", p.payment_id, p.amount, "RUB", p.order_id)
            self._notify(p)
        else:
            self._notify(p)
            p.status = "CONFIRMED"
            p.confirmed = p.amount
            self.book("charge", p.payment_id, p.amount, "RUB", p.order_id)
            self._notify(p)
        return p.as_json()

    def _notify(self, p: TBPayment, *, success: bool = True, amount: int | None = None) -> None:
        payload: dict[str, Any] = {
            "TerminalKey": p.terminal,
            "OrderId": p.order_id,
            "Success": success,
            "Status": p.status,
            "PaymentId": int(p.payment_id),  # a number in notifications, a string in responses (§2.7)
            "ErrorCode": p.error_code if not success else "0",
            "Amount": p.amount if amount is None else amount,
        }
        if p.card_id is not None:
            payload.update({"CardId": p.card_id, "Pan": p.pan, "ExpDate": p.exp_date})
        if p.data:
            payload["Data"] = dict(p.data)
        notify(
            self,
            url=p.notification_url,
            payload=payload,
            password=self.terminals[p.terminal],
            key=p.payment_id,
            mode=p.webhook_mode,
        )

    async def fire_webhook(self, payment_id: str) -> None:
        p = self.payments[payment_id]
        saved, p.webhook_mode = p.webhook_mode, None
        self._notify(p, success=p.status not in ("REJECTED", "AUTH_FAIL", "DEADLINE_EXPIRED"))
        p.webhook_mode = saved

    async def expire(self, payment_id: str) -> dict[str, Any]:
        p = self.payments[payment_id]
        if p.status in ("NEW", "FORM_SHOWED"):
            p.status, p.error_code, p.message = scenarios.DECLINES["expired"]
            self._notify(p, success=False)
        elif p.status == "AUTHORIZED":
            self.book("release", p.payment_id, p.authorized, "RUB", p.order_id)
            p.status = "REVERSED"
            self._notify(p)
        else:
            raise ValueError(f"payment is {p.status}")
        return p.as_json()

    # -- API operations --------------------------------------------------------------------------
    def confirm(self, p: TBPayment, amount: int | None) -> None:
        if p.status != "AUTHORIZED":
            raise TBError("8", "Неверный статус транзакции")
        amount = p.authorized if amount is None else amount
        if amount <= 0 or amount > p.authorized:
            raise TBError("1", "Сумма подтверждения превышает сумму авторизации")
        p.confirmed = amount
        if amount < p.authorized:
            self.book("release", p.payment_id, p.authorized - amount, "RUB", p.order_id)
        p.amount = amount
        p.status = "CONFIRMED"
        self.book("capture", p.payment_id, amount, "RUB", p.order_id)
        self._notify(p)

    def cancel(self, p: TBPayment, amount: int | None) -> int:
        original = p.amount
        if p.status in ("NEW", "FORM_SHOWED"):
            p.status = "CANCELED"
            self._notify(p, success=True)
            return original
        if p.status in ("AUTHORIZED", "PARTIAL_REVERSED"):
            amount = p.amount if amount is None else amount
            if amount <= 0 or amount > p.amount:
                raise TBError("1", "Неверная сумма")
            self.book("release", p.payment_id, amount, "RUB", p.order_id)
            p.amount -= amount
            p.status = "REVERSED" if p.amount == 0 else "PARTIAL_REVERSED"
            self._notify(p, amount=original)
            return original
        if p.status in ("CONFIRMED", "PARTIAL_REFUNDED"):
            left = p.confirmed - p.refunded
            amount = left if amount is None else amount
            if amount <= 0 or amount > left:
                raise TBError("1", "Сумма возврата превышает сумму платежа")
            p.refunded += amount
            self.book("refund", p.payment_id, amount, "RUB", p.order_id)
            p.status = "REFUNDED" if p.refunded == p.confirmed else "PARTIAL_REFUNDED"
            self._notify(p, amount=original)
            return original
        raise TBError("8", "Неверный статус транзакции")
