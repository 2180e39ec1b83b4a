"""YooKassa v3 wire models (providers-reference §1). They never leave this folder."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class YKAmount(_Wire):
    value: str
    currency: str


class YKCard(_Wire):
    first6: str | None = None
    last4: str
    expiry_month: str | None = None
    expiry_year: str | None = None
    card_type: str | None = None
    issuer_country: str | None = None


class YKPaymentMethod(_Wire):
    type: str
    id: str | None = None
    saved: bool | None = None
    card: YKCard | None = None
    phone: str | None = None


class YKConfirmation(_Wire):
    type: str
    confirmation_url: str | None = None
    confirmation_data: str | None = None
    return_url: str | None = None


class YKCancellation(_Wire):
    party: str
    reason: str


class YKPayment(_Wire):
    id: str
    status: str  # pending | waiting_for_capture | succeeded | canceled
    paid: bool = False
    amount: YKAmount
    income_amount: YKAmount | None = None
    refunded_amount: YKAmount | None = None
    confirmation: YKConfirmation | None = None
    payment_method: YKPaymentMethod | None = None
    cancellation_details: YKCancellation | None = None
    metadata: dict[str, Any] | None = None
    captured_at: str | None = None
    expires_at: str | None = None
    created_at: str | None = None
    test: bool | None = None


class YKRefund(_Wire):
    id: str
    payment_id: str
    status: str  # pending | succeeded | canceled
    amount: YKAmount
    cancellation_details: YKCancellation | None = None
    created_at: str | None = None


class YKError(_Wire):
    type: str = "error"
    id: str | None = None
    code: str = "error"
    description: str = ""
    parameter: str | None = None
    retry_after: int | None = None


class YKNotification(_Wire):
    type: str
    event: str
    object: dict[str, Any]
