"""Donation API shapes, the alert frame of the overlay WebSocket, and the Kafka request payload."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from payment_service.kit.money import MoneyValue
from payment_service.models.donation import DonationSource, DonationStatus
from payment_service.payment.schemas import CustomerActionOut
from payment_service.payment.states import PaymentStatus
from payment_service.providers.ports import PaymentMethod

StreamerId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$", description="Platform user id")
]

WALLET = "wallet"


class DonationCreate(BaseModel):
    """A viewer's donation: paid through a provider (``method``) or from the viewer's wallet."""

    model_config = ConfigDict(extra="forbid")

    streamer_id: StreamerId
    amount: MoneyValue
    method: PaymentMethod | Literal["wallet"] = Field(description="A payment method, or 'wallet'")
    message: str | None = Field(None, max_length=2000, description="Moderated before it is shown on stream")
    display_name: str | None = Field(None, max_length=200, description="Shown on stream; 'Аноним' when empty")
    return_url: HttpUrl | None = Field(None, description="Where the provider sends the donor back (not for wallet)")
    provider: str | None = Field(None, max_length=32, description="Preferred provider; the router may fail over")
    payer_phone: str | None = Field(None, pattern=r"^7\d{10}$", description="For mobile payments (E.164 w/o +)")
    donor_id: str | None = Field(
        None, min_length=1, max_length=100, description="Only for internal services acting for a viewer"
    )

    @model_validator(mode="after")
    def _return_url_for_payments(self) -> DonationCreate:
        if self.method != WALLET and self.return_url is None:
            raise ValueError("return_url is required unless the donation is paid from the wallet")
        return self


class DonationPaymentOut(BaseModel):
    id: uuid.UUID
    status: PaymentStatus
    action: CustomerActionOut | None = Field(None, description="3-DS page, redirect or SBP QR code, if any")


class DonationOut(BaseModel):
    id: uuid.UUID
    status: DonationStatus
    streamer_id: str
    donor_id: str
    source: DonationSource
    method: str
    amount: MoneyValue
    fee: MoneyValue = Field(description="The platform's fee")
    streamer_amount: MoneyValue = Field(description="What the streamer's balance receives")
    display_name: str
    message: str | None = None
    alert_id: int | None = Field(None, description="Position in the streamer's alert log once processed")
    failure_code: str | None = None
    payment: DonationPaymentOut | None = None
    created_at: datetime
    processed_at: datetime | None = None


class OverlayTokenOut(BaseModel):
    """The token itself is only in the ``Overlay-Token`` header of the first response: it is not
    stored anywhere in clear (a replay under the same Idempotency-Key does not show it)."""

    streamer_id: str
    token_hint: str = Field(description="The token's first characters, to tell tokens apart")
    rotated_at: datetime
    websocket_path: str = "/v1/ws/donations"


class AlertFrame(BaseModel):
    """One alert on the overlay WebSocket (``type = alert``); ``id`` is the resume position."""

    type: Literal["alert"] = "alert"
    id: int = Field(description="Position in the streamer's alert log (1, 2, 3 … without gaps)")
    donation_id: uuid.UUID
    streamer_id: str
    display_name: str
    message: str | None = None
    amount: MoneyValue
    created_at: datetime


class DonationRequest(BaseModel):
    """``data`` of a ``streaming.donation_requested`` event: pay a streamer from the viewer's wallet."""

    model_config = ConfigDict(extra="ignore")

    viewer_id: str = Field(min_length=1, max_length=100)
    streamer_id: StreamerId
    amount_minor: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    message: str | None = Field(None, max_length=2000)
    display_name: str | None = Field(None, max_length=200)
