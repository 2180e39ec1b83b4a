"""All SQL for payee accounts, payouts, payout attempts and batches."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from payment_service.models.payout import (
    KycStatus,
    PayeeAccount,
    Payout,
    PayoutAttempt,
    PayoutBatch,
    PayoutSchedule,
    PayoutSource,
)
from payment_service.payout.states import OPEN_ATTEMPT, PayoutAttemptStatus, PayoutStatus


async def add(session: AsyncSession, *objects: PayeeAccount | Payout | PayoutAttempt) -> None:
    session.add_all(objects)
    await session.flush()


# ---- payees ---------------------------------------------------------------------------------------


async def payee_by_user(session: AsyncSession, user_id: str, *, lock: bool = False) -> PayeeAccount | None:
    stmt = select(PayeeAccount).where(PayeeAccount.user_id == user_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_payee_if_missing(session: AsyncSession, payee: PayeeAccount) -> None:
    """Create the payee row unless the user has one (concurrent first uses do not collide)."""
    await session.execute(
        insert(PayeeAccount)
        .values(
            id=payee.id,
            user_id=payee.user_id,
            kyc_status=payee.kyc_status,
            currency=payee.currency,
            min_payout_minor=payee.min_payout_minor,
            schedule=payee.schedule,
        )
        .on_conflict_do_nothing(index_elements=[PayeeAccount.user_id])
    )


async def scheduled_payees_due(
    session: AsyncSession, *, weekly_period: str, weekday: int, monthly_period: str, day: int, limit: int
) -> Sequence[PayeeAccount]:
    """Verified payees with a method whose schedule day of the current period has come and whose
    current period was not handled yet (``last_scheduled_period``), locked so one worker takes each."""
    stmt = (
        select(PayeeAccount)
        .where(
            PayeeAccount.kyc_status == KycStatus.verified,
            PayeeAccount.method.is_not(None),
            or_(
                and_(
                    PayeeAccount.schedule == PayoutSchedule.weekly,
                    PayeeAccount.schedule_day <= weekday,
                    PayeeAccount.last_scheduled_period.is_distinct_from(weekly_period),
                ),
                and_(
                    PayeeAccount.schedule == PayoutSchedule.monthly,
                    PayeeAccount.schedule_day <= day,
                    PayeeAccount.last_scheduled_period.is_distinct_from(monthly_period),
                ),
            ),
        )
        .order_by(PayeeAccount.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(stmt)).scalars().all()


# ---- payouts --------------------------------------------------------------------------------------


async def get(session: AsyncSession, payout_id: uuid.UUID, *, lock: bool = False) -> Payout | None:
    # populate_existing: a read after a commit must see what was committed meanwhile.
    stmt = (
        select(Payout)
        .where(Payout.id == payout_id)
        .options(selectinload(Payout.attempts))
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update(of=Payout)
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_reference(session: AsyncSession, reference: str) -> Payout | None:
    stmt = (
        select(Payout)
        .where(Payout.reference == reference)
        .options(selectinload(Payout.attempts))
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def attempt(session: AsyncSession, attempt_id: uuid.UUID) -> PayoutAttempt | None:
    return await session.get(PayoutAttempt, attempt_id, populate_existing=True)


async def attempt_by_provider_id(session: AsyncSession, provider: str, provider_payout_id: str) -> PayoutAttempt | None:
    stmt = select(PayoutAttempt).where(
        PayoutAttempt.provider == provider, PayoutAttempt.provider_payout_id == provider_payout_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def claim_due(session: AsyncSession, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """Pending payouts whose next attempt is due, locked so one worker takes each."""
    stmt = (
        select(Payout.id)
        .where(Payout.status == PayoutStatus.pending, Payout.next_attempt_at <= now)
        .order_by(Payout.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars().all())


async def lease(session: AsyncSession, payout_ids: Sequence[uuid.UUID], *, until: datetime) -> None:
    if payout_ids:
        await session.execute(update(Payout).where(Payout.id.in_(payout_ids)).values(next_attempt_at=until))


async def claim_attempts_to_sync(session: AsyncSession, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """Attempts the provider has (or may have) whose sync is due, locked so one worker takes each."""
    stmt = (
        select(PayoutAttempt.id)
        .where(
            PayoutAttempt.status.in_((PayoutAttemptStatus.pending, PayoutAttemptStatus.unknown)),
            PayoutAttempt.next_sync_at <= now,
        )
        .order_by(PayoutAttempt.next_sync_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars().all())


async def postpone_sync(session: AsyncSession, attempt_id: uuid.UUID, *, until: datetime, now: datetime) -> None:
    await session.execute(
        update(PayoutAttempt)
        .where(PayoutAttempt.id == attempt_id)
        .values(next_sync_at=until, sync_count=PayoutAttempt.sync_count + 1, last_synced_at=now)
    )


def encode_cursor(created_at: datetime, payout_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{payout_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    padded = cursor + "=" * (-len(cursor) % 4)
    created, _, pid = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
    at = datetime.fromisoformat(created)
    if at.tzinfo is None:
        raise ValueError("naive time")
    return at, uuid.UUID(pid)


async def page(
    session: AsyncSession,
    *,
    user_id: str | None,
    source: PayoutSource | None,
    statuses: Sequence[PayoutStatus] | None,
    created_before: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Payout]:
    """Newest first; keyset pagination on (created_at, id)."""
    stmt = select(Payout).options(selectinload(Payout.attempts))
    if user_id is not None:
        stmt = stmt.where(Payout.user_id == user_id)
    if source is not None:
        stmt = stmt.where(Payout.source == source)
    if statuses:
        stmt = stmt.where(Payout.status.in_(statuses))
    if created_before is not None:
        stmt = stmt.where(Payout.created_at < created_before)
    if after is not None:
        created, pid = after
        stmt = stmt.where(or_(Payout.created_at < created, and_(Payout.created_at == created, Payout.id < pid)))
    stmt = stmt.order_by(Payout.created_at.desc(), Payout.id.desc()).limit(limit)
    return (await session.execute(stmt)).scalars().all()


async def open_counts(session: AsyncSession, *, stuck_before: datetime) -> list[tuple[str, str, int, int]]:
    """(source, status, open payouts, of which stuck: created before ``stuck_before``)."""
    stmt = (
        select(
            Payout.source,
            Payout.status,
            func.count(),
            func.count().filter(Payout.created_at < stuck_before),
        )
        .where(Payout.status.in_((PayoutStatus.pending, PayoutStatus.processing)))
        .group_by(Payout.source, Payout.status)
    )
    return [(str(s), str(st), int(n), int(k)) for s, st, n, k in (await session.execute(stmt)).all()]


async def open_attempt_ids(session: AsyncSession, payout_id: uuid.UUID) -> list[uuid.UUID]:
    stmt = select(PayoutAttempt.id).where(PayoutAttempt.payout_id == payout_id, PayoutAttempt.status.in_(OPEN_ATTEMPT))
    return list((await session.execute(stmt)).scalars().all())


# ---- batches --------------------------------------------------------------------------------------


async def batch(
    session: AsyncSession, *, source: PayoutSource, reference: str, currency: str, now: datetime
) -> PayoutBatch:
    """The batch named ``reference`` (created on first use)."""
    await session.execute(
        insert(PayoutBatch)
        .values(id=uuid.uuid4(), source=source, reference=reference, currency=currency, created_at=now)
        .on_conflict_do_nothing(index_elements=[PayoutBatch.reference])
    )
    stmt = select(PayoutBatch).where(PayoutBatch.reference == reference).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one()


async def count_into_batch(session: AsyncSession, batch_id: uuid.UUID, amount_minor: int) -> None:
    await session.execute(
        update(PayoutBatch)
        .where(PayoutBatch.id == batch_id)
        .values(payouts_count=PayoutBatch.payouts_count + 1, total_minor=PayoutBatch.total_minor + amount_minor)
    )
