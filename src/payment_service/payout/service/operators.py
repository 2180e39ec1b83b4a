"""Operators' actions on payouts (cancel, retry now) and the health gauges."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import PayoutSettings
from payment_service.models.payout import Payout
from payment_service.payout import repository
from payment_service.payout.metrics import PAYOUTS_OPEN, PAYOUTS_STUCK
from payment_service.payout.service.calls import submit, sync_attempt
from payment_service.payout.service.errors import PayoutNotCancelable, PayoutNotFound, PayoutNotRetryable
from payment_service.payout.service.lifecycle import _finish_failed
from payment_service.payout.service.payees import DetailsVault
from payment_service.payout.states import TERMINAL_PAYOUT, PayoutAttemptStatus, PayoutStatus
from payment_service.providers.payout_registry import PayoutRegistry

log = structlog.get_logger(__name__)

# ---- operators ----------------------------------------------------------------------------------


async def cancel(session: AsyncSession, *, payout_id: uuid.UUID, by: str, now: datetime) -> Payout:
    """Cancel a payout that no provider has: never submitted, or waiting for its next attempt.

    The hold is voided (the money is back on the balance) and ``payout.canceled`` emitted; the
    earning module hears it (a referral payout answers ``failed`` with ``canceled``). Raises
    PayoutNotFound, PayoutNotCancelable.
    """
    payout = await repository.get(session, payout_id, lock=True)
    if payout is None:
        raise PayoutNotFound()
    if payout.status is not PayoutStatus.pending:
        raise PayoutNotCancelable(payout_status=str(payout.status))
    last = payout.attempts[-1] if payout.attempts else None
    if last is not None and last.status is PayoutAttemptStatus.created:
        if last.submitted_at is not None:
            raise PayoutNotCancelable("the provider may have the payout already; wait for its outcome")
        last.status = PayoutAttemptStatus.failed
        last.failure_code = "canceled"
        last.updated_at = now
    log.info("payout_canceled", payout_id=str(payout.id), by=by)
    await _finish_failed(
        session, payout, code="canceled", message=f"canceled by {by}"[:500], now=now, status=PayoutStatus.canceled
    )
    return payout


async def retry(
    session: AsyncSession,
    *,
    payout_id: uuid.UUID,
    registry: PayoutRegistry,
    details_vault: DetailsVault,
    clock: Callable[[], datetime],
) -> Payout:
    """Operator's "try now": a pending payout makes its next attempt at once, a processing one asks
    its provider now. Raises PayoutNotFound, PayoutNotRetryable (finished payouts)."""
    payout = await repository.get(session, payout_id, lock=True)
    if payout is None:
        raise PayoutNotFound()
    if payout.status in TERMINAL_PAYOUT:
        raise PayoutNotRetryable(payout_status=str(payout.status))
    if payout.status is PayoutStatus.pending:
        payout.next_attempt_at = clock()
        await session.flush()
        found = await submit(session, payout_id=payout_id, registry=registry, details_vault=details_vault, clock=clock)
    else:
        for attempt_id in await repository.open_attempt_ids(session, payout_id):
            await sync_attempt(
                session, attempt_id=attempt_id, registry=registry, details_vault=details_vault, clock=clock
            )
        found = await repository.get(session, payout_id)
    assert found is not None
    return found


async def report_health(session: AsyncSession, *, settings: PayoutSettings, now: datetime) -> int:
    """Refresh the open/stuck gauges; returns how many payouts are stuck."""
    stuck_total = 0
    PAYOUTS_OPEN.clear()
    PAYOUTS_STUCK.clear()
    for source, status, open_count, stuck in await repository.open_counts(
        session, stuck_before=now - timedelta(minutes=settings.stuck_after_minutes)
    ):
        PAYOUTS_OPEN.labels(source, status).set(open_count)
        PAYOUTS_STUCK.labels(source, status).set(stuck)
        stuck_total += stuck
    if stuck_total:
        log.warning("payouts_stuck", count=stuck_total)
    return stuck_total
