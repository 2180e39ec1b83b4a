"""Asking for a refund: checks, the rules' decision, the reservation, and (once approved) the money."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.auth import Principal, PrincipalKind
from payment_service.db import checkpoint
from payment_service.kit import idempotency
from payment_service.kit.clock import Clock
from payment_service.kit.money import InvalidAmount, Money, MoneyValue, UnknownCurrency
from payment_service.models.payment import Payment, PaymentPurpose
from payment_service.models.refund import Refund
from payment_service.outbox import events
from payment_service.payment import service as payment_service
from payment_service.payment.states import PaymentStatus
from payment_service.playtime.ports import PlaytimePort, PlaytimeUnavailable
from payment_service.providers.ports import Capability
from payment_service.providers.registry import ProviderRegistry, UnknownProvider
from payment_service.refund import repository, rules
from payment_service.refund.rules import Finding, RefundFacts, RefundPolicy, Verdict
from payment_service.refund.schemas import RefundCreate
from payment_service.refund.service.approval import _approve
from payment_service.refund.service.basis import RefundBasis, basis_of
from payment_service.refund.service.errors import (
    InvalidRefundAmount,
    PartialRefundNotSupported,
    PaymentNotRefundable,
    RefundDestinationNotAllowed,
    RefundExceedsPayment,
    RefundPlaytimeExceeded,
    RefundWindowExpired,
)
from payment_service.refund.service.lifecycle import _emit
from payment_service.refund.service.provider import _execute
from payment_service.refund.states import (
    RefundDecision,
    RefundDestination,
    RefundStatus,
)

log = structlog.get_logger(__name__)


def _check_refundable(payment: Payment, principal: Principal, destination: RefundDestination) -> None:
    if payment.status is not PaymentStatus.succeeded or payment.captured_minor <= 0:
        raise PaymentNotRefundable(payment_status=str(payment.status))
    purpose = PaymentPurpose(payment.purpose)
    if purpose is PaymentPurpose.donation and principal.kind is PrincipalKind.user:
        raise PaymentNotRefundable("donations are final; support can refund one", purpose=str(purpose))
    if purpose is PaymentPurpose.wallet_top_up and destination is RefundDestination.wallet:
        raise RefundDestinationNotAllowed("a wallet top-up can only go back to where it came from")


def _parse_amount(value: MoneyValue, payment: Payment) -> Money:
    try:
        money = value.to_money()
    except (UnknownCurrency, InvalidAmount) as exc:
        raise InvalidRefundAmount(str(exc)) from None
    if money.currency != payment.currency:
        raise InvalidRefundAmount(f"the payment is in {payment.currency}", field="amount")
    if not money.is_positive:
        raise InvalidRefundAmount("amount must be positive", field="amount")
    return money


async def _playtime(port: PlaytimePort, user_id: str, game_ids: Iterable[str]) -> timedelta | None:
    """Total playtime in the games, or None when the platform cannot tell (never guessed)."""
    total = timedelta()
    for game_id in game_ids:
        try:
            total += await port.playtime(user_id=user_id, game_id=game_id)
        except PlaytimeUnavailable as exc:
            log.warning("playtime_unavailable", game_id=game_id, error=str(exc))
            return None
        except Exception:
            log.exception("playtime_port_crashed", game_id=game_id)
            return None
    return total


def _remaining(basis: RefundBasis, refunds: Sequence[Refund]) -> list[Money]:
    """What each source still holds of the payment: its share minus what refunds took or reserved."""
    taken: dict[str, int] = {}
    for r in refunds:
        if r.status in repository.TAKEN:
            for part in r.sources:
                taken[part["account"]] = taken.get(part["account"], 0) + int(part["amount_minor"])
    return [
        Money(max(share.amount_minor - taken.get(spec.code, 0), 0), share.currency) for spec, share in basis.sources
    ]


async def request(
    session: AsyncSession,
    *,
    principal: Principal,
    data: RefundCreate,
    claim: idempotency.Claim | None,
    providers: ProviderRegistry,
    playtime: PlaytimePort,
    policy: RefundPolicy,
    clock: Clock,
) -> Refund:
    """Ask for a refund of a payment: full (``amount`` omitted: what is left) or partial.

    A user's request is decided by ``rules.decide``: approved at once, queued for review
    (``pending_review``), or refused; services and admins are approved at once. An approved
    original-method refund is sent to the provider before returning (``succeeded``,
    ``processing`` when the provider works on it or must be retried, ``unknown`` when its answer
    was lost, ``failed`` when it refused); a wallet refund is ``succeeded`` at once.

    Raises PaymentNotFound (also for others' payments), PaymentNotRefundable,
    RefundDestinationNotAllowed, InvalidRefundAmount, RefundExceedsPayment,
    PartialRefundNotSupported, RefundWindowExpired, RefundPlaytimeExceeded,
    RefundSourceInsufficient.
    """
    if claim is not None and claim.resumed:
        existing = await repository.by_request_key(session, claim.id)
        if existing is not None:
            return existing  # an open outcome is the status sync's job from here

    payment = await payment_service.get(session, principal=principal, payment_id=data.payment_id)
    destination = RefundDestination(data.destination)
    _check_refundable(payment, principal, destination)
    asked = _parse_amount(data.amount, payment) if data.amount is not None else None
    by_user = principal.kind is PrincipalKind.user
    basis = await basis_of(session, payment)
    played: timedelta | None = None
    if by_user and basis.game_ids:
        await checkpoint(session)  # no transaction stays open while the platform answers
        played = await _playtime(playtime, payment.payer_id, basis.game_ids)

    locked = await payment_service.get_for_update(session, payment_id=payment.id)
    assert locked is not None
    payment = locked
    _check_refundable(payment, principal, destination)
    refunds = await repository.of_payment(session, payment.id)
    available = payment.captured_minor - sum(r.amount_minor for r in refunds if r.status in repository.TAKEN)
    amount = asked if asked is not None else Money(available, payment.currency)
    if not 0 < amount.amount_minor <= available:
        raise RefundExceedsPayment(
            available=MoneyValue.of(Money(max(available, 0), payment.currency)).model_dump(),
            requested=MoneyValue.of(amount).model_dump(),
        )
    if destination is RefundDestination.original_method:
        _check_partial(payment, amount, providers)

    now = clock.now()
    decision = rules.Decision(Verdict.approve)
    if by_user:
        recent = await repository.count_recent_of_other_payments(
            session, payer_id=payment.payer_id, payment_id=payment.id, since=now - policy.abuse_period
        )
        facts = RefundFacts(
            purchased_at=payment.succeeded_at or payment.created_at,
            requested_at=now,
            has_games=bool(basis.game_ids),
            playtime=played,
            recent_refunds=recent,
        )
        decision = rules.decide(facts, policy)
        if decision.verdict is Verdict.reject:
            if decision.rejected_for is Finding.playtime_exceeded:
                raise RefundPlaytimeExceeded(max_playtime_minutes=int(policy.max_playtime.total_seconds() // 60))
            raise RefundWindowExpired(window_days=policy.hard_window.days)

    parts = rules.allocate(amount, _remaining(basis, refunds))
    refund = Refund(
        id=uuid.uuid4(),
        payment_id=payment.id,
        payer_id=payment.payer_id,
        requested_by=principal.key,
        amount_minor=amount.amount_minor,
        currency=amount.currency,
        destination=destination,
        status=RefundStatus.pending_review,
        reason=data.reason,
        findings=[str(f) for f in decision.findings],
        playtime_minutes=int(played.total_seconds() // 60) if played is not None else None,
        provider=payment.provider if destination is RefundDestination.original_method else None,
        sources=[
            {"account": spec.code, "amount_minor": part.amount_minor}
            for (spec, _), part in zip(basis.sources, parts, strict=True)
            if part.is_positive
        ],
        request_key=claim.id if claim else None,
        created_at=now,
        updated_at=now,
    )
    await repository.add(session, refund)
    if decision.verdict is Verdict.review:
        await _emit(session, payment, refund, events.RefundRequested, now=now, findings=refund.findings)
        return refund

    refund.decision = RefundDecision.auto if by_user else RefundDecision(str(principal.kind))
    if principal.kind is PrincipalKind.admin:
        refund.reviewed_by, refund.reviewed_at = principal.key, now
    await _emit(
        session,
        payment,
        refund,
        events.RefundRequested,
        now=now,
        status=RefundStatus.processing if destination is RefundDestination.original_method else RefundStatus.succeeded,
    )
    await _approve(session, payment, refund, basis, now=now)
    if claim is not None:
        await idempotency.set_recovery_point(session, claim, "refund_recorded", now=now)
    if refund.destination is RefundDestination.original_method:
        await checkpoint(session)
        return await _execute(session, refund_id=refund.id, providers=providers, clock=clock)
    return refund


def _check_partial(payment: Payment, amount: Money, providers: ProviderRegistry) -> None:
    if amount.amount_minor == payment.captured_minor:
        return
    try:
        provider = providers.resolve(payment.provider or "")
    except UnknownProvider:
        return  # the call will fail definitely and say so
    if Capability.partial_refund not in provider.capabilities:
        raise PartialRefundNotSupported(provider=payment.provider)
