from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, LargeBinary, SmallInteger, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from payment_service.models.base import Base


class IdempotencyKey(Base):
    """A client's Idempotency-Key, scoped per principal, with the stored response once finished."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    principal: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(nullable=False, unique=True, default=uuid.uuid4)
    method: Mapped[str] = mapped_column(String(8), nullable=False)
    path: Mapped[str] = mapped_column(String(512), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    recovery_point: Mapped[str] = mapped_column(String(64), nullable=False, server_default="started")
    locked_at: Mapped[datetime | None] = mapped_column()
    lock_token: Mapped[uuid.UUID | None] = mapped_column()
    """Which claim holds ``locked_at``: a claim that was taken over can neither finish nor unlock."""
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    completed_at: Mapped[datetime | None] = mapped_column()
