"""Provider webhooks: verify the provider's proof, store once, apply in the worker.

* ``receive`` runs in the HTTP request: the adapter verifies the webhook (YooKassa: IP allowlist
  and re-fetch of the object; T-Bank: Token; Sber: checksum; mobile: HMAC) and parses it; the event
  is stored unique on (provider, external id) and the worker is woken. A forged webhook is a 401
  and is counted; a duplicate is acknowledged and ignored.
* ``process_received`` runs in the worker: it applies each stored payment event through
  ``payment.service.apply_provider_result`` — the same function as the synchronous path — so
  duplicates and out-of-order events have no second effect. Events for payments we do not know
  are kept as ``orphaned`` and reported, never dropped.
* refund events are applied through ``refund.service.apply_provider_refund`` (matched by the
  provider's refund id), with the same retry, failure and orphan bookkeeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.errors import NotFound, ServiceUnavailable, Unauthorized
from payment_service.models.payment import ProviderEvent as StoredEvent
from payment_service.models.payment import ProviderEventStatus
from payment_service.payment import service as payment_service
from payment_service.provider_event import repository
from payment_service.providers.cards import CardScheme
from payment_service.providers.errors import ProviderError, ProviderSignatureInvalid
from payment_service.providers.metrics import WEBHOOKS
from payment_service.providers.ports import (
    ActionType,
    CustomerAction,
    DeclineCode,
    EventKind,
    MaskedCard,
    ProviderEvent,
    ProviderResult,
    ProviderStatus,
    RefundResult,
)
from payment_service.providers.ports import RefundStatus as ProviderRefundStatus
from payment_service.providers.registry import ProviderRegistry, UnknownProvider
from payment_service.refund import service as refund_service

log = structlog.get_logger(__name__)

MAX_APPLY_ATTEMPTS = 10
"""After this many failed applications an event is marked failed for an operator (the status
sync still resolves its payment from the provider)."""


class UnknownWebhookProvider(NotFound):
    code = "unknown_provider"
    title = "No such payment provider"


class WebhookVerificationUnavailable(ServiceUnavailable):
    code = "webhook_verification_unavailable"
    title = "The webhook cannot be verified with the provider right now; deliver it again later"


class WebhookSignatureInvalid(Unauthorized):
    code = "webhook_signature_invalid"
    title = "The webhook could not be authenticated"


def summarize(result: ProviderResult) -> dict[str, Any]:
    """The facts of a provider result worth keeping (no raw payload, no personal data)."""
    return {
        "provider": result.provider,
        "provider_payment_id": result.provider_payment_id,
        "status": str(result.status),
        "amount_minor": result.amount_minor,
        "currency": result.currency,
        "captured_minor": result.captured_minor,
        "refunded_minor": result.refunded_minor,
        "decline_code": str(result.decline_code) if result.decline_code else None,
        "provider_status": result.provider_status,
        "fee_minor": result.fee_minor,
        "action": {k: (str(v) if k == "type" else v) for k, v in asdict(result.action).items()}
        if result.action
        else None,
        "card": {
            "last4": result.card.last4,
            "scheme": str(result.card.scheme),
            "first6": result.card.first6,
        }
        if result.card
        else None,
        "idempotency_key": result.idempotency_key,
    }


def restore(summary: Mapping[str, Any]) -> ProviderResult:
    """Rebuild the normalized result stored by :func:`summarize`."""
    action = summary.get("action")
    card = summary.get("card")
    return ProviderResult(
        provider=summary["provider"],
        provider_payment_id=summary["provider_payment_id"],
        status=ProviderStatus(summary["status"]),
        amount_minor=int(summary["amount_minor"]),
        currency=summary["currency"],
        captured_minor=int(summary.get("captured_minor") or 0),
        refunded_minor=int(summary.get("refunded_minor") or 0),
        decline_code=DeclineCode(summary["decline_code"]) if summary.get("decline_code") else None,
        provider_status=summary.get("provider_status"),
        fee_minor=summary.get("fee_minor"),
        action=CustomerAction(
            type=ActionType(action["type"]), url=action.get("url"), qr_payload=action.get("qr_payload")
        )
        if action
        else None,
        card=MaskedCard(last4=card["last4"], scheme=CardScheme(card["scheme"]), first6=card.get("first6"))
        if card
        else None,
        idempotency_key=summary.get("idempotency_key"),
    )


async def receive(
    session: AsyncSession,
    *,
    provider: str,
    body: bytes,
    headers: Mapping[str, str],
    remote_addr: str | None,
    query: str,
    providers: ProviderRegistry,
    now: datetime,
) -> tuple[ProviderEvent, bool]:
    """Verify and store one webhook. Returns the event and whether it was new.

    Raises UnknownWebhookProvider (404) and WebhookSignatureInvalid (401).
    """
    try:
        adapter = providers.resolve(provider)
    except UnknownProvider:
        WEBHOOKS.labels("unknown", "unknown_provider").inc()
        raise UnknownWebhookProvider() from None
    try:
        event = await adapter.parse_webhook(body, headers, remote_addr=remote_addr, query=query)
    except ProviderSignatureInvalid as exc:
        log.warning("webhook_rejected", provider=provider, remote_addr=remote_addr, reason=exc.message)
        raise WebhookSignatureInvalid() from None
    except ProviderError as exc:
        # Verification needs the provider (YooKassa: re-fetch the object) and it is unreachable or
        # its breaker is open: refuse with 503 so the provider delivers the notification again.
        WEBHOOKS.labels(provider, "verification_unavailable").inc()
        log.warning("webhook_verification_unavailable", provider=provider, error=exc.message)
        raise WebhookVerificationUnavailable(retry_after=30) from None
    summary: dict[str, Any] = {}
    if event.payment is not None:
        summary = summarize(event.payment)
    elif event.refund is not None:
        summary = {
            "provider_refund_id": event.refund.provider_refund_id,
            "status": str(event.refund.status),
            "amount_minor": event.refund.amount_minor,
            "currency": event.refund.currency,
        }
    stored = await repository.insert(
        session,
        provider=provider,
        external_id=event.external_id,
        kind=str(event.kind),
        event_type=event.event_type,
        provider_payment_id=event.provider_payment_id,
        attempt_id=event.idempotency_key,
        summary=summary,
        now=now,
    )
    WEBHOOKS.labels(provider, "stored" if stored else "duplicate").inc()
    return event, stored is not None


async def process_received(session: AsyncSession, *, now: datetime, limit: int = 100) -> int:
    """Apply stored payment events, then refund events (in this transaction), up to ``limit`` of
    each kind (a kind's backlog of events waiting to be retried never holds the other up).
    Returns how many were handled.

    Each event's attempt counter is written together with its outcome: one UPDATE per event (an
    earlier write would only be flushed before the savepoint for nothing; the run commits or rolls
    back as a whole)."""
    handled = 0
    for event in await repository.claim_received(session, kind=str(EventKind.payment), limit=limit):
        handled += await _process_payment_event(session, event, now=now)
    for event in await repository.claim_received(session, kind=str(EventKind.refund), limit=limit):
        handled += await _process_refund_event(session, event, now=now)
    return handled


async def _process_payment_event(session: AsyncSession, event: StoredEvent, *, now: datetime) -> int:
    attempts = event.attempts + 1  # read before the savepoint, written with the outcome
    attempt = None
    if event.attempt_id:
        try:
            attempt = await payment_service.find_attempt(session, attempt_id=uuid.UUID(event.attempt_id))
        except ValueError:
            attempt = None
    if attempt is None:
        attempt = await payment_service.find_attempt_by_provider_id(
            session, provider=event.provider, provider_payment_id=event.provider_payment_id
        )
    if attempt is None or not event.summary:
        event.attempts = attempts
        event.status = ProviderEventStatus.orphaned
        event.processed_at = now
        WEBHOOKS.labels(event.provider, "orphaned").inc()
        log.error(
            "webhook_for_unknown_payment",
            provider=event.provider,
            external_id=event.external_id,
            provider_payment_id=event.provider_payment_id,
        )
        return 0
    try:
        async with session.begin_nested():  # one bad event must not block the others
            await payment_service.apply_webhook(
                session,
                payment_id=attempt.payment_id,
                attempt_id=attempt.id,
                result=restore(event.summary),
                now=now,
            )
    except Exception as exc:
        _failed_once(event, exc, attempts)
        return 0
    event.attempts = attempts
    event.status = ProviderEventStatus.processed
    event.processed_at = now
    return 1


def _failed_once(event: StoredEvent, exc: Exception, attempts: int) -> None:
    """Record a failed application (its savepoint rolled back); failed for good after MAX_APPLY_ATTEMPTS."""
    event.attempts = attempts
    event.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if event.attempts >= MAX_APPLY_ATTEMPTS:
        event.status = ProviderEventStatus.failed
        WEBHOOKS.labels(event.provider, "apply_failed").inc()
    log.exception("webhook_apply_failed", provider=event.provider, external_id=event.external_id)


async def _process_refund_event(session: AsyncSession, event: StoredEvent, *, now: datetime) -> int:
    """Apply a stored refund event through ``refund.service`` (matched by the provider refund id).

    An event whose refund we cannot match yet stays ``received`` (our own answer from the provider
    may not be committed yet) and becomes ``orphaned`` after MAX_APPLY_ATTEMPTS runs; the refund
    status sync resolves the refund regardless.
    """
    attempts = event.attempts + 1  # written with the outcome: no UPDATE flushed before the savepoint
    try:
        result = RefundResult(
            provider=event.provider,
            provider_refund_id=str(event.summary["provider_refund_id"]),
            provider_payment_id=event.provider_payment_id,
            status=ProviderRefundStatus(event.summary["status"]),
            amount_minor=int(event.summary["amount_minor"]),
            currency=str(event.summary["currency"]),
        )
        async with session.begin_nested():
            found = await refund_service.apply_provider_refund(session, provider=event.provider, result=result, now=now)
    except Exception as exc:
        _failed_once(event, exc, attempts)
        return 0
    event.attempts = attempts
    if not found:
        if event.attempts >= MAX_APPLY_ATTEMPTS:
            event.status = ProviderEventStatus.orphaned
            event.processed_at = now
            WEBHOOKS.labels(event.provider, "orphaned").inc()
            log.error("webhook_for_unknown_refund", provider=event.provider, external_id=event.external_id)
        return 0
    event.status = ProviderEventStatus.processed
    event.processed_at = now
    return 1
