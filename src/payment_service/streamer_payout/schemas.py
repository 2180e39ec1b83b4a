"""Streamer payout API shapes (amounts as ``MoneyValue`` decimal strings)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from payment_service.kit.money import MoneyValue
from payment_service.payout.schemas import PayeeOut, PayoutOut


class StreamerBalanceOut(BaseModel):
    balance: MoneyValue = Field(description="Donations minus clawbacks minus paid-out payouts")
    in_payout: MoneyValue = Field(description="Held by payouts in progress")
    available: MoneyValue
    on_hold: MoneyValue = Field(description="Donations younger than the holding period (chargeback risk)")
    payable: MoneyValue = Field(description="What the next scheduled payout would take now")
    holding_days: int


class StreamerPayoutsOut(BaseModel):
    balance: StreamerBalanceOut
    payee: PayeeOut | None = Field(None, description="Payout method, schedule and KYC status; null until set up")
    items: list[PayoutOut]
    next_cursor: str | None = None


class StatementLineOut(BaseModel):
    at: datetime
    kind: str = Field(description="donation, donation_refund, donation_chargeback, payout or adjustment")
    reference: str
    gross: MoneyValue
    fee: MoneyValue
    net: MoneyValue = Field(description="Change of the balance")
    status: str = Field(description="posted, or pending (a payout in progress)")


class StatementOut(BaseModel):
    streamer_id: str
    start: datetime
    end: datetime
    opening_balance: MoneyValue
    closing_balance: MoneyValue
    donations_gross: MoneyValue
    fees: MoneyValue
    donations_net: MoneyValue
    clawbacks: MoneyValue
    payouts: MoneyValue
    lines: list[StatementLineOut]
