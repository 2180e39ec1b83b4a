"""Calling the provider for an approved refund and applying its answer: the call, the status sync
(job) and provider webhooks (record, commit, call, apply)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.db import checkpoint
from payment_service.kit.clock import Clock
from payment_service.models.payment import Payment
from payment_service.models.refund import Refund
from payment_service.payment.states import AttemptStatus
from payment_service.providers.errors import (
    ProviderAmountMismatch,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from payment_service.providers.ports import Capability, PaymentRef, RefundResult
from payment_service.providers.ports import RefundStatus as ProviderRefundStatus
from payment_service.providers.registry import ProviderRegistry, UnknownProvider
from payment_service.refund import repository
from payment_service.refund.service.lifecycle import _approved_at, _fail, _locked, _next_sync, _set, _succeed, _unknown
from payment_service.refund.states import (
    OPEN,
    TERMINAL,
    RefundStatus,
)

log = structlog.get_logger(__name__)


NOTHING_HAPPENED_AFTER = timedelta(minutes=2)
"""Sber: a refund the provider's total does not show this long after our last call never took
effect (every call has ended by then), so calling again cannot refund twice."""
MAX_REPLAY_AGE = timedelta(hours=20)
"""Replays stay inside the providers' idempotency windows (YooKassa keeps keys 24 h); an older
open refund is left to an operator instead of being called again."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one provider call (or look-up) told us."""

    result: RefundResult | None = None
    unknown: Exception | None = None
    """The call may or may not have refunded: resolve later."""
    retry: ProviderError | None = None
    """Nothing was done at the provider (unavailable, breaker open): call again later."""
    refused: ProviderError | None = None
    """The provider definitely will not refund this."""


def _payment_ref(payment: Payment) -> PaymentRef:
    attempt = next((a for a in payment.attempts if a.status is AttemptStatus.succeeded), payment.attempts[-1])
    return PaymentRef(
        idempotency_key=str(attempt.id), provider_payment_id=payment.provider_payment_id or attempt.provider_payment_id
    )


async def _call(providers: ProviderRegistry, provider_name: str, ref: PaymentRef, refund: Refund) -> _Outcome:
    try:
        provider = providers.resolve(provider_name)
        return _Outcome(
            result=await provider.refund(
                ref, amount_minor=refund.amount_minor, currency=refund.currency, idempotency_key=str(refund.id)
            )
        )
    except UnknownProvider as exc:
        return _Outcome(retry=exc)  # switched off in this process: nothing was sent
    except (ProviderTimeout, ProviderAmountMismatch) as exc:
        return _Outcome(unknown=exc)
    except ProviderUnavailable as exc:
        return _Outcome(retry=exc)
    except ProviderError as exc:
        return _Outcome(refused=exc)
    except Exception as exc:  # an adapter bug: we cannot know whether money moved
        log.exception("refund_call_crashed", provider=provider_name, refund_id=str(refund.id))
        return _Outcome(unknown=exc)


async def _execute(session: AsyncSession, *, refund_id: uuid.UUID, providers: ProviderRegistry, clock: Clock) -> Refund:
    """Call the provider for an approved refund (no transaction open meanwhile) and apply the answer."""
    payment, refund = await _locked(session, refund_id)
    if refund.status not in OPEN:
        return refund
    ref, provider_name = _payment_ref(payment), refund.provider or ""
    await checkpoint(session)  # nothing open during the call (fenced in a keyed request)
    outcome = await _call(providers, provider_name, ref, refund)
    payment, refund = await _locked(session, refund_id)
    refund.last_called_at = clock.now()
    await _apply(session, payment, refund, outcome, now=clock.now())
    return refund


async def _apply(session: AsyncSession, payment: Payment, refund: Refund, outcome: _Outcome, *, now: datetime) -> bool:
    """Apply what the provider said about a refund. Idempotent; ``payment`` must be locked."""
    if outcome.result is not None:
        result = outcome.result
        if (result.amount_minor, result.currency) != (refund.amount_minor, refund.currency):
            log.error(
                "refund_amount_mismatch",
                refund_id=str(refund.id),
                expected=refund.amount_minor,
                reported=result.amount_minor,
            )
            return await _unknown(refund, "amount_mismatch", "the provider reported another amount", now=now)
        if refund.provider_refund_id is None:
            refund.provider_refund_id = result.provider_refund_id
        refund.provider_status = str(result.status)
        if result.status is ProviderRefundStatus.succeeded:
            return await _succeed(session, payment, refund, now=now)
        if result.status is ProviderRefundStatus.failed:
            code = str(result.decline_code) if result.decline_code else "refund_failed"
            return await _fail(session, payment, refund, code=code, message="the provider refused the refund", now=now)
        if refund.status in TERMINAL:
            return False  # a delayed "pending" after the outcome: stale
        changed = await _set(refund, RefundStatus.processing, now=now)
        refund.next_sync_at = _next_sync(refund, now)
        return changed
    if outcome.unknown is not None:
        lost = outcome.unknown
        return await _unknown(refund, getattr(lost, "provider_code", None) or type(lost).__name__, str(lost), now=now)
    if outcome.retry is not None:
        # Nothing was done by THIS call; an earlier one may have been, so an unknown stays unknown.
        refund.error_code = (outcome.retry.provider_code or type(outcome.retry).__name__)[:64]
        refund.error_message = outcome.retry.message[:500]
        refund.next_sync_at = _next_sync(refund, now)
        refund.updated_at = now
        return False
    error = outcome.refused
    assert error is not None
    code = error.provider_code or type(error).__name__
    return await _fail(session, payment, refund, code=code, message=error.message, now=now)


