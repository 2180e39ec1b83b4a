"""An administrator's review of a refund waiting for it: approve or reject."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.auth import Principal
from payment_service.db import checkpoint
from payment_service.kit.clock import Clock
from payment_service.models.refund import Refund
from payment_service.outbox import events
from payment_service.providers.registry import ProviderRegistry
from payment_service.refund.service.approval import _approve
from payment_service.refund.service.basis import basis_of
from payment_service.refund.service.errors import RefundNotPendingReview
from payment_service.refund.service.lifecycle import _emit, _locked, _set
from payment_service.refund.service.provider import _execute
from payment_service.refund.states import (
    RefundDecision,
    RefundDestination,
    RefundStatus,
)


async def approve(
    session: AsyncSession,
    *,
    principal: Principal,
    refund_id: uuid.UUID,
    note: str | None,
    providers: ProviderRegistry,
    clock: Clock,
) -> Refund:
    """An administrator approves a refund waiting for review; it then proceeds like an approved
    request (provider call, or wallet credit). Records who and when.

    Raises RefundNotFound, RefundNotPendingReview, RefundSourceInsufficient.
    """
    payment, refund = await _locked(session, refund_id)
    if refund.status is not RefundStatus.pending_review:
        raise RefundNotPendingReview(refund_status=str(refund.status))
    now = clock.now()
    refund.decision = RefundDecision.admin
    refund.reviewed_by, refund.reviewed_at, refund.review_note = principal.key, now, note
    await _approve(session, payment, refund, await basis_of(session, payment), now=now)
    if refund.destination is RefundDestination.original_method:
        await checkpoint(session)
        return await _execute(session, refund_id=refund.id, providers=providers, clock=clock)
    return refund


async def reject(
    session: AsyncSession, *, principal: Principal, refund_id: uuid.UUID, reason: str, clock: Clock
) -> Refund:
    """An administrator rejects a refund waiting for review (the reservation is released).

    Raises RefundNotFound, RefundNotPendingReview.
    """
    payment, refund = await _locked(session, refund_id)
    if refund.status is not RefundStatus.pending_review:
        raise RefundNotPendingReview(refund_status=str(refund.status))
    now = clock.now()
    await _set(refund, RefundStatus.rejected, now=now)
    refund.reviewed_by, refund.reviewed_at, refund.review_note = principal.key, now, reason
    refund.finished_at = now
    await _emit(session, payment, refund, events.RefundRejected, now=now, reason=reason)
    return refund
