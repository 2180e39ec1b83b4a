"""Payouts: payee accounts, payouts with their provider attempts, batches, referral payout requests."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payment_service.models.base import Base, TimestampedModel, str_enum
from payment_service.payout.states import PayoutAttemptStatus, PayoutStatus
from payment_service.providers.ports import PayoutMethod


class KycStatus(StrEnum):
    """Verification of the payee's identity (KYC); only ``verified`` payees are paid out."""

    unverified = "unverified"
    """Nothing submitted yet."""
    pending = "pending"
    """Documents submitted; waiting for the check."""
    verified = "verified"
    """Identity confirmed: payouts allowed."""
    rejected = "rejected"
    """The check failed: no payouts until verified again."""


class PayoutSchedule(StrEnum):
    """When the platform pays a payee's earnings out on its own."""

    manual = "manual"
    """Never on its own (referral payouts and on-demand payouts only)."""
    weekly = "weekly"
    """Every week on ``schedule_day`` (ISO weekday, 1 = Monday)."""
    monthly = "monthly"
    """Every month on ``schedule_day`` (1-28)."""


class PayoutSource(StrEnum):
    """Which earnings a payout pays out (the ledger account it is held from)."""

    streamer = "streamer"
    """Donations: ``streamer:<id>:balance``."""
    referral = "referral"
    """Referral rewards requested by the Social Service: ``referrer:<id>:balance``."""
    developer = "developer"
    """Revenue share: ``developer:<id>:balance`` (later)."""


