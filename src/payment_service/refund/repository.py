"""All SQL for refunds: reservations per payment, the review queue, pages and the sync claim."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.models.refund import Refund
from payment_service.refund.states import OPEN, RESERVING, RefundStatus

TAKEN = (*RESERVING, RefundStatus.succeeded)
"""Statuses whose amount counts against what a payment may still refund."""


async def add(session: AsyncSession, refund: Refund) -> None:
    session.add(refund)
    await session.flush()


async def get(session: AsyncSession, refund_id: uuid.UUID) -> Refund | None:
    # populate_existing: after a checkpoint the row may have been changed by another transaction.
    return await session.get(Refund, refund_id, populate_existing=True)


async def by_request_key(session: AsyncSession, request_key: uuid.UUID) -> Refund | None:
    stmt = select(Refund).where(Refund.request_key == request_key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_provider_id(session: AsyncSession, *, provider: str, provider_refund_id: str) -> Refund | None:
    stmt = select(Refund).where(Refund.provider == provider, Refund.provider_refund_id == provider_refund_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def of_payment(session: AsyncSession, payment_id: uuid.UUID) -> Sequence[Refund]:
    """Every refund of a payment, oldest first (read under the payment's row lock when it gates one)."""
    stmt = (
        select(Refund)
        .where(Refund.payment_id == payment_id)
        .order_by(Refund.created_at, Refund.id)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalars().all()


async def count_recent_of_other_payments(
    session: AsyncSession, *, payer_id: str, payment_id: uuid.UUID, since: datetime
) -> int:
    """Refunds the payer asked for other purchases since ``since`` (neither failed nor rejected)."""
    stmt = select(func.count(func.distinct(Refund.payment_id))).where(
        Refund.payer_id == payer_id,
        Refund.payment_id != payment_id,
        Refund.created_at >= since,
        Refund.status.in_(TAKEN),
    )
    return int((await session.execute(stmt)).scalar_one())


def encode_cursor(created_at: datetime, refund_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{refund_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    padded = cursor + "=" * (-len(cursor) % 4)
    created, _, rid = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
    return datetime.fromisoformat(created), uuid.UUID(rid)


async def page(
    session: AsyncSession,
    *,
    payer_id: str | None,
    payment_id: uuid.UUID | None,
    status: RefundStatus | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    oldest_first: bool = False,
) -> Sequence[Refund]:
    """Keyset pagination on (created_at, id): newest first, or oldest first for the review queue."""
    stmt = select(Refund)
    if payer_id is not None:
        stmt = stmt.where(Refund.payer_id == payer_id)
    if payment_id is not None:
        stmt = stmt.where(Refund.payment_id == payment_id)
    if status is not None:
        stmt = stmt.where(Refund.status == status)
    if after is not None:
        created, rid = after
        if oldest_first:
            stmt = stmt.where(or_(Refund.created_at > created, and_(Refund.created_at == created, Refund.id > rid)))
        else:
            stmt = stmt.where(or_(Refund.created_at < created, and_(Refund.created_at == created, Refund.id < rid)))
    if oldest_first:
        stmt = stmt.order_by(Refund.created_at, Refund.id)
    else:
        stmt = stmt.order_by(Refund.created_at.desc(), Refund.id.desc())
    return (await session.execute(stmt.limit(limit))).scalars().all()


async def claim_to_sync(session: AsyncSession, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """Approved refunds with an open outcome that are due for a check, locked so one worker takes each."""
    stmt = (
        select(Refund.id)
        .where(Refund.status.in_(OPEN), Refund.next_sync_at <= now)
        .order_by(Refund.next_sync_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars().all())


async def postpone_sync(session: AsyncSession, refund_id: uuid.UUID, *, until: datetime) -> None:
    await session.execute(
        update(Refund).where(Refund.id == refund_id).values(next_sync_at=until, sync_count=Refund.sync_count + 1)
    )
