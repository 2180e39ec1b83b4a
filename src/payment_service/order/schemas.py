"""Order and wallet top-up API shapes. Amounts are ``{"value": "499.00", "currency": "RUB"}``.

Prices never come from the client: an order names catalog items only.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from payment_service.kit.money import MoneyValue
from payment_service.order.states import OrderStatus, Tender, TopUpStatus
from payment_service.providers.ports import PaymentMethod

ItemId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
WALLET = "wallet"


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemId] = Field(min_length=1, max_length=50, description="Catalog item ids (games, DLC), each once")
    buyer_id: str | None = Field(
        None, min_length=1, max_length=100, description="Only for internal services buying for a user"
    )
    region: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="Only for internal services; users buy in their token's region"
    )

    @field_validator("items")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each item may be ordered once")
        return value


class OrderPay(BaseModel):
    """How to pay: ``{"method": "wallet"}``; ``{"method": "bank_card", "return_url": …}``; or a
    provider method with ``"use_wallet": true`` (split tender: the wallet pays what it can, the
    provider the rest)."""

    model_config = ConfigDict(extra="forbid")

    method: PaymentMethod | Literal["wallet"]
    use_wallet: bool = Field(False, description="Split tender: take what the wallet has first")
    return_url: HttpUrl | None = Field(None, description="Required for provider methods")
    provider: str | None = Field(None, max_length=32, description="Preferred provider; the router may fail over")
    payer_phone: str | None = Field(None, pattern=r"^7\d{10}$", description="Needed for mobile payments")

    @model_validator(mode="after")
    def _consistent(self) -> OrderPay:
        if self.method == WALLET:
            if self.use_wallet or self.provider or self.return_url:
                raise ValueError("a wallet payment takes no provider, return_url or use_wallet")
        elif self.return_url is None:
            raise ValueError("return_url is required for provider methods")
        return self


class OrderLineOut(BaseModel):
    item_id: str
    kind: str
    title: str
    base_game_id: str | None = None
    developer_id: str
    preorder: bool
    release_date: date | None = None
    list_price: MoneyValue
    discount_percent: int
    price: MoneyValue
    vat: MoneyValue


class OrderPaymentOut(BaseModel):
    """The payment of the current (or last) round, with what the customer must do next."""

    id: uuid.UUID
    status: str
    amount: MoneyValue
    method: str
    provider: str | None = None
    action: dict[str, str | None] | None = Field(None, description="Redirect URL or SBP QR payload to show")
    decline_code: str | None = None


class OrderOut(BaseModel):
    id: uuid.UUID
    status: OrderStatus
    buyer_id: str
    region: str
    total: MoneyValue
    vat: MoneyValue
    vat_percent: str
    tender: Tender | None = None
    wallet_amount: MoneyValue = Field(description="Part of the current (or last) round paid from the wallet")
    provider_amount: MoneyValue = Field(description="Part of the current (or last) round paid through a provider")
    payment_id: uuid.UUID | None = Field(None, description="Payment of the current (or last) round")
    payment: OrderPaymentOut | None = Field(None, description="That payment (single-order responses only)")
    failure_code: str | None = Field(None, description="Why the last payment round failed; the order can be paid again")
    lines: list[OrderLineOut]
    expires_at: datetime
    paid_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class OrderList(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= to get the next (older) page")


class TopUpCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: MoneyValue
    method: PaymentMethod
    return_url: HttpUrl
    provider: str | None = Field(None, max_length=32)
    payer_phone: str | None = Field(None, pattern=r"^7\d{10}$")


class TopUpOut(BaseModel):
    id: uuid.UUID
    status: TopUpStatus
    amount: MoneyValue
    method: str
    payment: OrderPaymentOut | None = None
    failure_code: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
