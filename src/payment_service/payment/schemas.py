"""Payment API shapes. Amounts are ``MoneyValue`` decimal strings; ids are UUIDs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from payment_service.kit.money import MoneyValue
from payment_service.payment.states import AttemptStatus, PaymentStatus
from payment_service.providers.ports import PaymentMethod

MetadataKey = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")]


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: MoneyValue
    method: PaymentMethod
    description: str = Field(min_length=1, max_length=128)
    return_url: HttpUrl = Field(description="Where the provider sends the customer after a redirect or 3-DS")
    order_reference: str | None = Field(
        None, min_length=1, max_length=128, description="The platform's order id; one payment per order reference"
    )
    capture: bool = Field(True, description="false: authorize only (two-stage); capture or cancel later")
    provider: str | None = Field(None, max_length=32, description="Preferred provider; the router may fail over")
    payer_id: str | None = Field(
        None, min_length=1, max_length=100, description="Only for internal services acting for a user"
    )
    payer_phone: str | None = Field(None, pattern=r"^7\d{10}$", description="Needed for mobile payments (E.164 w/o +)")
    metadata: dict[MetadataKey, Annotated[str, Field(max_length=500)]] = Field(default_factory=dict, max_length=16)

    @field_validator("description")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("description must be printable text")
        return value


class PaymentCapture(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: MoneyValue | None = Field(None, description="Partial capture; the whole authorized amount when omitted")


class PaymentCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=200)


class CustomerActionOut(BaseModel):
    type: str
    url: str | None = None
    qr_payload: str | None = None


class CardOut(BaseModel):
    scheme: str
    last4: str


class AttemptOut(BaseModel):
    id: uuid.UUID
    number: int
    provider: str
    status: AttemptStatus
    decline_code: str | None = None
    error_code: str | None = None
    failover: bool
    created_at: datetime


class PaymentOut(BaseModel):
    id: uuid.UUID
    status: PaymentStatus
    amount: MoneyValue
    captured_amount: MoneyValue
    refunded_amount: MoneyValue
    method: PaymentMethod
    capture_mode: str
    purpose: str
    description: str
    order_reference: str | None = None
    metadata: dict[str, str]
    payer_id: str
    provider: str | None = None
    action: CustomerActionOut | None = None
    decline_code: str | None = None
    failure_message: str | None = None
    card: CardOut | None = None
    expires_at: datetime
    capture_before: datetime | None = None
    created_at: datetime
    updated_at: datetime
    attempts: list[AttemptOut]


class PaymentList(BaseModel):
    items: list[PaymentOut]
    next_cursor: str | None = None
