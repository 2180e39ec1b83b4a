"""Refunds of payments (the ``refund`` module owns the SQL of this table)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from payment_service.models.base import Base, TimestampedModel, str_enum
from payment_service.refund.states import RefundDecision, RefundDestination, RefundStatus


class Refund(TimestampedModel, Base):
    """A request to give back all or part of a succeeded payment. Its id is the provider's
    idempotency key and the ledger reference (``refund:<id>``)."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index("ix_refunds_payer_created", "payer_id", "created_at", "id"),
        Index("ix_refunds_payment", "payment_id"),
        Index("ix_refunds_review_queue", "created_at", postgresql_where=text("status = 'pending_review'")),
        Index("ix_refunds_sync", "next_sync_at", postgresql_where=text("status IN ('processing','unknown')")),
        UniqueConstraint("provider", "provider_refund_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"), nullable=False)
    payer_id: Mapped[str] = mapped_column(String(100), nullable=False)
    """The payment's payer: the only user who may see this refund."""
    requested_by: Mapped[str] = mapped_column(String(128), nullable=False)
    """Principal key of whoever asked (``user:<id>``, ``service:<name>``, ``admin:<id>``)."""
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    destination: Mapped[RefundDestination] = mapped_column(str_enum(RefundDestination, 32), nullable=False)
    status: Mapped[RefundStatus] = mapped_column(str_enum(RefundStatus, 32), nullable=False)
    reason: Mapped[str] = mapped_column(String(500), nullable=False)
    """Why the customer (or the service) asks for the refund."""
    decision: Mapped[RefundDecision | None] = mapped_column(str_enum(RefundDecision, 16))
    """Who approved it; None while pending review or when rejected."""
    findings: Mapped[list[str]] = mapped_column(JSONB, nullable=False, server_default="[]")
    """Rule findings that sent it to review or rejected it (``rules.Finding`` values)."""
    playtime_minutes: Mapped[int | None] = mapped_column(Integer)
    """Playtime in the purchased games when the request was made (None: unknown or no games)."""
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    """Principal key of the administrator who approved or rejected it."""
    reviewed_at: Mapped[datetime | None] = mapped_column()
    review_note: Mapped[str | None] = mapped_column(String(500))
    """The administrator's reason (required on rejection)."""
    provider: Mapped[str | None] = mapped_column(String(32))
    """The payment's provider (original-method refunds only)."""
    provider_refund_id: Mapped[str | None] = mapped_column(String(128))
    provider_status: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, server_default="[]")
    """Ledger accounts the money is taken back from: ``[{"account": code, "amount_minor": n}]``."""
    ledger_hold_id: Mapped[uuid.UUID | None] = mapped_column()
    """Hold sources → provider clearing, posted when the provider confirms, voided if it refuses."""
    request_key: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    """Id of the Idempotency-Key claim that created it: a retry after a crash finds it."""
    sync_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_sync_at: Mapped[datetime | None] = mapped_column()
    last_called_at: Mapped[datetime | None] = mapped_column()
    """When the provider's refund call last returned (a re-call waits until none can be in flight)."""
    succeeded_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
