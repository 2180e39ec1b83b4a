"""Refund API shapes. Amounts are ``MoneyValue`` decimal strings; ids are UUIDs."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from payment_service.kit.money import MoneyValue
from payment_service.refund.states import RefundDecision, RefundDestination, RefundStatus


def _printable(value: str) -> str:
    if not value.strip() or not value.isprintable():
        raise ValueError("must be printable, non-blank text")
    return value


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_id: uuid.UUID
    amount: MoneyValue | None = Field(None, description="Partial refund; everything left of the payment when omitted")
    destination: RefundDestination = Field(
        RefundDestination.original_method, description="original_method (via the provider) or wallet (at once)"
    )
    reason: str = Field(min_length=1, max_length=500, description="Why the refund is asked for")

    _check_reason = field_validator("reason")(_printable)


class RefundApprove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, min_length=1, max_length=500, description="Why it is approved (optional)")

    @field_validator("note")
    @classmethod
    def _check_note(cls, value: str | None) -> str | None:
        return None if value is None else _printable(value)


class RefundReject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="Why it is rejected (recorded on the refund)")

    _check_reason = field_validator("reason")(_printable)


class RefundOut(BaseModel):
    id: uuid.UUID
    payment_id: uuid.UUID
    payer_id: str
    status: RefundStatus
    amount: MoneyValue
    destination: RefundDestination
    reason: str
    decision: RefundDecision | None = None
    findings: list[str] = Field(description="Rule findings that sent it to review (outside_window, ...)")
    playtime_minutes: int | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    review_note: str | None = None
    provider: str | None = None
    error_code: str | None = None
    created_at: datetime
    updated_at: datetime
    succeeded_at: datetime | None = None


class RefundList(BaseModel):
    items: list[RefundOut]
    next_cursor: str | None = None
