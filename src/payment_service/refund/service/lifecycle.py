"""Status changes of a refund (succeed, fail, unknown), the lock they happen under, and their events."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.kit.money import Money
from payment_service.ledger import service as ledger_service
from payment_service.models.payment import Payment
from payment_service.models.refund import Refund
from payment_service.outbox import events
from payment_service.outbox import service as outbox_service
from payment_service.payment import service as payment_service
from payment_service.refund import repository, texts
from payment_service.refund.service.errors import RefundNotFound
from payment_service.refund.states import (
    IllegalRefundTransition,
    RefundDestination,
    RefundStatus,
    advance,
)

log = structlog.get_logger(__name__)


SYNC_BACKOFF = (
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
)
"""When the status sync looks at an open refund again (the first step leaves the request's own
provider call time to finish)."""


def _reference(refund: Refund) -> str:
    return f"refund:{refund.id}"


async def _locked(session: AsyncSession, refund_id: uuid.UUID) -> tuple[Payment, Refund]:
    """The refund and its payment, the payment row locked (every refund change happens under it)."""
    refund = await repository.get(session, refund_id)
    if refund is None:
        raise RefundNotFound()
    payment = await payment_service.get_for_update(session, payment_id=refund.payment_id)
    assert payment is not None
    refund = await repository.get(session, refund_id)
    assert refund is not None
    return payment, refund


def _approved_at(refund: Refund) -> datetime:
    """When the refund was approved (its first provider call follows at once)."""
    return refund.reviewed_at or refund.created_at


def _next_sync(refund: Refund, now: datetime) -> datetime:
    return now + SYNC_BACKOFF[min(refund.sync_count, len(SYNC_BACKOFF) - 1)]


async def _set(refund: Refund, target: RefundStatus, *, now: datetime) -> bool:
    try:
        changed = advance(RefundStatus(refund.status), target)
    except IllegalRefundTransition as exc:
        log.error("refund_contradiction", refund_id=str(refund.id), error=str(exc))
        return False
    if changed:
        refund.status = target
        refund.updated_at = now
    return changed


async def _unknown(refund: Refund, code: str, message: str, *, now: datetime) -> bool:
    changed = await _set(refund, RefundStatus.unknown, now=now)
    refund.error_code = code[:64]
    refund.error_message = message[:500]
    refund.next_sync_at = _next_sync(refund, now)
    log.warning("refund_outcome_unknown", refund_id=str(refund.id), provider=refund.provider, error=code)
    return changed


async def _succeed(session: AsyncSession, payment: Payment, refund: Refund, *, now: datetime) -> bool:
    if refund.status is RefundStatus.succeeded or not await _set(refund, RefundStatus.succeeded, now=now):
        return False
    if refund.ledger_hold_id is not None:
        await ledger_service.post_hold(
            session,
            hold_id=refund.ledger_hold_id,
            idempotency_key=f"{_reference(refund)}:post",
            now=now,
            reason="refund",
        )
    payment.refunded_minor += refund.amount_minor
    payment.updated_at = now
    refund.succeeded_at = refund.finished_at = now
    refund.next_sync_at = None
    refund.error_code = refund.error_message = None
    await _emit(session, payment, refund, events.RefundSucceeded, now=now)
    await outbox_service.emit(
        session,
        events.PaymentRefunded(
            payment_id=payment.id,
            refund_id=refund.id,
            payer_id=payment.payer_id,
            purpose=str(payment.purpose),
            order_reference=payment.order_reference,
            destination=str(refund.destination),
            amount_minor=refund.amount_minor,
            refunded_minor=payment.refunded_minor,
            captured_minor=payment.captured_minor,
            fully_refunded=payment.refunded_minor == payment.captured_minor,
            currency=payment.currency,
            occurred_at=now,
        ),
        key=payment.id,
    )
    return True


async def _fail(
    session: AsyncSession, payment: Payment, refund: Refund, *, code: str, message: str, now: datetime
) -> bool:
    if not await _set(refund, RefundStatus.failed, now=now):
        return False
    if refund.ledger_hold_id is not None:
        await ledger_service.void_hold(
            session,
            hold_id=refund.ledger_hold_id,
            idempotency_key=f"{_reference(refund)}:void",
            now=now,
            reason="refund_released",
        )
    refund.error_code = code[:64]
    refund.error_message = message[:500]
    refund.finished_at = now
    refund.next_sync_at = None
    log.warning("refund_failed", refund_id=str(refund.id), provider=refund.provider, error=code)
    await _emit(session, payment, refund, events.RefundFailed, now=now, error_code=refund.error_code)
    return True


async def _emit(
    session: AsyncSession,
    payment: Payment,
    refund: Refund,
    event_cls: type[events.Event],
    *,
    now: datetime,
    status: RefundStatus | None = None,
    **extra: object,
) -> None:
    shown = status or RefundStatus(refund.status)
    await outbox_service.emit(
        session,
        event_cls.model_validate(
            {
                "refund_id": refund.id,
                "payment_id": payment.id,
                "payer_id": payment.payer_id,
                "order_reference": payment.order_reference,
                "amount_minor": refund.amount_minor,
                "currency": refund.currency,
                "destination": str(refund.destination),
                "status": str(shown),
                "notification_text": texts.notification(
                    event_cls.type,
                    Money(refund.amount_minor, refund.currency),
                    RefundDestination(refund.destination),
                    shown,
                ),
                "occurred_at": now,
                **extra,
            }
        ),
        key=refund.id,
    )


def next_sync_delay(sync_count: int) -> timedelta:
    return SYNC_BACKOFF[min(sync_count, len(SYNC_BACKOFF) - 1)]
