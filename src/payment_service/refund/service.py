"""Refunds: ask, decide, record, commit, call, apply — to the original payment method or the wallet.

Invariants this module keeps:

* **Never more than was captured.** A request locks the payment row (``payment_service.
  get_for_update``) and counts every refund that is pending review, in flight, unknown or
  succeeded as taken; ``payments.refunded_minor`` (succeeded refunds only) moves under the same
  lock, and a check constraint backs it.
* **Record, commit, call, apply** (like payments): an approved original-method refund is
  committed with a ledger hold (sources → provider clearing) *before* the provider is called with
  the refund id as idempotency key; no transaction is open during the call; the answer is applied
  in a new transaction. A lost answer leaves the refund ``unknown`` and :func:`sync` resolves it
  — by replaying the call under the same key, or, for providers whose refund call is not
  idempotent, from the provider's refunded total. Nothing is guessed, nothing refunded twice.
* **Money moves only through the ledger**, with keys derived from the refund id: the hold is
  posted when the provider confirms and voided when it refuses; a wallet refund is one transfer
  (sources → ``user:<payer>:wallet``) at approval. Sources default to the account the payment
  credited; a purpose's module may say otherwise (:func:`register_basis`), and each refund takes
  back from each source in proportion to what it still holds (``rules.allocate``).
* Every status change goes through ``states.py`` and writes an outbox event in the same
  transaction (``refund.*``; ``payment.refunded`` when money went back).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.auth import Principal, PrincipalKind
from payment_service.config import RefundSettings
from payment_service.db import checkpoint
from payment_service.errors import Conflict, NotFound, Unprocessable
from payment_service.kit import idempotency
from payment_service.kit.clock import Clock
from payment_service.kit.money import InvalidAmount, Money, MoneyValue, UnknownCurrency
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.accounts import AccountSpec
from payment_service.ledger.schemas import Posting
from payment_service.models.payment import Payment, PaymentPurpose
from payment_service.models.refund import Refund
from payment_service.outbox import events
from payment_service.outbox import service as outbox_service
from payment_service.payment import service as payment_service
from payment_service.payment.states import AttemptStatus, PaymentStatus
from payment_service.playtime.ports import PlaytimePort, PlaytimeUnavailable
from payment_service.providers.errors import (
    ProviderAmountMismatch,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from payment_service.providers.ports import Capability, PaymentRef, RefundResult
from payment_service.providers.ports import RefundStatus as ProviderRefundStatus
from payment_service.providers.registry import ProviderRegistry, UnknownProvider
from payment_service.refund import repository, rules, texts
from payment_service.refund.rules import Finding, OverLimit, RefundFacts, RefundPolicy, Verdict
from payment_service.refund.schemas import RefundCreate
from payment_service.refund.states import (
    OPEN,
    TERMINAL,
    IllegalRefundTransition,
    RefundDecision,
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
NOT_IDEMPOTENT_REFUNDS = frozenset({"sber"})
"""Providers whose refund call takes no idempotency key (Sber ``refund.do``): never replayed;
the sync reads the provider's refunded total instead. (A ``Capability`` in ``providers/ports.py``
would say this better; until then it lives here.)"""
NOTHING_HAPPENED_AFTER = timedelta(minutes=2)
"""Sber: a refund the provider's total does not show this long after our last call never took
effect (every call has ended by then), so calling again cannot refund twice."""
MAX_REPLAY_AGE = timedelta(hours=20)
"""Replays stay inside the providers' idempotency windows (YooKassa keeps keys 24 h); an older
open refund is left to an operator instead of being called again."""
GAME_ID_KEY = "game_id"
"""Payment metadata key naming the purchased game (the default basis reads playtime for it)."""


# ---- errors -------------------------------------------------------------------------------------


class RefundNotFound(NotFound):
    code = "refund_not_found"
    title = "Refund not found"


class PaymentNotRefundable(Conflict):
    code = "payment_not_refundable"
    title = "Only a succeeded (captured) payment can be refunded"


class RefundExceedsPayment(Conflict):
    code = "refund_exceeds_payment"
    title = "The refund exceeds what is left of the payment (captured minus refunded and reserved)"


class InvalidRefundAmount(Unprocessable):
    code = "invalid_refund_amount"
    title = "The amount is not valid for the payment's currency"


class RefundWindowExpired(Conflict):
    code = "refund_window_expired"
    title = "The purchase is too old to be refunded"


class RefundPlaytimeExceeded(Conflict):
    code = "refund_playtime_exceeded"
    title = "The purchased game was played for too long to be refunded"


class RefundDestinationNotAllowed(Conflict):
    code = "refund_destination_not_allowed"
    title = "This payment cannot be refunded to that destination"


class PartialRefundNotSupported(Unprocessable):
    code = "partial_refund_not_supported"
    title = "The payment's provider refunds only the whole amount; refund it all or to the wallet"


class RefundSourceInsufficient(Conflict):
    code = "refund_source_insufficient"
    title = "The money of this payment was already spent or paid out and cannot be taken back"


class RefundNotPendingReview(Conflict):
    code = "refund_not_pending_review"
    title = "Only a refund waiting for review can be approved or rejected"


# ---- what a payment's money became ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundBasis:
    """Where a payment's money went (``sources``: account and amount, summing to the captured
    amount) and which games it bought (whose playtime the rules look at)."""

    sources: tuple[tuple[AccountSpec, Money], ...]
    game_ids: tuple[str, ...] = ()


BasisResolver = Callable[[AsyncSession, Payment], Awaitable[RefundBasis]]
"""``resolver(session, payment)``: the basis of a payment of one purpose."""

_RESOLVERS: dict[PaymentPurpose, BasisResolver] = {}


def register_basis(purpose: PaymentPurpose, resolver: BasisResolver) -> None:
    """Let the module that owns ``purpose`` say where its payments' money went.

    E.g. the order module, once it distributes order clearing to developer, fee and VAT accounts,
    returns those accounts with their shares: refunds then take money back from each of them in
    proportion. Without a resolver the whole captured amount is taken back from the account the
    payment credited (``payment_service.credited_account``) and the game is
    ``payment.metadata["game_id"]``.
    """
    _RESOLVERS[purpose] = resolver


def unregister_basis(purpose: PaymentPurpose) -> None:
    """Back to the default basis for ``purpose`` (tests)."""
    _RESOLVERS.pop(purpose, None)


async def basis_of(session: AsyncSession, payment: Payment) -> RefundBasis:
    resolver = _RESOLVERS.get(PaymentPurpose(payment.purpose))
    if resolver is None:
        game = payment.metadata_.get(GAME_ID_KEY)
        return RefundBasis(
            sources=((payment_service.credited_account(payment), Money(payment.captured_minor, payment.currency)),),
            game_ids=(game,) if game else (),
        )
    basis = await resolver(session, payment)
    if sum(m.amount_minor for _, m in basis.sources) != payment.captured_minor or any(
        m.currency != payment.currency for _, m in basis.sources
    ):
        raise RuntimeError(f"refund basis of payment {payment.id} does not add up to its captured amount")
    return basis


def policy_from(settings: RefundSettings) -> RefundPolicy:
    return RefundPolicy(
        auto_window=timedelta(days=settings.auto_window_days),
        max_playtime=timedelta(minutes=settings.max_playtime_minutes),
        abuse_period=timedelta(days=settings.abuse_period_days),
        abuse_max_refunds=settings.abuse_max_refunds,
        hard_window=timedelta(days=settings.hard_window_days),
        over_playtime=OverLimit(settings.over_playtime),
    )


# ---- reading ------------------------------------------------------------------------------------


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


# ---- requesting ---------------------------------------------------------------------------------


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
        await idempotency.set_recovery_point(session, claim, "refund_recorded")
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


def _specs(basis: RefundBasis, refund: Refund) -> list[tuple[AccountSpec, Money]]:
    by_code = {spec.code: spec for spec, _ in basis.sources}
    legs = []
    for part in refund.sources:
        spec = by_code.get(part["account"])
        if spec is None:
            raise RuntimeError(f"refund {refund.id}: source {part['account']} is not in the payment's basis")
        legs.append((spec, Money(int(part["amount_minor"]), refund.currency)))
    return legs


def _reference(refund: Refund) -> str:
    return f"refund:{refund.id}"


async def _approve(
    session: AsyncSession, payment: Payment, refund: Refund, basis: RefundBasis, *, now: datetime
) -> None:
    """Move an approved refund's money: hold it for the provider, or credit the wallet now."""
    legs = _specs(basis, refund)
    metadata = {"payment_id": str(payment.id), "refund_id": str(refund.id)}
    try:
        if refund.destination is RefundDestination.wallet:
            wallet = accounts.user_wallet(payment.payer_id, payment.currency)
            await ledger_service.transfer(
                session,
                postings=[Posting(spec, wallet, part) for spec, part in legs],
                idempotency_key=f"{_reference(refund)}:wallet",
                reference=_reference(refund),
                reason="refund",
                now=now,
                metadata=metadata,
            )
            await _succeed(session, payment, refund, now=now)
            return
        clearing = accounts.provider_clearing(refund.provider or "", payment.currency)
        hold = await ledger_service.hold(
            session,
            postings=[Posting(spec, clearing, part) for spec, part in legs],
            idempotency_key=f"{_reference(refund)}:hold",
            reference=_reference(refund),
            reason="refund_reserved",
            now=now,
            metadata=metadata,
        )
    except ledger_service.InsufficientFunds as exc:
        raise RefundSourceInsufficient(account=exc.account_code) from None
    refund.ledger_hold_id = hold.id
    await _set(refund, RefundStatus.processing, now=now)
    refund.next_sync_at = now + SYNC_BACKOFF[0]


