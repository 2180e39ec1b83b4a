"""Wallet API shapes. Amounts are ``{"value": "499.00", "currency": "RUB"}``."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from payment_service.kit.money import MoneyValue
from payment_service.ledger.schemas import HistoryLine, HistoryPage
from payment_service.models.ledger import EntryPhase
from payment_service.wallet.service import WalletState


class WalletLimits(BaseModel):
    max_balance: MoneyValue
    daily_top_up: MoneyValue
    top_up_left_today: MoneyValue


class Wallet(BaseModel):
    user_id: str
    currency: str
    balance: MoneyValue = Field(description="Settled balance")
    available: MoneyValue = Field(description="What can be spent now: balance minus pending holds")
    pending: MoneyValue = Field(description="Held for orders not yet fulfilled")
    limits: WalletLimits

    @classmethod
    def of(cls, state: WalletState) -> Wallet:
        b = state.balance
        return cls(
            user_id=state.user_id,
            currency=b.currency,
            balance=MoneyValue.of(b.posted),
            available=MoneyValue.of(b.available),
            pending=MoneyValue.of(b.pending_out),
            limits=WalletLimits(
                max_balance=MoneyValue.of(state.limits.max_balance),
                daily_top_up=MoneyValue.of(state.limits.daily_top_up),
                top_up_left_today=MoneyValue.of(state.limits.top_up_left_today),
            ),
        )


class Direction(StrEnum):
    """Whether a line adds to the wallet or takes from it."""

    credit = "credit"
    """Money in (top-up, refund, goodwill)."""
    debit = "debit"
    """Money out (a purchase)."""


class LineStatus(StrEnum):
    """State of a wallet line."""

    completed = "completed"
    """Posted: part of the balance."""
    pending = "pending"
    """Held for an order that is neither fulfilled nor cancelled yet."""


class WalletTransaction(BaseModel):
    id: str = Field(description="Stable id of the line")
    transfer_id: uuid.UUID
    direction: Direction
    amount: MoneyValue = Field(description="Always positive; see direction")
    status: LineStatus
    reason: str = Field(description="Business reason, e.g. wallet_top_up, order_payment, refund")
    reference: str = Field(description="Business object, e.g. order:<id>, refund:<id>")
    created_at: datetime

    @classmethod
    def of(cls, line: HistoryLine) -> WalletTransaction:
        return cls(
            id=f"e{line.entry_id}",
            transfer_id=line.transfer_id,
            direction=Direction.credit if line.amount.amount_minor > 0 else Direction.debit,
            amount=MoneyValue.of(abs(line.amount)),
            status=LineStatus.pending if line.phase is EntryPhase.pending else LineStatus.completed,
            reason=line.reason,
            reference=line.reference,
            created_at=line.effective_at,
        )


class WalletTransactionPage(BaseModel):
    items: list[WalletTransaction]
    next_cursor: str | None = Field(description="Pass as ?cursor= to get the next (older) page")

    @classmethod
    def of(cls, page: HistoryPage) -> WalletTransactionPage:
        return cls(items=[WalletTransaction.of(line) for line in page.lines], next_cursor=page.next_cursor)


class AdminWallet(BaseModel):
    wallet: Wallet
    recent: WalletTransactionPage


class AdjustmentCreate(BaseModel):
    amount: MoneyValue
    direction: Direction
    note: str = Field(min_length=3, max_length=500, description="Why (kept with the transfer)")
