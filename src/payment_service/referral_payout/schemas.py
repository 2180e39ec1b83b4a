"""Referral payout shapes: the REST request/answer and the Kafka request's ``data``."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from payment_service.kit.money import MoneyValue
from payment_service.models.payout import ReferralPayoutMethod, ReferralPayoutStatus
from payment_service.payout.states import PayoutStatus

_ID = r"^[A-Za-z0-9_.:\-]+$"


class ReferralPayoutCreate(BaseModel):
    """``POST /v1/referral-payouts``: idempotent by ``request_id`` (the same id with the same content
    returns the same payout; with other content it is 409 ``referral_request_conflict``)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128, pattern=_ID)
    user_id: str = Field(min_length=1, max_length=64, pattern=_ID)
    amount: MoneyValue
    reason: str = Field(min_length=1, max_length=200)
    referral_id: str = Field(min_length=1, max_length=128)
    method: ReferralPayoutMethod


class ReferralPayoutRequested(BaseModel):
    """``data`` of a ``social.referral_payout_requested`` CloudEvent (topic
    ``social.referral_payout_requests``); ``request_id`` defaults to the CloudEvents id."""

    model_config = ConfigDict(extra="ignore")

    request_id: str | None = Field(None, min_length=1, max_length=128, pattern=_ID)
    user_id: str = Field(min_length=1, max_length=64, pattern=_ID)
    amount_minor: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    reason: str = Field(min_length=1, max_length=200)
    referral_id: str = Field(min_length=1, max_length=128)
    method: ReferralPayoutMethod


class ReferralPayoutOut(BaseModel):
    request_id: str
    status: ReferralPayoutStatus
    user_id: str
    amount: MoneyValue
    reason: str
    referral_id: str
    method: ReferralPayoutMethod
    failure_code: str | None = Field(None, description="The reason_code of the failed answer")
    payout_id: uuid.UUID | None = None
    payout_status: PayoutStatus | None = None
    created_at: datetime
    answered_at: datetime | None = Field(None, description="When the answer event was written")