# ---- calling the provider and applying its answer -----------------------------------------------


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


async def _execute(session: AsyncSession, *, refund_id: uuid.UUID, providers: ProviderRegistry, clock: Clock) -> Refund:
    """Call the provider for an approved refund (no transaction open meanwhile) and apply the answer."""
    payment, refund = await _locked(session, refund_id)
    if refund.status not in OPEN:
        return refund
    ref, provider_name = _payment_ref(payment), refund.provider or ""
    await session.commit()
    outcome = await _call(providers, provider_name, ref, refund)
    payment, refund = await _locked(session, refund_id)
    refund.last_called_at = clock.now()
    await _apply(session, payment, refund, outcome, now=clock.now())
    return refund


def _approved_at(refund: Refund) -> datetime:
    """When the refund was approved (its first provider call follows at once)."""
    return refund.reviewed_at or refund.created_at


def _next_sync(refund: Refund, now: datetime) -> datetime:
    return now + SYNC_BACKOFF[min(refund.sync_count, len(SYNC_BACKOFF) - 1)]


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


# ---- review -------------------------------------------------------------------------------------


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


# ---- status sync (job) and provider webhooks ---------------------------------------------------


async def sync(
    session: AsyncSession, *, refund_id: uuid.UUID, providers: ProviderRegistry, clock: Clock
) -> RefundStatus | None:
    """Resolve one open refund (``processing``/``unknown``). Safe to run twice.

    Idempotent providers are called again with the same key: the provider replays its answer,
    or makes the refund now if the first call never reached it. Providers without a refund key
    are asked for the payment's refunded total instead (:data:`NOT_IDEMPOTENT_REFUNDS`).
    Returns the refund's status afterwards (None if it does not exist).
    """
    refund = await repository.get(session, refund_id)
    if refund is None:
        return None
    if refund.status not in OPEN:
        return RefundStatus(refund.status)
    now = clock.now()
    if (refund.provider or "") in NOT_IDEMPOTENT_REFUNDS:
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


# ---- events and texts ---------------------------------------------------------------------------


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
