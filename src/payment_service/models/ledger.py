"""Double-entry ledger tables. Only ``payment_service.ledger`` writes them.

* ``ledger_accounts`` — one row per (code, currency) with cached balances: ``posted`` is
  credits − debits of posted entries (so the per-currency sum over all accounts is zero);
  ``pending_debits``/``pending_credits`` are the outstanding holds. The id is derived from the
  code and currency (uuid5), so callers never look it up.
* ``ledger_transfers`` — immutable, one per posting, unique ``idempotency_key``.
* ``ledger_entries`` — append-only legs of transfers (signed, credit positive).
* ``ledger_holds`` — the state of each pending transfer (hold): pending → posted/voided/expired.
* ``ledger_account_deltas`` — balance changes of *hot* accounts appended without locking the
  account row; folded into the row by ``ledger.tasks.fold_deltas``. Balance = row + deltas.

The posting logic is in PL/pgSQL functions created by the migration ``0002_ledger``
(``ledger_post``, ``ledger_resolve_hold``, ``ledger_reverse``): one round trip per posting.
Entries and deltas carry no foreign keys on purpose: a FK check takes a KEY SHARE lock on the
referenced account row, which is exactly the hot-row contention the design avoids; the
functions only write ids they have just verified.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from payment_service.models.base import Base


class AccountType(StrEnum):
    """Accounting class of an account."""

    asset = "asset"
    """What the platform owns or is owed (provider clearing); normally debit."""
    liability = "liability"
    """What the platform owes (wallets, gift cards, streamer/developer balances, VAT); normally credit."""
    equity = "equity"
    """Owner's side; also the ``external:world`` source/sink; normally credit."""
    revenue = "revenue"
    """Income such as platform fees; normally credit."""
    expense = "expense"
    """Costs such as goodwill credits and provider fees; normally debit."""


class NormalBalance(StrEnum):
    """The side on which an account's balance grows."""

    debit = "debit"
    """Balance = debits − credits (assets, expenses)."""
    credit = "credit"
    """Balance = credits − debits (liabilities, equity, revenue)."""


class TransferKind(StrEnum):
    """What a transfer does."""

    transfer = "transfer"
    """A single-phase posting: moves posted balances at once."""
    hold = "hold"
    """A pending transfer: reserves amounts (pending debits/credits) until posted or voided."""
    post = "post"
    """Posts a hold, fully or partially; releases the rest."""
    void = "void"
    """Releases a hold without moving money."""
    expire = "expire"
    """Releases a hold whose expiry passed (done by the expiry job)."""
    reversal = "reversal"
    """Undoes a posted transfer with opposite entries (corrections are reversals, never updates)."""


class EntryPhase(StrEnum):
    """Which balance an entry changes."""

    posted = "posted"
    """Changes the posted balance."""
    pending = "pending"
    """Creates a hold leg: a debit adds to pending debits, a credit to pending credits."""
    released = "released"
    """Releases a hold leg (the negation of its ``pending`` entry)."""


class HoldStatus(StrEnum):
    """Lifecycle of a hold."""

    pending = "pending"
    """Amounts are reserved; may be posted, voided or expire."""
    posted = "posted"
    """Posted (fully or partially) by a ``post`` transfer; the remainder was released."""
    voided = "voided"
    """Released by a ``void`` transfer."""
    expired = "expired"
    """Released by the expiry job after ``expires_at``."""


def _in(column: str, enum: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(m)) for m in enum)})"


class LedgerAccount(Base):
    """An account per owner and currency, with cached balances (see module docstring)."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("code", "currency"),
        CheckConstraint(_in("type", AccountType), name="type"),
        CheckConstraint(_in("normal_balance", NormalBalance), name="normal_balance"),
        CheckConstraint("pending_debits >= 0 AND pending_credits >= 0", name="pending_non_negative"),
        CheckConstraint(
            "allow_negative OR (CASE normal_balance WHEN 'credit' THEN posted - pending_debits "
            "ELSE -posted - pending_credits END) >= 0",
            name="available_non_negative",
        ),
        {"postgresql_with": {"fillfactor": "70"}},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(200), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    normal_balance: Mapped[str] = mapped_column(String(6), nullable=False)
    allow_negative: Mapped[bool] = mapped_column(Boolean, nullable=False)
    hot: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    posted: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    pending_debits: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    pending_credits: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))


class LedgerTransfer(Base):
    """An immutable posting; ``idempotency_key`` is unique, ``fingerprint`` detects key reuse."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint(_in("kind", TransferKind), name="kind"),
        Index("ix_ledger_transfers_reference", "reference"),
        Index("ix_ledger_transfers_pending_id", "pending_id", postgresql_where=text("pending_id IS NOT NULL")),
        Index(
            "uq_ledger_transfers_reverses_id",
            "reverses_id",
            unique=True,
            postgresql_where=text("reverses_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Opaque identifiers: byte order ("C") keeps their indexes cheap (no locale comparisons).
    idempotency_key: Mapped[str] = mapped_column(String(255, collation="C"), nullable=False, unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    pending_id: Mapped[uuid.UUID | None] = mapped_column()
    reverses_id: Mapped[uuid.UUID | None] = mapped_column()
    reference: Mapped[str] = mapped_column(String(200, collation="C"), nullable=False)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    effective_at: Mapped[datetime] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))


class LedgerEntry(Base):
    """One leg of a transfer on one account: signed amount (credit positive), phase, currency."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_non_zero"),
        CheckConstraint(_in("phase", EntryPhase), name="phase"),
        Index("ix_ledger_entries_transfer_id", "transfer_id"),
    )

    # (account_id, id) is the key an account's history and balances are read by; ``id`` alone is
    # unique too (identity) and orders the journal.
    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    transfer_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    phase: Mapped[str] = mapped_column(String(8), nullable=False)
    effective_at: Mapped[datetime] = mapped_column(nullable=False)


class LedgerHold(Base):
    """The state of a hold (a ``hold`` transfer); its legs are the transfer's ``pending`` entries."""

    __tablename__ = "ledger_holds"
    __table_args__ = (
        CheckConstraint(_in("status", HoldStatus), name="status"),
        Index("ix_ledger_holds_expires_at_pending", "expires_at", postgresql_where=text("status = 'pending'")),
    )

    transfer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transfers.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(10), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column()
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_transfers.id"))
    resolved_at: Mapped[datetime | None] = mapped_column()


class LedgerAccountDelta(Base):
    """A balance change of a hot account not yet folded into its row (see module docstring)."""

    __tablename__ = "ledger_account_deltas"
    __table_args__ = (Index("ix_ledger_account_deltas_account_id", "account_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    posted: Mapped[int] = mapped_column(BigInteger, nullable=False)
    pending_debits: Mapped[int] = mapped_column(BigInteger, nullable=False)
    pending_credits: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("clock_timestamp()"))