class PayeeAccount(TimestampedModel, Base):
    """Who gets paid and how: payout method and details, KYC status, minimum amount, schedule.

    The details (card token, bank account, wallet, phone) are stored only as Vault Transit
    ciphertext; ``details_masked`` is the display form (last four digits).
    """

    __tablename__ = "payee_accounts"
    __table_args__ = (
        CheckConstraint("min_payout_minor > 0", name="min_payout_positive"),
        CheckConstraint("(method IS NULL) = (details_ciphertext IS NULL)", name="method_has_details"),
        CheckConstraint(
            "(schedule = 'manual' AND schedule_day IS NULL)"
            " OR (schedule = 'weekly' AND schedule_day BETWEEN 1 AND 7)"
            " OR (schedule = 'monthly' AND schedule_day BETWEEN 1 AND 28)",
            name="schedule_day_fits",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    kyc_status: Mapped[KycStatus] = mapped_column(str_enum(KycStatus, 16), nullable=False)
    kyc_updated_at: Mapped[datetime | None] = mapped_column()
    kyc_updated_by: Mapped[str | None] = mapped_column(String(128))
    method: Mapped[PayoutMethod | None] = mapped_column(str_enum(PayoutMethod, 16))
    details_ciphertext: Mapped[str | None] = mapped_column(Text)
    """Vault Transit ciphertext of the destination details (JSON); never stored in clear."""
    details_masked: Mapped[str | None] = mapped_column(String(64))
    details_updated_at: Mapped[datetime | None] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    min_payout_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    schedule: Mapped[PayoutSchedule] = mapped_column(str_enum(PayoutSchedule, 16), nullable=False)
    schedule_day: Mapped[int | None] = mapped_column(Integer)
    last_scheduled_period: Mapped[str | None] = mapped_column(String(16))
    """The last schedule period (``2026-W48``, ``2026-11``) the scheduled job handled."""


class PayoutBatch(Base):
    """The payouts one run of a scheduled job created (e.g. all streamer payouts of a day)."""

    __tablename__ = "payout_batches"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source: Mapped[PayoutSource] = mapped_column(str_enum(PayoutSource, 16), nullable=False)
    reference: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    """``<source>:<run date>``: one batch per source and day."""
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    payouts_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    total_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(nullable=False)


class Payout(TimestampedModel, Base):
    """Money held on a payee's balance and sent to the payee's instrument by a provider."""

    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index("ix_payouts_user_created", "user_id", "created_at", "id"),
        Index("ix_payouts_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_payouts_open", "status", "created_at", postgresql_where=text("status IN ('pending','processing')")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    payee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payee_accounts.id"), nullable=False)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    source: Mapped[PayoutSource] = mapped_column(str_enum(PayoutSource, 16), nullable=False)
    reference: Mapped[str] = mapped_column(String(160), nullable=False, unique=True)
    """The business key that makes creation idempotent (``streamer:<id>:2026-W48``, ``referral:<request id>``)."""
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payout_batches.id"))
    balance_account: Mapped[str] = mapped_column(String(128), nullable=False)
    """Code of the ledger account the money is held from."""
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    method: Mapped[PayoutMethod] = mapped_column(str_enum(PayoutMethod, 16), nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    destination_masked: Mapped[str] = mapped_column(String(64), nullable=False)
    details_ciphertext: Mapped[str] = mapped_column(Text, nullable=False)
    """Snapshot of the payee's details when the payout was created (Vault Transit ciphertext)."""
    description: Mapped[str] = mapped_column(String(128), nullable=False)
    status: Mapped[PayoutStatus] = mapped_column(str_enum(PayoutStatus, 16), nullable=False)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    ledger_hold_id: Mapped[uuid.UUID | None] = mapped_column()
    attempts_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    """When a ``pending`` payout's next provider attempt is due."""
    provider_payout_id: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    succeeded_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    attempts: Mapped[list[PayoutAttempt]] = relationship(
        back_populates="payout", lazy="raise", order_by="PayoutAttempt.number"
    )


class PayoutAttempt(TimestampedModel, Base):
    """One try at one provider. Its id is the idempotency key the provider receives."""

    __tablename__ = "payout_attempts"
    __table_args__ = (
        UniqueConstraint("payout_id", "number"),
        UniqueConstraint("provider", "provider_payout_id"),
        Index(
            "ix_payout_attempts_sync",
            "next_sync_at",
            postgresql_where=text("status IN ('created','pending','unknown')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    payout_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payouts.id"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[PayoutAttemptStatus] = mapped_column(str_enum(PayoutAttemptStatus, 16), nullable=False)
    provider_payout_id: Mapped[str | None] = mapped_column(String(128))
    provider_status: Mapped[str | None] = mapped_column(String(64))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    submitted_at: Mapped[datetime | None] = mapped_column()
    """Set (and committed) right before the provider is called: from then on it may exist there."""
    sync_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_sync_at: Mapped[datetime | None] = mapped_column()
    last_synced_at: Mapped[datetime | None] = mapped_column()

    payout: Mapped[Payout] = relationship(back_populates="attempts", lazy="raise")


class ReferralPayoutMethod(StrEnum):
    """How the Social Service asks a referral reward to be paid."""

    internal_balance = "internal_balance"
    """Credited to the user's platform wallet at once (from the referral expense account)."""
    bank = "bank"
    """Paid out to the user's bank card, bank account or SBP (the payee account's method)."""
    e_wallet = "e_wallet"
    """Paid out to the user's YooMoney wallet (the payee account's method)."""


class ReferralPayoutStatus(StrEnum):
    """Where a referral payout request stands; the answer event is emitted when it leaves ``pending``."""

    pending = "pending"
    """Accepted; the payout is in progress (external methods)."""
    completed = "completed"
    """Paid (wallet credited, or the payout succeeded): ``referral_payout.completed`` was emitted."""
    failed = "failed"
    """Refused or the payout failed (credit reversed): ``referral_payout.failed`` was emitted."""


class ReferralPayout(TimestampedModel, Base):
    """One payout request of the Social Service, unique by its ``request_id``.

    Exactly one answer event per request: it is written in the transaction that moves the row
    out of ``pending`` (``answered_at`` is set exactly then, see the check constraint).
    """

    __tablename__ = "referral_payouts"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("(answered_at IS NULL) = (status = 'pending')", name="answered_once_final"),
        Index("ix_referral_payouts_user", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    requested_by: Mapped[str] = mapped_column(String(128), nullable=False)
    """``service:social`` (REST) or ``kafka:<source>``."""
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    """SHA-256 of the request's content: the same id with other content is refused."""
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    referral_id: Mapped[str] = mapped_column(String(128), nullable=False)
    method: Mapped[ReferralPayoutMethod] = mapped_column(str_enum(ReferralPayoutMethod, 24), nullable=False)
    status: Mapped[ReferralPayoutStatus] = mapped_column(str_enum(ReferralPayoutStatus, 16), nullable=False)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    payout_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payouts.id"), unique=True)
    credit_transfer_id: Mapped[uuid.UUID | None] = mapped_column()
    reversal_transfer_id: Mapped[uuid.UUID | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
