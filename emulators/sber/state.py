"""In-memory Sber/RBS gateway: orders with orderStatus 0..6 (providers-reference §3.2–3.3)."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulators._common import magic
from emulators._common.state import BaseState, EmulatorConfig
from emulators.sber import scenarios
from emulators.sber.webhooks import notify


class SberError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Order:
    order_id: str
    order_number: str
    merchant: str
    amount: int
    currency: str
    two_stage: bool
    return_url: str
    description: str = ""
    callback_url: str | None = None
    status: int = 0
    action_code: int = -100
    action_text: str = ""
    approved: int = 0
    deposited: int = 0
    refunded: int = 0
    planned: str | None = None
    webhook_mode: str | None = None
    masked_pan: str | None = None
    expiration: str | None = None
    payment_system: str | None = None
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def payment_state(self) -> str:
        return {0: "CREATED", 1: "APPROVED", 2: "DEPOSITED", 3: "REVERSED", 4: "REFUNDED", 5: "CREATED", 6: "DECLINED"}[
            self.status
        ]

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SberState(BaseState):
    provider = "sber"

    def __init__(
        self, config: EmulatorConfig | None = None, *, merchants: dict[str, tuple[str, str]] | None = None, **kw: Any
    ) -> None:
        super().__init__(config, **kw)
        # userName → (password, callback secret)
        self.merchants = merchants or {"store-api": ("store-password", "test-callback-secret")}
        self.orders: dict[str, Order] = {}

    def reset(self) -> None:
        super().reset()
        self.orders.clear()

    def objects(self) -> dict[str, Any]:
        return {"orders": {k: v.as_json() for k, v in self.orders.items()}}

    def find(self, merchant: str, params: dict[str, str]) -> Order:
        if params.get("orderId"):
            o = self.orders.get(params["orderId"])
        elif params.get("orderNumber"):
            o = next(
                (x for x in self.orders.values() if x.order_number == params["orderNumber"] and x.merchant == merchant),
                None,
            )
        else:
            raise SberError("4", "Номер заказа не указан")
        if o is None or o.merchant != merchant:
            raise SberError("6", "Заказ не найден")
        return o

    def new_order(self, merchant: str, params: dict[str, str], *, two_stage: bool, planned: str | None) -> Order:
        o = Order(
            order_id=str(uuid.uuid4()),
            order_number=params["orderNumber"],
            merchant=merchant,
            amount=int(params["amount"]),
            currency=params.get("currency", "643"),
            two_stage=two_stage,
            return_url=params["returnUrl"],
            description=params.get("description", ""),
            callback_url=params.get("dynamicCallbackUrl") or None,
            planned=planned if planned and planned.startswith(("decline:", "success")) else None,
            webhook_mode=planned if magic.is_webhook_mode(planned) else None,
        )
        self.orders[o.order_id] = o
        return o

    # -- customer action -----------------------------------------------------------------------
    async def complete_action(self, payment_id: str, *, card_number: str | None, outcome: str | None) -> dict[str, Any]:
        o = self.orders[payment_id]
        if o.status not in (0, 5):
            raise ValueError(f"order status is {o.status}")
        card = "".join(ch for ch in (card_number or "4111111111111111") if ch.isdigit())
        decided = outcome or o.planned or magic.card_outcome(card)
        o.masked_pan = f"{card[:6]}**{card[-4:]}"
        o.expiration = "203012"
        o.payment_system = {"Mir": "MIR", "MasterCard": "MASTERCARD", "Visa": "VISA"}.get(
            magic.card_brand(card), "UNKNOWN"
        )
        if decided.startswith("decline:"):
            o.action_code, o.action_text = scenarios.DECLINES[decided.split(":", 1)[1]]
            o.status = 6
            self._notify(o, "approved" if o.two_stage else "deposited", success=False)
            return o.as_json()
        o.action_code, o.action_text = 0, "Платёж успешно обработан"
        o.approved = o.amount
        if o.two_stage:
            o.status = 1
            self.book("hold", o.order_id, o.amount, "RUB", o.order_number)
            self._notify(o, "approved")
        else:
            o.status = 2
            o.deposited = o.amount
            self.book("charge", o.order_id, o.amount, "RUB", o.order_number)
            self._notify(o, "deposited")
        return o.as_json()

    def _notify(self, o: Order, operation: str, *, success: bool = True, amount: int | None = None) -> None:
        secret = self.merchants[o.merchant][1]
        params = {
            "mdOrder": o.order_id,
            "orderNumber": o.order_number,
            "operation": operation,
            "status": "1" if success else "0",
            "amount": str(o.amount if amount is None else amount),
        }
        notify(self, url=o.callback_url, params=params, secret=secret, key=o.order_id, mode=o.webhook_mode)

    async def fire_webhook(self, payment_id: str) -> None:
        o = self.orders[payment_id]
        op = {1: "approved", 2: "deposited", 3: "reversed", 4: "refunded", 6: "declinedByTimeout"}.get(o.status)
        if op:
            saved, o.webhook_mode = o.webhook_mode, None
            self._notify(o, op, success=o.status != 6 or op == "declinedByTimeout")
            o.webhook_mode = saved

    async def expire(self, payment_id: str) -> dict[str, Any]:
        o = self.orders[payment_id]
        if o.status in (0, 5):
            o.status = 6
            o.action_code, o.action_text = scenarios.DECLINES["expired"]
            self._notify(o, "declinedByTimeout")
        elif o.status == 1:
            self.book("release", o.order_id, o.approved, "RUB", o.order_number)
            o.status = 3
            self._notify(o, "reversed")
        else:
            raise ValueError(f"order status is {o.status}")
        return o.as_json()

    # -- operations ----------------------------------------------------------------------------
    def deposit(self, o: Order, amount: int) -> None:
        if o.status != 1:
            raise SberError("7", "Неверное состояние заказа для завершения")
        amount = o.approved if amount == 0 else amount
        if amount <= 0 or amount > o.approved:
            raise SberError("5", "Неверная сумма")
        if amount < o.approved:
            self.book("release", o.order_id, o.approved - amount, "RUB", o.order_number)
        o.deposited = amount
        o.status = 2
        self.book("capture", o.order_id, amount, "RUB", o.order_number)
        self._notify(o, "deposited", amount=amount)

    def reverse(self, o: Order) -> None:
        if o.status != 1:
            raise SberError("7", "Операция невозможна для текущего состояния платежа")
        o.status = 3
        self.book("release", o.order_id, o.approved, "RUB", o.order_number)
        self._notify(o, "reversed")

    def refund(self, o: Order, amount: int) -> None:
        if o.status not in (2, 4):
            raise SberError("7", "Операция невозможна для текущего состояния платежа")
        if amount <= 0 or o.refunded + amount > o.deposited:
            raise SberError("7", "Сумма возврата превышает сумму списания")
        o.refunded += amount
        o.status = 4  # UNCONFIRMED whether a partial refund keeps 2
        self.book("refund", o.order_id, amount, "RUB", o.order_number)
        self._notify(o, "refunded", amount=amount)

    def decline(self, o: Order) -> None:
        if o.status not in (0, 5):
            raise SberError("7", "Операция невозможна для текущего состояния платежа")
        o.status = 6
        o.action_code, o.action_text = -2007, "Заказ отменён"


def rrn() -> str:
    return str(random.randrange(10**11, 10**12))
