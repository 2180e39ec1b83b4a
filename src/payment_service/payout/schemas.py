"""Payout API shapes. Amounts are ``MoneyValue`` decimal strings; payout details go in, only their
masked form (last four digits) comes out."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from payment_service.kit.money import MoneyValue
from payment_service.models.payout import KycStatus, PayoutSchedule, PayoutSource
from payment_service.payout.states import PayoutAttemptStatus, PayoutStatus
from payment_service.providers.ports import PayoutMethod


class PayoutDetailsIn(BaseModel):
    """Where payouts go. Fields per method: bank_card — ``card_token`` (+ ``card_last4``) from the
    YooKassa payout widget; bank_account — ``account_number``, ``bic``, ``holder_name`` (+ ``inn``);
    yoomoney — ``account_number`` (the wallet); sbp — ``phone`` and ``bank_id``."""

    model_config = ConfigDict(extra="forbid")

    method: PayoutMethod
    card_token: str | None = Field(None, min_length=1, max_length=256)
    card_last4: str | None = Field(None, pattern=r"^\d{4}$")
    account_number: str | None = Field(None, pattern=r"^\d{11,33}$")
    bic: str | None = Field(None, pattern=r"^\d{9}$")
    holder_name: str | None = Field(None, min_length=1, max_length=160)
    inn: str | None = Field(None, pattern=r"^\d{10}(\d{2})?$")
    phone: str | None = Field(None, pattern=r"^7\d{10}$")
    bank_id: str | None = Field(None, min_length=1, max_length=12)


class PayeeUpdate(BaseModel):
    """Change what is given; omitted parts stay as they are."""

    model_config = ConfigDict(extra="forbid")

    details: PayoutDetailsIn | None = None
    schedule: PayoutSchedule | None = Field(None, description="manual, weekly or monthly")
    schedule_day: int | None = Field(None, ge=1, le=28, description="weekly: ISO weekday 1-7; monthly: day 1-28")
    min_payout: MoneyValue | None = Field(None, description="Scheduled payouts wait until the balance reaches this")


class PayeeOut(BaseModel):
    user_id: str
    kyc_status: KycStatus
    method: PayoutMethod | None = None
    destination: str | None = Field(None, description="Masked: last four digits at most")
    min_payout: MoneyValue
    schedule: PayoutSchedule
    schedule_day: int | None = None
    details_updated_at: datetime | None = None
    updated_at: datetime


class KycUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: KycStatus


class PayoutAttemptOut(BaseModel):
    id: uuid.UUID
    number: int
    provider: str
    status: PayoutAttemptStatus
    provider_status: str | None = None
    failure_code: str | None = None
    error_code: str | None = None
    created_at: datetime


class PayoutOut(BaseModel):
    id: uuid.UUID
    user_id: str
    source: PayoutSource
    reference: str
    status: PayoutStatus
    amount: MoneyValue
    method: PayoutMethod
    destination: str = Field(description="Masked: last four digits at most")
    provider: str
    failure_code: str | None = None
    failure_message: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    succeeded_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: list[PayoutAttemptOut]


class PayoutList(BaseModel):
    items: list[PayoutOut]
    next_cursor: str | None = None
