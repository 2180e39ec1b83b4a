"""Reading refunds: object-level access, one refund, pages of refunds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.auth import Principal, PrincipalKind
from payment_service.errors import Unprocessable
from payment_service.models.refund import Refund
from payment_service.refund import repository
from payment_service.refund.service.errors import RefundNotFound
from payment_service.refund.states import (
    RefundStatus,
)


def can_see(principal: Principal, refund: Refund) -> bool:
    """Object-level rule: users see the refunds of their own payments; services and admins all."""
    if principal.kind is PrincipalKind.user:
        return refund.payer_id == principal.subject
    return True


async def get(session: AsyncSession, *, principal: Principal, refund_id: uuid.UUID) -> Refund:
    """The refund if the principal may see it. Raises RefundNotFound (also for others' refunds)."""
    refund = await repository.get(session, refund_id)
    if refund is None or not can_see(principal, refund):
        raise RefundNotFound()
    return refund


async def list_refunds(
    session: AsyncSession,
    *,
    principal: Principal,
    payer_id: str | None = None,
    payment_id: uuid.UUID | None = None,
    status: RefundStatus | None = None,
    cursor: str | None = None,
    limit: int = 20,
    oldest_first: bool = False,
) -> tuple[Sequence[Refund], str | None]:
    """A page of refunds (newest first, or oldest first for the review queue). Users always get
    only their own. Raises Unprocessable for a bad cursor."""
    if principal.kind is PrincipalKind.user:
        payer_id = principal.subject
    try:
        after = repository.decode_cursor(cursor) if cursor else None
    except ValueError:
        raise Unprocessable("cursor is not valid", field="cursor") from None
    rows = await repository.page(
        session,
        payer_id=payer_id,
        payment_id=payment_id,
        status=status,
        after=after,
        limit=limit + 1,
        oldest_first=oldest_first,
    )
    items = rows[:limit]
    next_cursor = repository.encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return items, next_cursor
