"""All SQL for payments, attempts and their cursor pages."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from payment_service.models.payment import Payment, PaymentAttempt
from payment_service.payment.states import AttemptStatus, PaymentStatus

OPEN_ATTEMPT = (AttemptStatus.created, AttemptStatus.pending, AttemptStatus.requires_action, AttemptStatus.unknown)
URGENT_SYNC = (AttemptStatus.created, AttemptStatus.unknown)
"""Outcomes we do not know (the provider call's answer was lost): resolved before anything else."""


async def add(session: AsyncSession, *objects: Payment | PaymentAttempt) -> None:
    session.add_all(objects)
    await session.flush()


async def get(session: AsyncSession, payment_id: uuid.UUID, *, lock: bool = False) -> Payment | None:
    # populate_existing: a read after a commit must see what was committed meanwhile (ours or others').
    # joinedload: the payment and its attempts in one round trip (selectin takes two); FOR UPDATE
    # OF payments locks only the payment row, the preserved side of the outer join.
    stmt = (
        select(Payment)
        .where(Payment.id == payment_id)
        .options(joinedload(Payment.attempts))
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update(of=Payment)
    return (await session.execute(stmt)).unique().scalar_one_or_none()


async def by_request_key(session: AsyncSession, request_key: uuid.UUID) -> Payment | None:
    stmt = select(Payment).where(Payment.request_key == request_key).options(selectinload(Payment.attempts))
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_order_reference(session: AsyncSession, *, created_by: str, order_reference: str) -> Payment | None:
    stmt = (
        select(Payment)
        .where(Payment.created_by == created_by, Payment.order_reference == order_reference)
        .options(selectinload(Payment.attempts))
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def attempt_by_provider_id(
    session: AsyncSession, provider: str, provider_payment_id: str
) -> PaymentAttempt | None:
    stmt = select(PaymentAttempt).where(
        PaymentAttempt.provider == provider, PaymentAttempt.provider_payment_id == provider_payment_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def attempt(session: AsyncSession, attempt_id: uuid.UUID) -> PaymentAttempt | None:
    return await session.get(PaymentAttempt, attempt_id, populate_existing=True)


def encode_cursor(created_at: datetime, payment_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{payment_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    padded = cursor + "=" * (-len(cursor) % 4)
    created, _, pid = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
    return datetime.fromisoformat(created), uuid.UUID(pid)


async def page(
    session: AsyncSession,
    *,
    payer_id: str | None,
    status: PaymentStatus | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Payment]:
    """Newest first; keyset pagination on (created_at, id)."""
    stmt = select(Payment).options(selectinload(Payment.attempts))
    if payer_id is not None:
        stmt = stmt.where(Payment.payer_id == payer_id)
    if status is not None:
        stmt = stmt.where(Payment.status == status)
    if after is not None:
        created, pid = after
        stmt = stmt.where(or_(Payment.created_at < created, and_(Payment.created_at == created, Payment.id < pid)))
    stmt = stmt.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit)
    return (await session.execute(stmt)).scalars().all()


async def claim_attempts_to_sync(
    session: AsyncSession, *, now: datetime, limit: int
) -> list[tuple[uuid.UUID, int, AttemptStatus]]:
    """Attempts whose outcome is open and due for a status check, locked so one worker takes each:
    ``(id, sync_count, status)``, unknown outcomes first, then in due order (one round trip)."""
    stmt = (
        select(PaymentAttempt.id, PaymentAttempt.sync_count, PaymentAttempt.status)
        .where(PaymentAttempt.status.in_(OPEN_ATTEMPT), PaymentAttempt.next_sync_at <= now)
        .order_by(PaymentAttempt.status.notin_(URGENT_SYNC), PaymentAttempt.next_sync_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(row.id, row.sync_count, row.status) for row in (await session.execute(stmt)).all()]


async def postpone_sync(session: AsyncSession, attempt_ids: Sequence[uuid.UUID], *, until: datetime) -> None:
    if attempt_ids:
        await session.execute(
            update(PaymentAttempt)
            .where(PaymentAttempt.id.in_(attempt_ids))
            .values(next_sync_at=until, sync_count=PaymentAttempt.sync_count + 1)
        )


async def expired_ids(session: AsyncSession, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """Open payments past ``expires_at`` and authorized ones past ``capture_before``."""
    stmt = (
        select(Payment.id)
        .where(
            or_(
                and_(
                    Payment.status.in_((PaymentStatus.pending, PaymentStatus.requires_action)),
                    Payment.expires_at <= now,
                ),
                and_(Payment.status == PaymentStatus.authorized, Payment.capture_before <= now),
            )
        )
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())
