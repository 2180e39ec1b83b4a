"""Applying what providers report: attempt and payout statuses, ledger post/void, events, hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import PayoutSettings
from payment_service.ledger import service as ledger_service
from payment_service.models.payout import Payout, PayoutAttempt, PayoutSource
from payment_service.outbox import events
from payment_service.outbox import service as outbox_service
from payment_service.payout.metrics import PAYOUT_ANOMALIES, PAYOUT_FAILURES, PAYOUT_STATUS
from payment_service.payout.service.texts import notification_text
from payment_service.payout.states import (
    TERMINAL_PAYOUT,
    IllegalTransition,
    PayoutAttemptStatus,
    PayoutStatus,
    advance_attempt,
    advance_payout,
    is_stale,
    is_transient,
    retry_delay,
)
from payment_service.providers.ports import PayoutResult, ProviderPayoutStatus

log = structlog.get_logger(__name__)

# ---- hooks of the earning modules ---------------------------------------------------------------

FinishHook = Callable[[AsyncSession, Payout, datetime], Awaitable[None]]
_HOOKS: dict[PayoutSource, list[FinishHook]] = {}


def on_finished(source: PayoutSource, hook: FinishHook) -> None:
    """Call ``hook(session, payout, now)`` when a payout of ``source`` succeeds, fails or is canceled.

    Runs in the transaction that records the outcome; must be idempotent (it runs once per payout,
    but a failed transaction runs it again on retry).
    """
    if hook not in _HOOKS.setdefault(source, []):
        _HOOKS[source].append(hook)


# ---- applying what providers report -------------------------------------------------------------

_ATTEMPT_FOR = {
    ProviderPayoutStatus.pending: PayoutAttemptStatus.pending,
    ProviderPayoutStatus.succeeded: PayoutAttemptStatus.succeeded,
    ProviderPayoutStatus.failed: PayoutAttemptStatus.failed,
}


def _sync_delay(attempt: PayoutAttempt, settings: PayoutSettings) -> timedelta:
    backoff = settings.sync_backoff_seconds or [60.0]
    return timedelta(seconds=backoff[min(attempt.sync_count, len(backoff) - 1)])


async def apply_result(
    session: AsyncSession,
    *,
    payout: Payout,
    attempt: PayoutAttempt,
    result: PayoutResult,
    settings: PayoutSettings,
    now: datetime,
) -> None:
    """Apply a provider's report about ``attempt`` (payout row locked by the caller). Idempotent.

    A report behind what we know is ignored (a late synchronous answer after the webhook); a
    contradiction of a final status is refused, logged and counted, never applied.
    """
    if (result.amount_minor, result.currency) != (payout.amount_minor, payout.currency):
        PAYOUT_ANOMALIES.labels(attempt.provider, "amount_mismatch").inc()
        log.error(
            "payout_amount_mismatch",
            payout_id=str(payout.id),
            reported=result.amount_minor,
            expected=payout.amount_minor,
        )
        await _mark_unknown(session, payout, attempt, ValueError("amount mismatch"), settings=settings, now=now)
        return
    if attempt.provider_payout_id is None and result.provider_payout_id:
        attempt.provider_payout_id = result.provider_payout_id
    if payout.attempts and payout.attempts[-1].id == attempt.id and attempt.provider_payout_id:
        payout.provider_payout_id = attempt.provider_payout_id
    attempt.provider_status = result.provider_status
    attempt.updated_at = now
    target = _ATTEMPT_FOR[result.status]
    current = PayoutAttemptStatus(attempt.status)
    if is_stale(current, target):
        return
    try:
        changed = advance_attempt(current, target)
    except IllegalTransition:
        PAYOUT_ANOMALIES.labels(attempt.provider, "contradiction").inc()
        log.error(
            "payout_status_contradiction",
            payout_id=str(payout.id),
            attempt_id=str(attempt.id),
            current=str(current),
            reported=str(target),
        )
        return
    if not changed:
        return
    attempt.status = target
    if target is PayoutAttemptStatus.pending:
        attempt.next_sync_at = now + _sync_delay(attempt, settings)
        await _set_status(session, payout, PayoutStatus.processing, now=now)
    elif target is PayoutAttemptStatus.succeeded:
        attempt.next_sync_at = None
        await _finish_succeeded(session, payout, now=now)
    else:
        attempt.next_sync_at = None
        code = str(result.failure_code) if result.failure_code else "unknown"
        attempt.failure_code = code
        await _after_attempt_failed(
            session, payout, attempt, code=code, message=result.provider_status, settings=settings, now=now
        )


async def _mark_unknown(
    session: AsyncSession,
    payout: Payout,
    attempt: PayoutAttempt,
    error: Exception,
    *,
    settings: PayoutSettings,
    now: datetime,
) -> None:
    if attempt.status is PayoutAttemptStatus.created:
        attempt.status = PayoutAttemptStatus.unknown
    attempt.error_code = (getattr(error, "provider_code", None) or type(error).__name__)[:64]
    attempt.error_message = str(error)[:500]
    attempt.next_sync_at = now + _sync_delay(attempt, settings)
    attempt.updated_at = now
    await _set_status(session, payout, PayoutStatus.processing, now=now)
    log.warning(
        "payout_attempt_outcome_unknown", payout_id=str(payout.id), attempt_id=str(attempt.id), error=attempt.error_code
    )


async def _attempt_failed(
    session: AsyncSession,
    payout: Payout,
    attempt: PayoutAttempt,
    *,
    code: str,
    message: str | None,
    settings: PayoutSettings,
    now: datetime,
) -> None:
    if advance_attempt(PayoutAttemptStatus(attempt.status), PayoutAttemptStatus.failed):
        attempt.status = PayoutAttemptStatus.failed
    attempt.failure_code = code[:64]
    attempt.error_message = (message or "")[:500] or None
    attempt.next_sync_at = None
    attempt.updated_at = now
    await _after_attempt_failed(session, payout, attempt, code=code, message=message, settings=settings, now=now)


async def _after_attempt_failed(
    session: AsyncSession,
    payout: Payout,
    attempt: PayoutAttempt,
    *,
    code: str,
    message: str | None,
    settings: PayoutSettings,
    now: datetime,
) -> None:
    """A transient failure schedules a new attempt (backoff); anything else fails the payout."""
    if payout.status in TERMINAL_PAYOUT or payout.attempts[-1].id != attempt.id:
        return
    delay = (
        retry_delay(payout.attempts_count, max_attempts=settings.max_attempts, backoff=settings.retry_backoff_seconds)
        if is_transient(code)
        else None
    )
    if delay is not None:
        payout.failure_code = code[:64]
        payout.failure_message = (message or "")[:500] or None
        payout.next_attempt_at = now + delay
        await _set_status(session, payout, PayoutStatus.pending, now=now)
        log.info("payout_retry_scheduled", payout_id=str(payout.id), reason=code, at=payout.next_attempt_at.isoformat())
        return
    await _finish_failed(session, payout, code=code, message=message, now=now)


async def _finish_succeeded(session: AsyncSession, payout: Payout, *, now: datetime) -> None:
    if payout.status in TERMINAL_PAYOUT:
        if payout.status is not PayoutStatus.succeeded:
            # cannot happen by construction (a new attempt only after a definite failure): tell a human
            PAYOUT_ANOMALIES.labels(payout.provider, "paid_after_failure").inc()
            log.critical("payout_paid_after_failure", payout_id=str(payout.id), status=str(payout.status))
        return
    assert payout.ledger_hold_id is not None
    await ledger_service.post_hold(
        session, hold_id=payout.ledger_hold_id, idempotency_key=f"{_reference(payout)}:post", now=now
    )
    payout.succeeded_at = now
    payout.finished_at = now
    payout.next_attempt_at = None
    payout.failure_code = None
    payout.failure_message = None
    await _set_status(session, payout, PayoutStatus.succeeded, now=now)


async def _finish_failed(
    session: AsyncSession,
    payout: Payout,
    *,
    code: str,
    message: str | None,
    now: datetime,
    status: PayoutStatus = PayoutStatus.failed,
) -> None:
    if payout.status in TERMINAL_PAYOUT:
        return
    assert payout.ledger_hold_id is not None
    await ledger_service.void_hold(
        session,
        hold_id=payout.ledger_hold_id,
        idempotency_key=f"{_reference(payout)}:void",
        now=now,
        reason=f"payout_{status}",
    )
    payout.failure_code = code[:64]
    payout.failure_message = (message or "")[:500] or None
    payout.finished_at = now
    payout.next_attempt_at = None
    PAYOUT_FAILURES.labels(str(payout.source), code[:64]).inc()
    await _set_status(session, payout, status, now=now)


async def _set_status(session: AsyncSession, payout: Payout, target: PayoutStatus, *, now: datetime) -> bool:
    if not advance_payout(PayoutStatus(payout.status), target):
        return False
    payout.status = target
    payout.updated_at = now
    await session.flush()
    if target is PayoutStatus.processing or target is PayoutStatus.pending:
        return True
    await _emit(session, payout, now=now)
    for hook in _HOOKS.get(PayoutSource(payout.source), ()):
        await hook(session, payout, now)
    return True


_EVENT_FOR = {
    PayoutStatus.pending: events.PayoutCreated,
    PayoutStatus.succeeded: events.PayoutSucceeded,
    PayoutStatus.failed: events.PayoutFailed,
    PayoutStatus.canceled: events.PayoutCanceled,
}


async def _emit(session: AsyncSession, payout: Payout, *, now: datetime) -> None:
    status = PayoutStatus(payout.status)
    PAYOUT_STATUS.labels(str(status), str(payout.source), payout.provider).inc()
    await outbox_service.emit(
        session,
        _EVENT_FOR[status](
            payout_id=payout.id,
            user_id=payout.user_id,
            source=str(payout.source),
            reference=payout.reference,
            amount_minor=payout.amount_minor,
            currency=payout.currency,
            method=str(payout.method),
            provider=payout.provider,
            status=str(status),
            failure_code=payout.failure_code if status is not PayoutStatus.succeeded else None,
            notification_text=notification_text(payout),
            occurred_at=now,
        ),
        key=payout.user_id,
    )


def _reference(payout: Payout) -> str:
    return f"payout:{payout.id}"
