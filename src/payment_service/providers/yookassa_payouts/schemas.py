"""YooKassa Payouts wire models (providers-reference §1.15). They never leave this folder."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class YPAmount(_Wire):
    value: str
    currency: str


class YPCard(_Wire):
    first6: str | None = None
    last4: str | None = None
    card_type: str | None = None
    issuer_country: str | None = None
    issuer_name: str | None = None


class YPDestination(_Wire):
    type: str  # bank_card | yoo_money | sbp
    card: YPCard | None = None
    account_number: str | None = None
    phone: str | None = None
    bank_id: str | None = None
    sbp_operation_id: str | None = None
    recipient_checked: bool | None = None


class YPCancellation(_Wire):
    party: str
    reason: str


class YPPayout(_Wire):
    id: str
    status: str  # pending | succeeded | canceled
    amount: YPAmount
    payout_destination: YPDestination | None = None
    description: str | None = None
    created_at: str | None = None
    succeeded_at: str | None = None
    cancellation_details: YPCancellation | None = None
    metadata: dict[str, Any] | None = None
    test: bool | None = None


class YPError(_Wire):
    type: str = "error"
    id: str | None = None
    code: str = "error"
    description: str = ""
    parameter: str | None = None
    retry_after: int | None = None


class YPNotification(_Wire):
    type: str
    event: str
    object: dict[str, Any]