async def sync(
    session: AsyncSession, *, refund_id: uuid.UUID, providers: ProviderRegistry, clock: Clock
) -> RefundStatus | None:
    """Resolve one open refund (``processing``/``unknown``). Safe to run twice.

    Idempotent providers are called again with the same key: the provider replays its answer,
    or makes the refund now if the first call never reached it. Providers without
    ``Capability.idempotent_refund`` (Sber) are asked for the payment's refunded total instead.
    Returns the refund's status afterwards (None if it does not exist).
    """
    refund = await repository.get(session, refund_id)
    if refund is None:
        return None
    if refund.status not in OPEN:
        return RefundStatus(refund.status)
    now = clock.now()
    try:
        replays = Capability.idempotent_refund in providers.resolve(refund.provider or "").capabilities
    except UnknownProvider:  # switched off in this process: nothing to ask, nothing to call
        refund.next_sync_at = _next_sync(refund, now)
        return RefundStatus(refund.status)
    if not replays:
        return await _sync_by_total(session, refund_id=refund_id, providers=providers, clock=clock)
    if _approved_at(refund) < now - MAX_REPLAY_AGE:
        refund.next_sync_at = None
        log.error("refund_needs_operator", refund_id=str(refund.id), provider=refund.provider, status=refund.status)
        return RefundStatus(refund.status)
    return RefundStatus((await _execute(session, refund_id=refund_id, providers=providers, clock=clock)).status)


async def _sync_by_total(
    session: AsyncSession, *, refund_id: uuid.UUID, providers: ProviderRegistry, clock: Clock
) -> RefundStatus:
    """Decide from the provider's refunded total: it shows exactly our open refunds (they all
    happened), or none of them (nothing happened: call again once no call can be in flight);
    anything else is left to an operator."""
    payment, refund = await _locked(session, refund_id)
    provider_name, ref = refund.provider or "", _payment_ref(payment)
    await session.commit()
    try:
        status = await providers.resolve(provider_name).get_status(ref)
    except ProviderError as exc:
        log.info("refund_sync_unresolved", refund_id=str(refund_id), error=type(exc).__name__)
        return RefundStatus(refund.status)
    payment, refund = await _locked(session, refund_id)
    if refund.status not in OPEN:
        return RefundStatus(refund.status)
    now = clock.now()
    mine = [r for r in await repository.of_payment(session, payment.id) if r.provider == provider_name]
    done = sum(r.amount_minor for r in mine if r.status is RefundStatus.succeeded)
    open_total = sum(r.amount_minor for r in mine if r.status in OPEN)
    shown = status.refunded_minor - done
    if shown == open_total:
        refund.provider_status = f"refunded_total:{status.refunded_minor}"
        await _succeed(session, payment, refund, now=now)
        return RefundStatus(refund.status)
    if shown == 0:
        if (refund.last_called_at or _approved_at(refund)) <= now - NOTHING_HAPPENED_AFTER:
            await session.commit()
            return RefundStatus((await _execute(session, refund_id=refund_id, providers=providers, clock=clock)).status)
        refund.next_sync_at = _next_sync(refund, now)
        return RefundStatus(refund.status)
    log.error(
        "refund_total_ambiguous",
        refund_id=str(refund.id),
        provider=provider_name,
        provider_refunded=status.refunded_minor,
        ours_succeeded=done,
        ours_open=open_total,
    )
    refund.next_sync_at = _next_sync(refund, now)
    return RefundStatus(refund.status)


async def apply_provider_refund(session: AsyncSession, *, provider: str, result: RefundResult, now: datetime) -> bool:
    """Apply a verified refund notification. Idempotent.

    Returns False when no refund of ours has this provider refund id (yet: our own answer may not
    be committed); the webhook inbox retries it a few times and then keeps it as orphaned.
    """
    found = await repository.by_provider_id(session, provider=provider, provider_refund_id=result.provider_refund_id)
    if found is None:
        return False
    payment, refund = await _locked(session, found.id)
    await _apply(session, payment, refund, _Outcome(result=result), now=now)
    return True
