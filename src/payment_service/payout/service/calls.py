"""Calling payout providers: submitting attempts, the status sync, webhooks (record, commit, call, apply)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service import vault
from payment_service.config import PayoutSettings
from payment_service.db import checkpoint
from payment_service.models.payout import Payout, PayoutAttempt
from payment_service.payout import repository
from payment_service.payout.metrics import PAYOUT_ANOMALIES, PAYOUT_ATTEMPTS
from payment_service.payout.service.errors import (
    PayoutWebhookSignatureInvalid,
    PayoutWebhookVerificationUnavailable,
    UnknownPayoutProvider,
)
from payment_service.payout.service.lifecycle import _attempt_failed, _mark_unknown, apply_result
from payment_service.payout.service.payees import DetailsVault
from payment_service.payout.states import (
    PROVIDER_NOT_REACHED,
    PROVIDER_REJECTED,
    PROVIDER_UNAVAILABLE,
    TERMINAL_ATTEMPT,
    PayoutAttemptStatus,
    PayoutStatus,
)
from payment_service.providers.errors import (
    ProviderAmountMismatch,
    ProviderError,
    ProviderInvalidRequest,
    ProviderNotFound,
    ProviderSignatureInvalid,
    ProviderTimeout,
)
from payment_service.providers.payout_registry import PayoutRegistry
from payment_service.providers.ports import (
    PayoutCapability,
    PayoutDestination,
    PayoutEvent,
    PayoutRef,
    PayoutRequest,
    PayoutResult,
)
from payment_service.providers.registry import UnknownProvider, should_fail_over

log = structlog.get_logger(__name__)

SUBMIT_LEASE = timedelta(minutes=5)
"""A submitted attempt whose answer was never applied (crash mid-call) is sent again, with the same
idempotency key, after this long."""
REPLAY_WINDOW = timedelta(hours=23)
"""YooKassa replays a create under the same Idempotence-Key for 24 h: a lost answer is recovered by
repeating the create within this window; later the attempt stays unknown for an operator."""
NOT_REACHED_AFTER = timedelta(minutes=1)
VAULT_RETRY = timedelta(minutes=1)


# ---- the provider call --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outcome:
    result: PayoutResult | None = None
    unknown: Exception | None = None
    definite: ProviderError | None = None
    """Nothing was created at the provider."""
    rejected: ProviderError | None = None
    """The provider refused the request itself."""


async def _call_create(registry: PayoutRegistry, provider_name: str, request: PayoutRequest) -> _Outcome:
    try:
        provider = registry.resolve(provider_name)
        return _Outcome(result=await provider.create_transfer(request))
    except (ProviderTimeout, ProviderAmountMismatch) as exc:
        return _Outcome(unknown=exc)
    except ProviderError as exc:
        if should_fail_over(exc):
            return _Outcome(definite=exc)
        if isinstance(exc, ProviderInvalidRequest):
            return _Outcome(rejected=exc)
        return _Outcome(unknown=exc)
    except Exception as exc:  # an adapter bug: we cannot know whether money moved
        log.exception("payout_provider_call_crashed", provider=provider_name, attempt_id=request.idempotency_key)
        return _Outcome(unknown=exc)


def _request(payout: Payout, attempt: PayoutAttempt, destination: PayoutDestination) -> PayoutRequest:
    return PayoutRequest(
        amount_minor=payout.amount_minor,
        currency=payout.currency,
        destination=destination,
        description=payout.description,
        idempotency_key=str(attempt.id),
        metadata={"payout_id": str(payout.id)},
    )


async def _load(
    session: AsyncSession, payout_id: uuid.UUID, attempt_id: uuid.UUID, *, lock: bool = False
) -> tuple[Payout, PayoutAttempt]:
    payout = await repository.get(session, payout_id, lock=lock)
    assert payout is not None
    attempt = next(a for a in payout.attempts if a.id == attempt_id)
    return payout, attempt


async def submit(
    session: AsyncSession,
    *,
    payout_id: uuid.UUID,
    registry: PayoutRegistry,
    details_vault: DetailsVault,
    clock: Callable[[], datetime],
) -> Payout | None:
    """Make a pending payout's due attempt at its provider and apply the answer. Safe to run twice.

    A previous attempt that failed transiently gets a successor (new idempotency key, the best
    provider now); an attempt submitted before but never answered (a crash) is sent again with the
    same key. Commits: the attempt before the call, the answer after it.
    """
    settings = details_vault.settings.payouts
    now = clock()
    payout = await repository.get(session, payout_id, lock=True)
    if payout is None:
        return None
    if payout.status is not PayoutStatus.pending or (
        payout.next_attempt_at is not None and payout.next_attempt_at > now
    ):
        return payout
    attempt = payout.attempts[-1] if payout.attempts else None
    if attempt is None or attempt.status is PayoutAttemptStatus.failed:
        # A new attempt stays with the payout's provider: the hold credits that provider's payout account.
        attempt = PayoutAttempt(
            id=uuid.uuid4(),
            payout_id=payout.id,
            number=(attempt.number + 1) if attempt else 1,
            provider=payout.provider,
            status=PayoutAttemptStatus.created,
            created_at=now,
            updated_at=now,
        )
        payout.attempts_count += 1
        payout.attempts.append(attempt)
        await session.flush()
    elif attempt.status is not PayoutAttemptStatus.created:
        return payout  # the provider has it; the sync resolves it
    first_submission = attempt.submitted_at is None
    attempt.submitted_at = attempt.submitted_at or now
    attempt.updated_at = now
    payout.next_attempt_at = now + SUBMIT_LEASE
    payout.updated_at = now
    attempt_id, provider_name, ciphertext = attempt.id, attempt.provider, payout.details_ciphertext
    await checkpoint(session)  # the attempt exists (and is leased) before anything leaves

    try:
        destination = await details_vault.open(ciphertext)
    except vault.VaultError as exc:
        log.error("payout_details_open_failed", payout_id=str(payout_id), error=type(exc).__name__)
        payout, attempt = await _load(session, payout_id, attempt_id, lock=True)
        payout.next_attempt_at = clock() + VAULT_RETRY
        if first_submission and attempt.status is PayoutAttemptStatus.created:
            attempt.submitted_at = None  # nothing left: an operator may still cancel it
        return payout
    outcome = await _call_create(registry, provider_name, _request(payout, attempt, destination))
    payout, attempt = await _load(session, payout_id, attempt_id, lock=True)
    now = clock()
    if outcome.result is not None:
        PAYOUT_ATTEMPTS.labels(provider_name, f"answered_{outcome.result.status}").inc()
        await apply_result(session, payout=payout, attempt=attempt, result=outcome.result, settings=settings, now=now)
    elif outcome.unknown is not None:
        PAYOUT_ATTEMPTS.labels(provider_name, "unknown").inc()
        await _mark_unknown(session, payout, attempt, outcome.unknown, settings=settings, now=now)
    else:
        error = outcome.definite or outcome.rejected
        assert error is not None
        code = PROVIDER_UNAVAILABLE if outcome.definite is not None else PROVIDER_REJECTED
        PAYOUT_ATTEMPTS.labels(provider_name, code).inc()
        await _attempt_failed(session, payout, attempt, code=code, message=error.message, settings=settings, now=now)
    return payout


# ---- status sync (job) --------------------------------------------------------------------------


async def sync_attempt(
    session: AsyncSession,
    *,
    attempt_id: uuid.UUID,
    registry: PayoutRegistry,
    details_vault: DetailsVault,
    clock: Callable[[], datetime],
) -> PayoutAttemptStatus | None:
    """Ask the provider about one open attempt and apply the answer. Safe to run twice.

    Providers that can find a payout by our key are asked with ``get_status``; YooKassa, which
    cannot, gets the same create again (same key and body: it replays its first answer) within
    :data:`REPLAY_WINDOW`. An attempt the provider never received failed definitely (and is
    retried as a new attempt). Returns the attempt's status afterwards (None if it vanished).
    """
    settings = details_vault.settings.payouts
    attempt = await repository.attempt(session, attempt_id)
    if attempt is None:
        return None
    status = PayoutAttemptStatus(attempt.status)
    if status in TERMINAL_ATTEMPT or status is PayoutAttemptStatus.created:
        return status
    payout = await repository.get(session, attempt.payout_id)
    assert payout is not None
    now = clock()
    try:
        provider = registry.resolve(attempt.provider)
    except UnknownProvider:
        log.error("payout_sync_provider_missing", attempt_id=str(attempt_id), provider=attempt.provider)
        return status
    ref = PayoutRef(idempotency_key=str(attempt.id), provider_payout_id=attempt.provider_payout_id)
    replay = ref.provider_payout_id is None and PayoutCapability.status_by_idempotency_key not in provider.capabilities
    if replay and attempt.created_at < now - REPLAY_WINDOW:
        PAYOUT_ANOMALIES.labels(attempt.provider, "unresolvable").inc()
        log.error("payout_attempt_unresolvable", attempt_id=str(attempt_id), payout_id=str(payout.id))
        return status
    payout_id, ciphertext = payout.id, payout.details_ciphertext
    await session.commit()  # nothing is open while we wait for the provider
    try:
        if replay:
            destination = await details_vault.open(ciphertext)
            result = await provider.create_transfer(_request(payout, attempt, destination))
        else:
            result = await provider.get_status(ref)
    except ProviderNotFound as exc:
        payout, attempt = await _load(session, payout_id, attempt_id, lock=True)
        sent = attempt.submitted_at or attempt.created_at
        if sent < clock() - NOT_REACHED_AFTER and attempt.status not in TERMINAL_ATTEMPT:
            await _attempt_failed(
                session, payout, attempt, code=PROVIDER_NOT_REACHED, message=exc.message, settings=settings, now=clock()
            )
        return PayoutAttemptStatus(attempt.status)
    except (ProviderError, vault.VaultError) as exc:
        log.info("payout_sync_unresolved", attempt_id=str(attempt_id), error=type(exc).__name__)
        return status
    payout, attempt = await _load(session, payout_id, attempt_id, lock=True)
    await apply_result(session, payout=payout, attempt=attempt, result=result, settings=settings, now=clock())
    return PayoutAttemptStatus(attempt.status)


# ---- webhooks -----------------------------------------------------------------------------------


async def receive_webhook(
    session: AsyncSession,
    *,
    provider: str,
    body: bytes,
    headers: dict[str, str],
    remote_addr: str | None,
    registry: PayoutRegistry,
    settings: PayoutSettings,
    now: datetime,
) -> PayoutEvent:
    """Verify a payout webhook (the adapter re-fetches or checks the signature) and apply it through
    :func:`apply_result` at once — duplicates and out-of-order deliveries have no second effect.

    A webhook about a payout we do not know is acknowledged, logged and counted. Raises
    UnknownPayoutProvider (404), PayoutWebhookSignatureInvalid (401),
    PayoutWebhookVerificationUnavailable (503: the provider delivers it again).
    """
    try:
        adapter = registry.resolve(provider)
    except UnknownProvider:
        raise UnknownPayoutProvider() from None
    try:
        event = await adapter.parse_webhook(body, headers, remote_addr=remote_addr)
    except ProviderSignatureInvalid as exc:
        log.warning("payout_webhook_rejected", provider=provider, remote_addr=remote_addr, reason=exc.message)
        raise PayoutWebhookSignatureInvalid() from None
    except ProviderError as exc:
        log.warning("payout_webhook_verification_unavailable", provider=provider, error=exc.message)
        raise PayoutWebhookVerificationUnavailable(retry_after=30) from None
    attempt = None
    if event.payout.idempotency_key:
        try:
            attempt = await repository.attempt(session, uuid.UUID(event.payout.idempotency_key))
        except ValueError:
            attempt = None
    if attempt is None:
        attempt = await repository.attempt_by_provider_id(session, provider, event.provider_payout_id)
    if attempt is None or attempt.provider != provider:
        PAYOUT_ANOMALIES.labels(provider, "orphaned_webhook").inc()
        log.error("payout_webhook_for_unknown_payout", provider=provider, external_id=event.external_id)
        return event
    payout, attempt = await _load(session, attempt.payout_id, attempt.id, lock=True)
    await apply_result(session, payout=payout, attempt=attempt, result=event.payout, settings=settings, now=now)
    return event
