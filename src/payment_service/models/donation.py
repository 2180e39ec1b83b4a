from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from payment_service.models.base import Base, TimestampedModel, str_enum


class DonationStatus(StrEnum):
    """Where a donation stands."""

    pending = "pending"
    """Created; its payment is not finished yet."""
    processed = "processed"
    """Paid: the money is split (streamer balance + platform fee) and the alert is in the log."""
    failed = "failed"
    """The payment failed, was canceled or expired, or the wallet lacked the money; nothing moved."""


class DonationSource(StrEnum):
    """How the donor pays."""

    payment = "payment"
    """Through a payment provider (card, SBP, YooMoney, SberPay, mobile): purpose ``donation``."""
    wallet = "wallet"
    """From the donor's platform wallet (REST or a Streaming Service request over Kafka)."""


class Donation(TimestampedModel, Base):
    """A viewer's donation to a streamer, and once processed one entry of the streamer's alert log.

    The alert log of a streamer is its processed donations ordered by ``alert_seq`` (1, 2, 3 … with
    no gaps, assigned in commit order under the streamer's counter row lock).
    """

    __tablename__ = "donations"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("fee_minor >= 0 AND streamer_minor >= 0", name="split_not_negative"),
        CheckConstraint("fee_minor + streamer_minor = amount_minor", name="split_sums_to_amount"),
        CheckConstraint("clawed_back_minor >= 0 AND clawed_back_minor <= amount_minor", name="clawback_within_amount"),
        CheckConstraint("(alert_seq IS NULL) = (status IN ('pending', 'failed'))", name="alert_once_paid"),
        UniqueConstraint("streamer_id", "alert_seq", name="uq_donations_alert_log"),
        Index("ix_donations_donor_created", "donor_id", "created_at"),
        Index(
            "ix_donations_alert_unpublished",
            "processed_at",
            postgresql_where=text("alert_seq IS NOT NULL AND alert_published_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    streamer_id: Mapped[str] = mapped_column(String(64), nullable=False)
    donor_id: Mapped[str] = mapped_column(String(100), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    """Principal key of the caller (``user:42``, ``service:streaming``) or ``kafka:<source>``."""
    source: Mapped[DonationSource] = mapped_column(str_enum(DonationSource, 16), nullable=False)
    method: Mapped[str] = mapped_column(String(32), nullable=False)
    """``wallet`` or the payment method (bank_card, sbp …)."""
    status: Mapped[DonationStatus] = mapped_column(str_enum(DonationStatus, 16), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    fee_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    """Platform fee, fixed at creation (settings at that moment)."""
    streamer_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    """What the streamer's balance receives: amount − fee."""
    display_name: Mapped[str] = mapped_column(String(64), nullable=False)
    """As shown on stream (moderated)."""
    message: Mapped[str | None] = mapped_column(Text)
    """As shown on stream (moderated: links stripped, banned words masked, cut to the limit)."""
    moderation_flags: Mapped[list[str]] = mapped_column(ARRAY(String(32)), nullable=False, server_default="{}")
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payments.id"), unique=True)
    request_key: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    """Id of the Idempotency-Key claim that created it (a retry after a crash resumes it)."""
    external_ref: Mapped[str | None] = mapped_column(String(256), unique=True)
    """``<source>:<event id>`` of the Kafka request that created it (one donation per request)."""
    ledger_transfer_id: Mapped[uuid.UUID | None] = mapped_column()
    alert_seq: Mapped[int | None] = mapped_column(BigInteger)
    """Position in the streamer's alert log; the alert's event id on the WebSocket."""
    alert_published_at: Mapped[datetime | None] = mapped_column()
    """When the alert went to Redis pub/sub (the worker publishes what stays unpublished)."""
    clawed_back_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failure_code: Mapped[str | None] = mapped_column(String(64))
    processed_at: Mapped[datetime | None] = mapped_column()
    failed_at: Mapped[datetime | None] = mapped_column()


class DonationStreamer(TimestampedModel, Base):
    """Per-streamer donation state: the alert log counter and the hashed overlay token."""

    __tablename__ = "donation_streamers"

    streamer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_alert_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    overlay_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    """SHA-256 (hex) of the current overlay token; the token itself is never stored."""
    overlay_token_rotated_at: Mapped[datetime | None] = mapped_column()
