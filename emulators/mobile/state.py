"""In-memory aggregator: charges confirmed by the subscriber's SMS reply (the customer action)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulators._common.state import BaseState, EmulatorConfig
from emulators.mobile import scenarios
from emulators.mobile.webhooks import notify


class MCError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass
class Charge:
    id: str
    merchant: str
    merchant_charge_id: str
    phone: str
    operator: str | None
    amount: int
    currency: str
    capture: bool
    description: str
    callback_url: str | None
    status: str = "pending_confirmation"
    captured_amount: int = 0
    refunded_amount: int = 0
    fee: int | None = None
    failure_code: str | None = None
    planned: str | None = None
    webhook_mode: str | None = None
    created_at: int = field(default_factory=lambda: int(time.time()))

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "merchant_charge_id": self.merchant_charge_id,
            "status": self.status,
            "operator": self.operator,
            "phone_masked": f"{self.phone[:4]}*****{self.phone[-2:]}",
            "amount": self.amount,
            "currency": self.currency,
            "capture": self.capture,
            "captured_amount": self.captured_amount,
            "refunded_amount": self.refunded_amount,
            "fee": self.fee,
            "failure_code": self.failure_code,
            "description": self.description,
            "created_at": self.created_at,
        }
        if self.status == "pending_confirmation":
            out["confirmation"] = {"type": "sms", "expires_at": self.created_at + 3600}
        return out


class MobileState(BaseState):
    provider = "mobile"

    def __init__(
        self, config: EmulatorConfig | None = None, *, merchants: dict[str, tuple[str, str]] | None = None, **kw: Any
    ):
        super().__init__(config, **kw)
        # api key → (merchant id, webhook secret)
        self.merchants = merchants or {"test_api_key": ("merchant-1", "test_webhook_secret")}
        self.charges: dict[str, Charge] = {}
        self.refunds: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        super().reset()
        self.charges.clear()
        self.refunds.clear()

    def objects(self) -> dict[str, Any]:
        return {"charges": {k: v.public() for k, v in self.charges.items()}, "refunds": self.refunds}

    def secret_of(self, merchant: str) -> str:
        return next(s for m, s in self.merchants.values() if m == merchant)

    def get(self, merchant: str, charge_id: str) -> Charge:
        c = self.charges.get(charge_id)
        if c is None or c.merchant != merchant:
            raise MCError(404, "not_found", "charge not found")
        return c

    def _notify(self, c: Charge, event: str, data: dict[str, Any] | None = None) -> None:
        notify(
            self,
            url=c.callback_url,
            event=event,
            data=data or c.public(),
            secret=self.secret_of(c.merchant),
            key=c.id,
            mode=c.webhook_mode,
        )

    def fail(self, c: Charge, code: str) -> None:
        c.status = "failed"
        c.failure_code = code
        self._notify(c, "charge.failed")

    async def complete_action(self, payment_id: str, *, card_number: str | None, outcome: str | None) -> dict[str, Any]:
        c = self.charges[payment_id]
        if c.status != "pending_confirmation":
            raise ValueError(f"charge is {c.status}")
        decided = outcome or c.planned or "success"
        if decided.startswith("decline:"):
            self.fail(c, scenarios.DECLINES[decided.split(":", 1)[1]])
            return c.public()
        if c.capture:
            c.status = "succeeded"
            c.captured_amount = c.amount
            c.fee = c.amount * self.config.fee_basis_points // 10_000
            self.book("charge", c.id, c.amount, c.currency, c.merchant_charge_id)
            self._notify(c, "charge.succeeded")
        else:
            c.status = "authorized"
            self.book("hold", c.id, c.amount, c.currency, c.merchant_charge_id)
            self._notify(c, "charge.authorized")
        return c.public()

    async def fire_webhook(self, payment_id: str) -> None:
        c = self.charges[payment_id]
        saved, c.webhook_mode = c.webhook_mode, None
        if c.status != "pending_confirmation":
            self._notify(c, f"charge.{c.status}")
        c.webhook_mode = saved

    async def expire(self, payment_id: str) -> dict[str, Any]:
        c = self.charges[payment_id]
        if c.status == "pending_confirmation":
            self.fail(c, "subscriber_timeout")
        elif c.status == "authorized":
            self.book("release", c.id, c.amount, c.currency, c.merchant_charge_id)
            c.status = "canceled"
            self._notify(c, "charge.canceled")
        else:
            raise ValueError(f"charge is {c.status}")
        return c.public()

    def capture(self, c: Charge, amount: int | None) -> None:
        if c.status != "authorized":
            raise MCError(409, "invalid_state", f"charge is {c.status}")
        if amount is not None and amount != c.amount:
            raise MCError(400, "invalid_request", "mobile balance holds are captured in full only")
        c.status = "succeeded"
        c.captured_amount = c.amount
        c.fee = c.amount * self.config.fee_basis_points // 10_000
        self.book("capture", c.id, c.amount, c.currency, c.merchant_charge_id)
        self._notify(c, "charge.succeeded")

    def cancel(self, c: Charge) -> None:
        if c.status != "authorized":
            raise MCError(409, "invalid_state", f"charge is {c.status}")
        c.status = "canceled"
        self.book("release", c.id, c.amount, c.currency, c.merchant_charge_id)
        self._notify(c, "charge.canceled")

    def refund(self, c: Charge, amount: int, merchant_refund_id: str) -> dict[str, Any]:
        if c.status != "succeeded":
            raise MCError(409, "invalid_state", f"charge is {c.status}")
        if amount <= 0 or c.refunded_amount + amount > c.captured_amount:
            raise MCError(400, "invalid_request", "refund exceeds the charged amount")
        c.refunded_amount += amount
        rid = f"rf_{uuid.uuid4().hex[:20]}"
        refund = {
            "id": rid,
            "charge_id": c.id,
            "merchant_refund_id": merchant_refund_id,
            "status": "succeeded",
            "amount": amount,
            "currency": c.currency,
        }
        self.refunds[rid] = refund
        self.book("refund", c.id, amount, c.currency, rid)
        self._notify(c, "refund.succeeded", refund)
        return refund
