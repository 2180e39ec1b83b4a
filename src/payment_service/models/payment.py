from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payment_service.models.base import Base, TimestampedModel, str_enum
from payment_service.payment.states import AttemptStatus, PaymentStatus


class PaymentPurpose(StrEnum):
    """What the money is for; decides which ledger account the payment credits."""

    order = "order"
    """A purchase on the platform (games, DLC, preorders, subscriptions): credits order clearing."""
    wallet_top_up = "wallet_top_up"
    """Money into the payer's platform wallet."""
    donation = "donation"
    """A donation to a streamer."""


class CaptureMode(StrEnum):
    """One-stage or two-stage."""

    automatic = "automatic"
    """Charged at once."""
    manual = "manual"
    """Authorized (held) first; captured or voided later."""


class Payment(TimestampedModel, Base):
    """A customer's intent to pay an amount; its attempts try providers one after another."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("captured_minor >= 0 AND captured_minor <= amount_minor", name="captured_within_amount"),
        CheckConstraint("refunded_minor >= 0 AND refunded_minor <= captured_minor", name="refunded_within_captured"),
        Index("ix_payments_payer_created", "payer_id", "created_at", "id"),
        Index(
            "ix_payments_open_expiry", "expires_at", postgresql_where=text("status IN ('pending','requires_action')")
        ),
        Index("ix_payments_authorized_expiry", "capture_before", postgresql_where=text("status = 'authorized'")),
        UniqueConstraint("created_by", "order_reference", name="uq_payments_order_reference"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    payer_id: Mapped[str] = mapped_column(String(100), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    purpose: Mapped[PaymentPurpose] = mapped_column(str_enum(PaymentPurpose), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    captured_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    refunded_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    fee_minor: Mapped[int | None] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(32), nullable=False)
    capture_mode: Mapped[CaptureMode] = mapped_column(str_enum(CaptureMode, 16), nullable=False)
    status: Mapped[PaymentStatus] = mapped_column(str_enum(PaymentStatus), nullable=False)
    description: Mapped[str] = mapped_column(String(250), nullable=False)
    return_url: Mapped[str] = mapped_column(String(2048), nullable=False)
    order_reference: Mapped[str | None] = mapped_column(String(128))
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONB, nullable=False, server_default="{}")
    preferred_provider: Mapped[str | None] = mapped_column(String(32))
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_payment_id: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    decline_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    card_scheme: Mapped[str | None] = mapped_column(String(32))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    card_first6: Mapped[str | None] = mapped_column(String(6))
    ledger_hold_id: Mapped[uuid.UUID | None] = mapped_column()
    request_key: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    """Id of the Idempotency-Key claim that created it: a retry after a crash resumes this payment."""
    pending_operation: Mapped[str | None] = mapped_column(String(16))
    """capture/cancel while its provider call is in flight; a second one is refused meanwhile."""
    pending_operation_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    capture_before: Mapped[datetime | None] = mapped_column()
    succeeded_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    attempts: Mapped[list[PaymentAttempt]] = relationship(
        back_populates="payment", lazy="raise", order_by="PaymentAttempt.number"
    )


class PaymentAttempt(TimestampedModel, Base):
    """One try at one provider. Its id is the idempotency key the provider receives."""

    __tablename__ = "payment_attempts"
    __table_args__ = (
        UniqueConstraint("payment_id", "number"),
        UniqueConstraint("provider", "provider_payment_id"),
        Index(
            "ix_payment_attempts_sync",
            "next_sync_at",
            postgresql_where=text("status IN ('created','pending','requires_action','unknown')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[AttemptStatus] = mapped_column(str_enum(AttemptStatus), nullable=False)
    provider_payment_id: Mapped[str | None] = mapped_column(String(128))
    provider_status: Mapped[str | None] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    decline_code: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    failover: Mapped[bool] = mapped_column(nullable=False, server_default="false")
    """True when this attempt's definite failure made the router try the next provider."""
    sync_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_sync_at: Mapped[datetime | None] = mapped_column()
    last_synced_at: Mapped[datetime | None] = mapped_column()

    payment: Mapped[Payment] = relationship(back_populates="attempts", lazy="raise")


class ProviderEventStatus(StrEnum):
    """Processing state of a stored provider webhook."""

    received = "received"
    """Stored, not yet applied."""
    processed = "processed"
    """Applied (or found to change nothing)."""
    orphaned = "orphaned"
    """No payment of ours matches it: kept and reported, never dropped."""
    failed = "failed"
    """Applying it kept failing; listed for an operator."""


class ProviderEvent(Base):
    """A verified provider webhook, stored once per (provider, external id) before it is applied."""

    __tablename__ = "provider_events"
    __table_args__ = (
        UniqueConstraint("provider", "external_id"),
        Index("ix_provider_events_pending", "received_at", postgresql_where=text("status = 'received'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    external_id: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    provider_payment_id: Mapped[str] = mapped_column(String(128), nullable=False)
    attempt_id: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    """Normalized facts of the event (status, amounts, codes); never raw card or personal data."""
    status: Mapped[ProviderEventStatus] = mapped_column(
        str_enum(ProviderEventStatus, 16), nullable=False, server_default="received"
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    processed_at: Mapped[datetime | None] = mapped_column()
