"""What the ledger takes and returns: postings, transfers, balances, history pages.

Plain frozen dataclasses (the ledger has no HTTP endpoints of its own; modules that expose
balances render them with ``kit.money.MoneyValue``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payment_service.kit.money import Money
from payment_service.ledger.accounts import AccountSpec
from payment_service.models.ledger import EntryPhase, HoldStatus, NormalBalance, TransferKind


@dataclass(frozen=True, slots=True)
class Posting:
    """Move ``amount`` from ``debit`` to ``credit`` (one balanced pair of entries)."""

    debit: AccountSpec
    credit: AccountSpec
    amount: Money

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Money):
            raise TypeError("Posting.amount must be Money")
        if self.amount.amount_minor <= 0:
            raise ValueError("a posting moves a positive amount")
        if not (self.debit.currency == self.credit.currency == self.amount.currency):
            raise ValueError(
                f"currency mismatch: {self.debit.code}/{self.debit.currency} -> "
                f"{self.credit.code}/{self.credit.currency} of {self.amount.currency}"
            )
        if self.debit.id == self.credit.id:
            raise ValueError(f"a posting needs two different accounts, got {self.debit.code} twice")


@dataclass(frozen=True, slots=True)
class Leg:
    """One entry of a transfer: signed amount on an account (credit positive)."""

    account_id: uuid.UUID
    code: str | None
    amount: Money
    phase: EntryPhase


@dataclass(frozen=True, slots=True)
class Transfer:
    """A stored transfer. ``replayed`` is true when the idempotency key had been used already."""

    id: uuid.UUID
    kind: TransferKind
    idempotency_key: str
    reference: str
    reason: str
    effective_at: datetime
    legs: tuple[Leg, ...]
    pending_id: uuid.UUID | None = None
    reverses_id: uuid.UUID | None = None
    metadata: dict[str, Any] | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Balance:
    """Balances of one account, in its normal orientation (a wallet with money shows positive).

    * ``posted`` — settled balance;
    * ``pending_out`` — held amounts that will lower it when posted (debits of a credit-normal
      account);
    * ``pending_in`` — held amounts that will raise it;
    * ``available`` — ``posted - pending_out``: what can still be spent or held.
    """

    account_id: uuid.UUID
    code: str
    currency: str
    normal_balance: NormalBalance
    posted: Money
    pending_out: Money
    pending_in: Money
    available: Money
    raw_posted: int
    """Credits − debits in minor units (the per-currency sum over all accounts is zero)."""
    version: int


@dataclass(frozen=True, slots=True)
class Hold:
    """State of a hold."""

    id: uuid.UUID
    status: HoldStatus
    expires_at: datetime | None
    resolved_by: uuid.UUID | None
    reference: str
    legs: tuple[Leg, ...]


@dataclass(frozen=True, slots=True)
class HistoryLine:
    """One entry of an account's history with the business reason of its transfer."""

    entry_id: int
    transfer_id: uuid.UUID
    kind: TransferKind
    phase: EntryPhase
    amount: Money
    """Signed in the account's normal orientation (+ raises the balance)."""
    reason: str
    reference: str
    metadata: dict[str, Any] | None
    effective_at: datetime
    hold_status: HoldStatus | None
    """For ``pending`` lines: the hold's current status."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    lines: tuple[HistoryLine, ...]
    next_cursor: str | None
