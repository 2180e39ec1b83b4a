"""All SQL for orders, their lines and wallet top-ups."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from payment_service.models.order import Order, WalletTopUp
from payment_service.order.states import OrderStatus, TopUpStatus


async def add(session: AsyncSession, *objects: Order | WalletTopUp) -> None:
    session.add_all(objects)
    await session.flush()


async def get(session: AsyncSession, order_id: uuid.UUID, *, lock: bool = False) -> Order | None:
    # populate_existing: a read after a checkpoint must see what was committed meanwhile.
    stmt = (
        select(Order)
        .where(Order.id == order_id)
        .options(selectinload(Order.lines))
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update(of=Order)
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_request_key(session: AsyncSession, request_key: uuid.UUID) -> Order | None:
    stmt = (
        select(Order)
        .where(Order.request_key == request_key)
        .options(selectinload(Order.lines))
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_payment(session: AsyncSession, payment_id: uuid.UUID) -> Order | None:
    stmt = select(Order).where(Order.payment_id == payment_id).options(selectinload(Order.lines))
    return (await session.execute(stmt)).scalars().first()


def encode_cursor(created_at: datetime, object_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{object_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raises ValueError for anything this API did not hand out."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        created, _, oid = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(oid)
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        raise ValueError("bad cursor") from exc


async def page(
    session: AsyncSession,
    *,
    buyer_id: str | None,
    status: OrderStatus | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Order]:
    """Newest first, ``limit`` rows after the cursor position."""
    stmt = select(Order).options(selectinload(Order.lines)).order_by(Order.created_at.desc(), Order.id.desc())
    if buyer_id is not None:
        stmt = stmt.where(Order.buyer_id == buyer_id)
    if status is not None:
        stmt = stmt.where(Order.status == status)
    if after is not None:
        created, oid = after
        stmt = stmt.where(or_(Order.created_at < created, and_(Order.created_at == created, Order.id < oid)))
    return (await session.execute(stmt.limit(limit))).scalars().all()


async def claim_expired(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[Order]:
    """Unpaid orders past their expiry, locked (others skip them)."""
    stmt = (
        select(Order)
        .where(Order.status == OrderStatus.pending, Order.expires_at <= now)
        .order_by(Order.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .options(selectinload(Order.lines))
    )
    return (await session.execute(stmt)).scalars().all()


# ---- wallet top-ups -----------------------------------------------------------------------------


async def get_top_up(session: AsyncSession, top_up_id: uuid.UUID, *, lock: bool = False) -> WalletTopUp | None:
    stmt = select(WalletTopUp).where(WalletTopUp.id == top_up_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def top_up_by_request_key(session: AsyncSession, request_key: uuid.UUID) -> WalletTopUp | None:
    stmt = select(WalletTopUp).where(WalletTopUp.request_key == request_key)
    return (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()


async def open_top_ups_minor(session: AsyncSession, *, user_id: str, currency: str) -> int:
    """Sum of the user's top-ups whose payment is not finished (counted against the limits)."""
    stmt = select(func.coalesce(func.sum(WalletTopUp.amount_minor), 0)).where(
        WalletTopUp.user_id == user_id, WalletTopUp.currency == currency, WalletTopUp.status == TopUpStatus.pending
    )
    return int((await session.execute(stmt)).scalar_one())
