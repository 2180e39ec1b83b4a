"""All SQL for ``inbox_events`` and ``dead_letters``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.models.inbox import DeadLetter, InboxEvent


async def claim(session: AsyncSession, *, source: str, event_id: str, type: str, topic: str) -> bool:
    """Insert the inbox row; False when (source, event_id) was already processed.

    A concurrent transaction holding the same key makes this wait for its outcome, so two
    deliveries of one event never both proceed.
    """
    statement = (
        insert(InboxEvent)
        .values(id=uuid.uuid4(), source=source, event_id=event_id, type=type, topic=topic)
        .on_conflict_do_nothing(index_elements=[InboxEvent.source, InboxEvent.event_id])
        .returning(InboxEvent.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def processed(session: AsyncSession, *, source: str, event_id: str) -> bool:
    row = await session.execute(
        select(InboxEvent.id).where(InboxEvent.source == source, InboxEvent.event_id == event_id)
    )
    return row.scalar_one_or_none() is not None


async def delete_processed(session: AsyncSession, *, older_than: datetime, batch: int) -> int:
    ids = select(InboxEvent.id).where(InboxEvent.processed_at < older_than).limit(batch).scalar_subquery()
    result = await session.execute(delete(InboxEvent).where(InboxEvent.id.in_(ids)))
    return int(getattr(result, "rowcount", 0) or 0)


async def insert_dead_letter(
    session: AsyncSession,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: str | None,
    source: str | None,
    event_id: str | None,
    type: str | None,
    headers: dict[str, str],
    value: Any,
    raw: str | None,
    error: str,
    attempts: int,
) -> uuid.UUID | None:
    """Insert a dead letter; None when this event already has one that was not replayed."""
    statement = (
        insert(DeadLetter)
        .values(
            id=uuid.uuid4(),
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            source=source,
            event_id=event_id,
            type=type,
            headers=headers,
            value=value,
            raw=raw,
            error=error,
            attempts=attempts,
        )
        .on_conflict_do_nothing(
            index_elements=[DeadLetter.source, DeadLetter.event_id],
            index_where=DeadLetter.replayed_at.is_(None),
        )
        .returning(DeadLetter.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def list_dead_letters(
    session: AsyncSession,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
    topic: str | None = None,
    replayed: bool | None = None,
) -> list[DeadLetter]:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = select(DeadLetter).order_by(DeadLetter.created_at.desc(), DeadLetter.id.desc()).limit(limit)
    if before is not None:
        query = query.where(tuple_(DeadLetter.created_at, DeadLetter.id) < tuple_(*before))
    if topic is not None:
        query = query.where(DeadLetter.topic == topic)
    if replayed is not None:
        query = query.where(DeadLetter.replayed_at.is_not(None) if replayed else DeadLetter.replayed_at.is_(None))
    return list((await session.execute(query)).scalars())


async def get_dead_letter(
    session: AsyncSession, dead_letter_id: uuid.UUID, *, for_update: bool = False
) -> DeadLetter | None:
    query = select(DeadLetter).where(DeadLetter.id == dead_letter_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def mark_replayed(session: AsyncSession, dead_letter_id: uuid.UUID, *, at: datetime, by: str) -> DeadLetter:
    statement = (
        update(DeadLetter)
        .where(DeadLetter.id == dead_letter_id)
        .values(replayed_at=at, replayed_by=by)
        .returning(DeadLetter)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()
