"""All SQL for stored provider webhooks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.db import wake_after_commit
from payment_service.models.payment import ProviderEvent, ProviderEventStatus

NOTIFY_CHANNEL = "provider_events"
"""The worker's webhook applier LISTENs here; woken after the storing transaction commits."""

_INSERT = text(
    """
    INSERT INTO provider_events
        (id, provider, external_id, kind, event_type, provider_payment_id, attempt_id, summary, status, received_at)
    VALUES (:id, :provider, :external_id, :kind, :event_type, :provider_payment_id, :attempt_id,
            CAST(:summary AS jsonb), 'received', :now)
    ON CONFLICT (provider, external_id) DO NOTHING
    RETURNING id
    """
)


async def insert(
    session: AsyncSession,
    *,
    provider: str,
    external_id: str,
    kind: str,
    event_type: str,
    provider_payment_id: str,
    attempt_id: str | None,
    summary: dict[str, Any],
    now: datetime,
) -> uuid.UUID | None:
    """Store the event once; None when (provider, external_id) was stored before. Wakes the worker
    after COMMIT."""
    row = (
        await session.execute(
            _INSERT,
            {
                "id": uuid.uuid4(),
                "provider": provider,
                "external_id": external_id[:200],
                "kind": kind,
                "event_type": event_type[:64],
                "provider_payment_id": provider_payment_id[:128],
                "attempt_id": attempt_id,
                "summary": orjson.dumps(summary).decode(),
                "now": now,
            },
        )
    ).scalar_one_or_none()
    if row is not None:
        wake_after_commit(session, NOTIFY_CHANNEL)
    return row


async def claim_received(session: AsyncSession, *, kind: str, limit: int) -> Sequence[ProviderEvent]:
    """The oldest received events of this kind, locked (others' claims skipped)."""
    stmt = (
        select(ProviderEvent)
        .where(ProviderEvent.status == ProviderEventStatus.received, ProviderEvent.kind == kind)
        .order_by(ProviderEvent.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(stmt)).scalars().all()


async def list_by_status(session: AsyncSession, *, status: ProviderEventStatus, limit: int) -> Sequence[ProviderEvent]:
    stmt = (
        select(ProviderEvent)
        .where(ProviderEvent.status == status)
        .order_by(ProviderEvent.received_at.desc())
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()
