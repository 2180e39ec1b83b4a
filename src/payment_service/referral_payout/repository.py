"""All SQL for referral payout requests."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.models.payout import ReferralPayout


async def add(session: AsyncSession, row: ReferralPayout) -> None:
    session.add(row)
    await session.flush()


async def by_request_id(session: AsyncSession, request_id: str, *, lock: bool = False) -> ReferralPayout | None:
    stmt = (
        select(ReferralPayout).where(ReferralPayout.request_id == request_id).execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_payout_id(session: AsyncSession, payout_id: uuid.UUID, *, lock: bool = False) -> ReferralPayout | None:
    stmt = select(ReferralPayout).where(ReferralPayout.payout_id == payout_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()
