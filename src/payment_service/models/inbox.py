from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from payment_service.models.base import Base


class InboxEvent(Base):
    """A consumed event; unique (source, event_id) makes a redelivery have no second effect.

    The row is written in the same transaction as the handler's effect, and the Kafka offset is
    committed only after that transaction.
    """

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("source", "event_id"),
        Index("ix_inbox_events_processed_at", "processed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source: Mapped[str] = mapped_column(String(200), nullable=False)
    event_id: Mapped[str] = mapped_column(String(200), nullable=False)
    type: Mapped[str] = mapped_column(String(200), nullable=False)
    topic: Mapped[str] = mapped_column(String(200), nullable=False)
    processed_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))


class DeadLetter(Base):
    """An event whose handler kept failing; listed and replayed by admins.

    At most one not-yet-replayed dead letter exists per (source, event_id), so a redelivery of an
    event that was already dead-lettered does not add a second row or a second DLQ message.
    ``topic`` is the logical topic (without ``kafka.topic_prefix``); ``headers`` and ``value`` are
    the original Kafka headers and JSON value, which a replay re-publishes unchanged.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (
        Index(
            "ix_dead_letters_unreplayed_event",
            "source",
            "event_id",
            unique=True,
            postgresql_where=text("replayed_at IS NULL"),
        ),
        Index("ix_dead_letters_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    topic: Mapped[str] = mapped_column(String(200), nullable=False)
    partition: Mapped[int] = mapped_column(Integer, nullable=False)
    offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    key: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(200))
    event_id: Mapped[str | None] = mapped_column(String(200))
    type: Mapped[str | None] = mapped_column(String(200))
    headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    raw: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    replayed_at: Mapped[datetime | None] = mapped_column()
    replayed_by: Mapped[str | None] = mapped_column(String(200))
