"""Payments: create, capture, cancel, and apply what providers report.

Invariants this module keeps:

* **Record, commit, call, apply.** An attempt is committed (``db.checkpoint``) before its provider
  is called; no transaction is open during the call; the answer is applied in a new transaction.
* **Unknown is resolved, never guessed.** A call whose answer was lost leaves the attempt
  ``unknown``; :func:`sync_attempt` asks the provider until it knows.
* **Failover only after a definite failure** (``providers.registry.should_fail_over``): nothing was
  created at the failed provider, so the customer cannot be charged twice.
* **Money moves only through the ledger**, with idempotency keys derived from the payment id, so
  the same provider answer applied by the synchronous path, a webhook and the status sync posts
  once: authorize → hold (provider clearing → purpose account), capture → post the hold (or a
  direct transfer for one-stage payments), void/expiry → void the hold, provider fee → transfer.
* Every status change goes through ``states.py`` and writes an outbox event in the same
  transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy.exc
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.auth import Principal, PrincipalKind
from payment_service.config import get_settings
from payment_service.db import ChangeListener, TooManyWaiters, checkpoint, release, wake_after_commit
from payment_service.errors import AppError, Conflict, Forbidden, NotFound, ServiceUnavailable, Unprocessable
from payment_service.kit import idempotency
from payment_service.kit.clock import Clock
from payment_service.kit.money import InvalidAmount, Money, MoneyValue, UnknownCurrency
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.models.payment import CaptureMode, Payment, PaymentAttempt, PaymentPurpose
from payment_service.outbox import events
from payment_service.outbox import service as outbox_service
from payment_service.payment import repository
from payment_service.payment.metrics import FAILOVERS, LATE_SUCCESS, LONG_POLLS, PAYMENT_STATUS, UNRESOLVED
from payment_service.payment.schemas import PaymentCreate
from payment_service.payment.states import (
    TERMINAL_ATTEMPT,
    TERMINAL_PAYMENT,
    AttemptStatus,
    IllegalTransition,
    PaymentStatus,
    advance_attempt,
    advance_payment,
    is_stale,
)
from payment_service.providers.errors import (
    ProviderAmountMismatch,
    ProviderDeclined,
    ProviderError,
    ProviderInvalidRequest,
    ProviderNotFound,
    ProviderOperationNotSupported,
    ProviderTimeout,
)
from payment_service.providers.ports import (
    Capability,
    ChargeRequest,
    PaymentMethod,
    PaymentRef,
    ProviderResult,
    ProviderStatus,
)
from payment_service.providers.registry import ProviderRegistry, should_fail_over

log = structlog.get_logger(__name__)

PAYMENT_TTL = timedelta(hours=1)
"""How long a customer has to complete an unpaid payment before the expiry job cancels it."""
CAPTURE_WINDOW = timedelta(days=7)
WATCH_CHANNEL = "payment_status"
"""Every status change of a payment is NOTIFYd here after its commit, the payment's id as payload,
for long-polls (:func:`get_when_changed`)."""
MAX_WAIT_SECONDS = 30.0
APPLY_CONNECTION_TRIES = 3
"""Tries to get a pooled connection for applying a provider's answer (see :func:`_load_after_call`)."""

Park = Callable[[], AbstractAsyncContextManager[object]]
"""Under which a waiting request does not count as in flight (the API's in-flight limit)."""
"""How long an authorization is kept before it is voided (card holds last about a week)."""
SYNC_BACKOFF = (timedelta(seconds=5), timedelta(seconds=15), timedelta(minutes=1), timedelta(minutes=5))
SYNC_WAITING_FOR_CUSTOMER = timedelta(minutes=1)
"""First status check of an attempt the provider holds for the customer (3-DS, redirect, QR): its
webhook reports the outcome, the check is only the safety net for a lost one. Checking such
attempts after 5 s costs a provider call per payment whose customer is still typing (seen in the
5000-client benchmark: the worker spent its time asking about payments nobody had paid yet)."""
OPERATION_TIMEOUT = timedelta(minutes=2)


class PaymentNotFound(NotFound):
    code = "payment_not_found"
    title = "Payment not found"


class LongPollsAtCapacity(ServiceUnavailable):
    code = "long_polls_at_capacity"
    title = "Too many long-polls are waiting"

    def __init__(self) -> None:
        super().__init__("Too many long-polls wait on this instance; retry, or poll without wait", retry_after=1)


class TooManyLongPolls(AppError):
    code = "too_many_long_polls"
    status = 429
    title = "Too many long-polls of this user"

    def __init__(self) -> None:
        super().__init__("This user already has the most long-polls allowed waiting; retry later", retry_after=1)


class PayerNotAllowed(Forbidden):
    code = "payer_not_allowed"
    title = "Only internal services may pay on behalf of another user"


class InvalidPaymentAmount(Unprocessable):
    code = "invalid_amount"
    title = "The amount is not valid for its currency"


class NoProviderAvailable(ServiceUnavailable):
    code = "no_provider_available"
    title = "No payment provider can take this payment now"


class OrderReferenceInUse(Conflict):
    code = "order_reference_in_use"
    title = "A payment for this order reference exists already"


class PaymentNotCapturable(Conflict):
    code = "payment_not_capturable"
    title = "Only an authorized payment can be captured"


class CaptureExceedsAuthorized(Unprocessable):
    code = "capture_exceeds_authorized"
    title = "The capture amount exceeds the authorized amount"


class PartialCaptureNotSupported(Unprocessable):
    code = "partial_capture_not_supported"
    title = "This provider captures only the whole authorized amount"


class PaymentNotCancelable(Conflict):
    code = "payment_not_cancelable"
    title = "This payment cannot be canceled in its current state"


class PaymentOperationInProgress(Conflict):
    code = "payment_operation_in_progress"
    title = "Another capture or cancel of this payment is in progress"


class ProviderRejected(Conflict):
    code = "provider_rejected"
    title = "The provider refused the operation"


# ---- reading ------------------------------------------------------------------------------------


def can_see(principal: Principal, payment: Payment) -> bool:
    """Object-level rule: users see their own payments; services and admins with the scope see all."""
    if principal.kind is PrincipalKind.user:
        return payment.payer_id == principal.subject
    return True


async def get(session: AsyncSession, *, principal: Principal, payment_id: uuid.UUID) -> Payment:
    """The payment if the principal may see it. Raises PaymentNotFound (also for others' payments)."""
    payment = await repository.get(session, payment_id)
    if payment is None or not can_see(principal, payment):
        raise PaymentNotFound()
    return payment


async def get_when_changed(
    session: AsyncSession,
    *,
    principal: Principal,
    payment_id: uuid.UUID,
    wait: float,
    listener: ChangeListener | None,
    park: Park = contextlib.nullcontext,
    gone: asyncio.Future[None] | None = None,
) -> Payment:
    """The payment, as :func:`get`; with ``wait`` > 0 and a status that is not final, answered once
    its status (or its customer action) differs from what it was when the request came, or after
    ``wait`` seconds (a long-poll: one request where a client would poll in a loop).

    The waiter registers before the first read (a change committed in between still wakes it),
    waits without a pooled connection (``release``) and outside the in-flight count (``park``:
    only the sleep, every read counts), and reads the payment itself (one of the listener's few
    read slots) after every wake-up and every ``listener.recheck_interval`` or so: a NOTIFY only
    says when to look. While the server is draining it answers at once. When ``gone`` completes
    (the client disconnected) it stops waiting at once, without another read: its waiter, its
    share of the user's waiters and its place among the parked requests are free again (metric
    ``payment_long_polls_total{outcome="client_gone"}``). Raises :class:`LongPollsAtCapacity`
    (503) beyond the process's bound and :class:`TooManyLongPolls` (429) beyond a user's share."""
    if wait <= 0 or listener is None:
        return await get(session, principal=principal, payment_id=payment_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait, MAX_WAIT_SECONDS)
    await listener.listen(WATCH_CHANNEL)
    owner = f"{principal.kind}:{principal.subject}" if principal.kind is PrincipalKind.user else None
    with contextlib.ExitStack() as registered:
        try:
            changed = registered.enter_context(listener.watch(WATCH_CHANNEL, str(payment_id), owner=owner))
        except TooManyWaiters as exc:
            raise (TooManyLongPolls() if exc.per_owner else LongPollsAtCapacity()) from None
        payment = await get(session, principal=principal, payment_id=payment_id)
        if payment.status in TERMINAL_PAYMENT:
            return payment
        if changed is None:  # the server drains: answered at once, counted as the waits it ends
            LONG_POLLS.labels(outcome="stopping").inc()
            return payment
        seen = (payment.status, payment.action)
        await release(session)
        if gone is not None:
            wake = changed.set
            gone.add_done_callback(lambda _: wake())
        outcome = "deadline"
        while (remaining := deadline - loop.time()) > 0:
            async with park():
                woken = await listener.wait(changed, remaining)
                if gone is not None and gone.done():
                    outcome = "client_gone"
                    break
                if not woken:
                    outcome = "stopping"
                    break
                if not listener.listening:
                    await listener.listen(WATCH_CHANNEL)
                slot = await listener.read_slot(max(deadline - loop.time(), 0.0), gone=gone)
            if slot is None:
                if gone is not None and gone.done():
                    outcome = "client_gone"
                break  # no read slot before the deadline: answer with what was read last
            async with slot:
                payment = await repository.get(session, payment_id) or payment
                await release(session)
            if (payment.status, payment.action) != seen:
                outcome = "changed"
                break
        LONG_POLLS.labels(outcome=outcome).inc()
    return payment


async def get_for_update(session: AsyncSession, *, payment_id: uuid.UUID) -> Payment | None:
    """The payment (with its attempts), row-locked until the end of the transaction.

    For modules that change what hangs off a payment and must serialize with its status changes
    (refunds reserve against ``captured_minor`` under this lock). No authorization: callers check
    :func:`can_see`.
    """
    return await repository.get(session, payment_id, lock=True)


async def list_payments(
    session: AsyncSession,
    *,
    principal: Principal,
    payer_id: str | None,
    status: PaymentStatus | None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Payment], str | None]:
    """A page of payments, newest first. Users always get only their own."""
    if principal.kind is PrincipalKind.user:
        payer_id = principal.subject
    try:
        after = repository.decode_cursor(cursor) if cursor else None
    except ValueError:
        raise Unprocessable("cursor is not valid", field="cursor") from None
    rows = await repository.page(session, payer_id=payer_id, status=status, after=after, limit=limit + 1)
    items = rows[:limit]
    next_cursor = repository.encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return items, next_cursor


# ---- creating -----------------------------------------------------------------------------------


def _payer(principal: Principal, requested: str | None) -> str:
    if principal.kind is PrincipalKind.user:
        if requested is not None and requested != principal.subject:
            raise PayerNotAllowed()
        return principal.subject
    if requested is None:
        raise Unprocessable("payer_id is required when a service creates a payment", field="payer_id")
    return requested


def parse_amount(value: MoneyValue) -> Money:
    """A positive Money from the API's decimal string. Raises InvalidPaymentAmount."""
    try:
        money = value.to_money()
    except (UnknownCurrency, InvalidAmount) as exc:
        raise InvalidPaymentAmount(str(exc)) from None
    if not money.is_positive:
        raise InvalidPaymentAmount("amount must be positive")
    return money


async def create(
    session: AsyncSession,
    *,
    principal: Principal,
    data: PaymentCreate,
    purpose: PaymentPurpose = PaymentPurpose.order,
    claim: idempotency.Claim | None,
    providers: ProviderRegistry,
    clock: Clock,
    notification_url: str | None = None,
) -> Payment:
    """Create a payment and make its first attempt (failing over on definite failures).

    Returns the payment in whatever state the provider left it: ``succeeded``/``authorized``,
    ``requires_action`` (with the customer action), ``pending`` (outcome awaited or unknown: the
    status sync resolves it), or ``failed`` (declined, or every provider failed definitely).
    A retry under the same Idempotency-Key after a crash resumes the same payment.
    Raises PayerNotAllowed, InvalidPaymentAmount, OrderReferenceInUse, NoProviderAvailable.
    """
    if claim is not None and claim.resumed:
        existing = await repository.by_request_key(session, claim.id)
        if existing is not None:
            return await _resume(session, payment=existing, providers=providers, clock=clock)

    payer_id = _payer(principal, data.payer_id)
    money = parse_amount(data.amount)
    if data.order_reference is not None:
        taken = await repository.by_order_reference(
            session, created_by=principal.key, order_reference=data.order_reference
        )
        if taken is not None:
            raise OrderReferenceInUse(payment_id=str(taken.id))

    candidates = providers.route(method=data.method, currency=money.currency, amount_minor=money.amount_minor)
    if data.provider and data.provider in candidates:
        candidates.remove(data.provider)
        candidates.insert(0, data.provider)
    if not candidates:
        raise NoProviderAvailable(
            f"no provider takes {data.method} in {money.currency} for this amount now", retry_after=30
        )

    now = clock.now()
    payment = Payment(
        id=uuid.uuid4(),
        payer_id=payer_id,
        created_by=principal.key,
        purpose=purpose,
        amount_minor=money.amount_minor,
        currency=money.currency,
        captured_minor=0,
        refunded_minor=0,
        method=data.method,
        capture_mode=CaptureMode.automatic if data.capture else CaptureMode.manual,
        status=PaymentStatus.pending,
        description=data.description,
        return_url=str(data.return_url),
        order_reference=data.order_reference,
        metadata_={**data.metadata, **({"payer_phone": data.payer_phone} if data.payer_phone else {})},
        preferred_provider=data.provider,
        provider=candidates[0],
        request_key=claim.id if claim else None,
        expires_at=now + PAYMENT_TTL,
        created_at=now,
        updated_at=now,
    )
    attempt = _new_attempt(payment, number=1, provider=candidates[0], now=now)
    try:
        await repository.add(session, payment, attempt)
    except IntegrityError:
        raise OrderReferenceInUse() from None
    await _emit(session, payment, now=now)
    if claim is not None:
        await idempotency.set_recovery_point(session, claim, "attempt_created", now=now)
    await checkpoint(session)
    return await _drive(
        session,
        payment_id=payment.id,
        attempt_id=attempt.id,
        remaining=candidates[1:],
        providers=providers,
        clock=clock,
        notification_url=notification_url,
        claim=claim,
        committed=(payment, attempt),
    )


def _new_attempt(payment: Payment, *, number: int, provider: str, now: datetime) -> PaymentAttempt:
    return PaymentAttempt(
        id=uuid.uuid4(),
        payment_id=payment.id,
        number=number,
        provider=provider,
        status=AttemptStatus.created,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        next_sync_at=now + SYNC_BACKOFF[0],
        created_at=now,
        updated_at=now,
    )


def _charge_request(payment: Payment, attempt: PaymentAttempt, notification_url: str | None) -> ChargeRequest:
    metadata = {k: v for k, v in payment.metadata_.items() if k != "payer_phone"}
    metadata["payment_id"] = str(payment.id)
    return ChargeRequest(
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        method=PaymentMethod(payment.method),
        description=payment.description,
        return_url=payment.return_url,
        idempotency_key=str(attempt.id),
        capture=payment.capture_mode is CaptureMode.automatic,
        metadata=metadata,
        payer_phone=payment.metadata_.get("payer_phone"),
        notification_url=notification_url,
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one provider call told us."""

    result: ProviderResult | None = None
    declined: ProviderDeclined | None = None
    unknown: Exception | None = None
    definite: ProviderError | None = None
    """Nothing happened at the provider (safe to fail over when ``should_fail_over``)."""


async def _call_authorize(providers: ProviderRegistry, provider_name: str, request: ChargeRequest) -> _Outcome:
    try:
        provider = providers.resolve(provider_name)
        return _Outcome(result=await provider.authorize(request))
    except ProviderDeclined as exc:
        return _Outcome(declined=exc)
    except (ProviderTimeout, ProviderAmountMismatch) as exc:
        return _Outcome(unknown=exc)
    except ProviderError as exc:
        return _Outcome(definite=exc)
    except Exception as exc:  # an adapter bug: we cannot know whether money moved
        log.exception("provider_call_crashed", provider=provider_name, attempt_id=request.idempotency_key)
        return _Outcome(unknown=exc)


async def _drive(
    session: AsyncSession,
    *,
    payment_id: uuid.UUID,
    attempt_id: uuid.UUID,
    remaining: list[str],
    providers: ProviderRegistry,
    clock: Clock,
    notification_url: str | None,
    claim: idempotency.Claim | None = None,
    committed: tuple[Payment, PaymentAttempt] | None = None,
) -> Payment:
    """Call the attempt's provider and apply the outcome; on a definite failure, try the next one.

    ``committed``: the payment and attempt exactly as this session just committed them (the
    sessions keep objects after a commit), so the charge request is built without reading them
    back; otherwise they are loaded and the read transaction ends before the call.
    """
    while True:
        if committed is not None:
            payment, attempt = committed
            committed = None
        else:
            payment, attempt = await _load(session, payment_id, attempt_id)
        request = _charge_request(payment, attempt, notification_url)
        provider_name = attempt.provider
        if session.in_transaction():
            await checkpoint(session)  # nothing is open while we wait for the provider
        outcome = await _call_authorize(providers, provider_name, request)
        payment, attempt = await _load_after_call(session, payment_id, attempt_id)
        now = clock.now()
        if outcome.result is not None:
            await apply_provider_result(session, payment=payment, attempt=attempt, result=outcome.result, now=now)
            return payment
        if outcome.declined is not None:
            await _fail_attempt(session, attempt, outcome.declined, now=now, decline_code=outcome.declined.decline_code)
            await _finish_failed(
                session, payment, now=now, decline_code=outcome.declined.decline_code, message=outcome.declined.message
            )
            return payment
        if outcome.unknown is not None:
            await _mark_unknown(session, attempt, outcome.unknown, now=now)
            return payment
        error = outcome.definite
        assert error is not None
        await _fail_attempt(session, attempt, error, now=now, failover=should_fail_over(error) and bool(remaining))
        if not should_fail_over(error) or not remaining:
            code = "providers_unavailable" if should_fail_over(error) else "provider_rejected"
            await _finish_failed(session, payment, now=now, decline_code=code, message=error.message)
            return payment
        next_provider = remaining.pop(0)
        FAILOVERS.labels(attempt.provider, next_provider, type(error).__name__).inc()
        log.warning(
            "payment_failover",
            payment_id=str(payment.id),
            from_provider=attempt.provider,
            to_provider=next_provider,
            reason=type(error).__name__,
        )
        nxt = _new_attempt(payment, number=attempt.number + 1, provider=next_provider, now=now)
        payment.provider = next_provider
        payment.updated_at = now
        await repository.add(session, nxt)
        if claim is not None:  # renew the Idempotency-Key lease: this request is still working
            await idempotency.set_recovery_point(session, claim, f"attempt_{nxt.number}_created", now=now)
        await checkpoint(session)
        attempt_id = nxt.id
        committed = (payment, nxt)


async def _resume(session: AsyncSession, *, payment: Payment, providers: ProviderRegistry, clock: Clock) -> Payment:
    """Continue a payment whose creating request died after its checkpoint (same Idempotency-Key).

    The attempt is still ``created``: the provider call may or may not have been made. A provider
    that can be asked by the attempt id is asked first, and what it already has (a charge, a
    decline, a page) is applied. The create is called (again) only when the provider has nothing,
    or nothing the customer can use: YooKassa and the mobile aggregator dedupe on the attempt id
    and replay their answer; Sber refuses the repeated order number and the adapter reads the
    order back (its page only where ``providers.sber.payment_page_url`` says how it is addressed); T-Bank creates a second payment, whose page the customer gets
    (the first one's page was never seen, and money on it is booked for a refund, never merged).
    An ``unknown`` attempt is left to the status sync, which also reads the status first.
    """
    latest = payment.attempts[-1]
    if latest.status is not AttemptStatus.created:
        return payment
    found = await _status_before_create_again(session, providers, latest)
    if found is not None:
        payment, attempt = await _load_after_call(session, payment.id, latest.id)
        if attempt.status is AttemptStatus.created and not _page_lost(payment, attempt, found):
            await apply_provider_result(session, payment=payment, attempt=attempt, result=found, now=clock.now())
            return payment
    return await _drive(
        session, payment_id=payment.id, attempt_id=latest.id, remaining=[], providers=providers, clock=clock,
        notification_url=None,
    )  # fmt: skip


async def _status_before_create_again(
    session: AsyncSession, providers: ProviderRegistry, attempt: PaymentAttempt
) -> ProviderResult | None:
    """What the provider has under the attempt id, where it can be asked by it; None when it has
    nothing, cannot be asked, or the question failed (the create then decides, as before)."""
    try:
        provider = providers.resolve(attempt.provider)
    except ProviderError:
        return None
    if Capability.status_by_idempotency_key not in provider.capabilities:
        return None
    ref = PaymentRef(idempotency_key=str(attempt.id), provider_payment_id=None)
    if session.in_transaction():
        await checkpoint(session)  # nothing is open while we wait for the provider
    try:
        return await provider.get_status(ref)
    except ProviderError as exc:
        if not isinstance(exc, ProviderNotFound):
            log.info("resume_status_unknown", attempt_id=str(attempt.id), error=type(exc).__name__)
        return None


async def _load_after_call(
    session: AsyncSession, payment_id: uuid.UUID, attempt_id: uuid.UUID
) -> tuple[Payment, PaymentAttempt]:
    """:func:`_load` (locked) right after a provider call. The provider's answer exists only in
    memory now, and some of it is given once (T-Bank's payment page URL: ``GetState`` does not
    return it), so a briefly exhausted pool must not throw it away with a 503:
    waiting for a connection is tried ``APPLY_CONNECTION_TRIES`` times (each up to the pool's
    timeout). Measured: 72 of 5,000 concurrent checkouts ended up ``requires_action`` without the
    URL their customer needed when this was a single try."""
    for tried in range(1, APPLY_CONNECTION_TRIES + 1):
        try:
            return await _load(session, payment_id, attempt_id, lock=True)
        except sqlalchemy.exc.TimeoutError:
            if tried == APPLY_CONNECTION_TRIES:
                raise
            # The session stays usable: its transaction has no connection yet, the next statement
            # asks the pool again. No rollback: it would expire every object the caller still holds.
            log.warning("payment_apply_waits_for_connection", payment_id=str(payment_id), tried=tried)
    raise AssertionError("unreachable")


async def _load(
    session: AsyncSession, payment_id: uuid.UUID, attempt_id: uuid.UUID, *, lock: bool = False
) -> tuple[Payment, PaymentAttempt]:
    payment = await repository.get(session, payment_id, lock=lock)
    if payment is None:
        raise PaymentNotFound()
    attempt = next((a for a in payment.attempts if a.id == attempt_id), None)
    if attempt is None:
        raise PaymentNotFound(f"attempt {attempt_id} not found")
    return payment, attempt


async def find_attempt(session: AsyncSession, *, attempt_id: uuid.UUID) -> PaymentAttempt | None:
    return await repository.attempt(session, attempt_id)


async def find_attempt_by_provider_id(
    session: AsyncSession, *, provider: str, provider_payment_id: str
) -> PaymentAttempt | None:
    return await repository.attempt_by_provider_id(session, provider, provider_payment_id)


async def apply_webhook(
    session: AsyncSession, *, payment_id: uuid.UUID, attempt_id: uuid.UUID, result: ProviderResult, now: datetime
) -> bool:
    """Apply a verified provider notification to its attempt (locks the payment and reads it again
    with its attempts: what the caller found before the lock may be stale). Idempotent."""
    payment, attempt = await _load(session, payment_id, attempt_id, lock=True)
    return await apply_provider_result(session, payment=payment, attempt=attempt, result=result, now=now)


# ---- applying what providers say ----------------------------------------------------------------

_ATTEMPT_FOR = {
    ProviderStatus.pending: AttemptStatus.pending,
    ProviderStatus.requires_action: AttemptStatus.requires_action,
    ProviderStatus.authorized: AttemptStatus.authorized,
    ProviderStatus.succeeded: AttemptStatus.succeeded,
    ProviderStatus.failed: AttemptStatus.failed,
    ProviderStatus.canceled: AttemptStatus.canceled,
}


def _purpose_account(payment: Payment) -> accounts.AccountSpec:
    if PaymentPurpose(payment.purpose) is PaymentPurpose.wallet_top_up:
        return accounts.user_wallet(payment.payer_id, payment.currency)
    if PaymentPurpose(payment.purpose) is PaymentPurpose.donation:
        return accounts.donation_clearing(payment.currency)
    return accounts.order_clearing(payment.currency)


def credited_account(payment: Payment) -> accounts.AccountSpec:
    """The ledger account a payment's captured money was credited to (what a refund takes back
    from unless the purpose's module says otherwise)."""
    return _purpose_account(payment)


# ---- purpose hooks ------------------------------------------------------------------------------

StatusHook = Callable[[AsyncSession, Payment, datetime], Awaitable[None]]
"""``hook(session, payment, now)``: runs in the transaction that gave the payment its new status."""

_STATUS_HOOKS: dict[PaymentPurpose, list[StatusHook]] = {}


def on_status_change(purpose: PaymentPurpose, hook: StatusHook) -> None:
    """Run ``hook`` whenever a payment of ``purpose`` reaches a new status (after its ledger effects
    and its event), in the same transaction, so the purpose's own effects (e.g. a donation's split)
    commit or roll back together with the payment's. Registering the same hook twice is a no-op.

    A hook that raises aborts the whole application of the provider's answer (it is retried like
    any failed application: webhook inbox, status sync).
    """
    hooks = _STATUS_HOOKS.setdefault(purpose, [])
    if hook not in hooks:
        hooks.append(hook)


def status_hooks(purpose: PaymentPurpose) -> tuple[StatusHook, ...]:
    return tuple(_STATUS_HOOKS.get(purpose, ()))


def _reference(payment: Payment) -> str:
    return f"payment:{payment.id}"


def _credit_reason(payment: Payment, *, captured: bool = False) -> str:
    """Ledger reason of the transfer that credits a payment's purpose account: a top-up's is
    ``wallet_top_up`` (what the wallet's daily top-up limit counts), others' ``payment_succeeded``
    (one stage) or ``payment_captured`` (a posted authorization)."""
    if PaymentPurpose(payment.purpose) is PaymentPurpose.wallet_top_up:
        return "wallet_top_up"
    return "payment_captured" if captured else "payment_succeeded"


async def apply_provider_result(
    session: AsyncSession, *, payment: Payment, attempt: PaymentAttempt, result: ProviderResult, now: datetime
) -> bool:
    """Apply the provider's view of an attempt: statuses, ledger effects, events. Idempotent.

    ``payment`` must be locked (``repository.get(..., lock=True)``). Returns True when anything
    changed. Used by the synchronous path, webhooks and the status sync alike, so the first to
    arrive applies and the others find nothing to do. A report that contradicts a final status
    (a provider flipping succeeded → failed) is logged and counted, never applied.
    """
    moves_money = result.status in (ProviderStatus.succeeded, ProviderStatus.authorized)
    partial_capture = (
        result.status is ProviderStatus.succeeded
        and payment.capture_mode == CaptureMode.manual
        and 0 < result.amount_minor <= attempt.amount_minor
    )
    # Providers report what is left after a void or a refund (T-Bank REVERSED has Amount 0), so
    # only statuses that move money must echo the amount we asked for.
    if moves_money and (
        result.currency != attempt.currency or (result.amount_minor != attempt.amount_minor and not partial_capture)
    ):
        UNRESOLVED.labels(attempt.provider, "amount_mismatch").inc()
        log.error(
            "provider_amount_mismatch",
            payment_id=str(payment.id),
            attempt_id=str(attempt.id),
            expected=attempt.amount_minor,
            reported=result.amount_minor,
        )
        mismatch = ProviderAmountMismatch(
            "amount or currency differs",
            expected=(attempt.amount_minor, attempt.currency),
            actual=(result.amount_minor, result.currency),
            provider=attempt.provider,
        )
        await _mark_unknown(session, attempt, mismatch, now=now)
        return False
    if (
        attempt.provider_payment_id is not None
        and result.provider_payment_id is not None
        and result.provider_payment_id != attempt.provider_payment_id
    ):
        # A second provider payment under the same attempt: a create that a retry took over while
        # the first request was still calling the provider (providers such as T-Bank do not dedupe
        # a repeated create). The attempt keeps the payment it recorded first, with that payment's
        # customer action; money taken on the other one is booked and refunded, never merged.
        UNRESOLVED.labels(attempt.provider, "other_provider_payment").inc()
        log.error(
            "provider_payment_mismatch",
            payment_id=str(payment.id),
            attempt_id=str(attempt.id),
            recorded=attempt.provider_payment_id,
            reported=result.provider_payment_id,
            status=str(result.status),
        )
        if result.status is ProviderStatus.succeeded:
            return await _book_late_money(
                session,
                payment,
                attempt,
                result.captured_minor or result.amount_minor,
                now=now,
                provider_payment_id=result.provider_payment_id,
            )
        if result.status is ProviderStatus.authorized and payment.capture_mode == CaptureMode.manual:
            # (one-stage: a step on the way to the charge, which is refunded when it comes)
            return await _other_payment_authorized(session, payment, attempt, result, now=now)
        return False

    target = _ATTEMPT_FOR[result.status]
    if is_stale(AttemptStatus(attempt.status), target):
        log.info("stale_provider_report", attempt_id=str(attempt.id), status=attempt.status, reported=target)
        return False
    if attempt.status in (AttemptStatus.failed, AttemptStatus.canceled):
        # We gave this attempt up (a lost answer judged "never received", a failover, a void) but
        # the provider moved money after all: book it for a refund instead of dropping it.
        if target is AttemptStatus.succeeded:
            return await _book_late_money(
                session, payment, attempt, result.captured_minor or result.amount_minor, now=now
            )
        if target is AttemptStatus.authorized:
            return await _late_authorization(session, payment, attempt, now=now)
    try:
        attempt_changed = advance_attempt(attempt.status, target)
    except IllegalTransition as exc:
        UNRESOLVED.labels(attempt.provider, "contradiction").inc()
        log.error("provider_contradiction", payment_id=str(payment.id), attempt_id=str(attempt.id), error=str(exc))
        return False
    if attempt.provider_payment_id is None:
        attempt.provider_payment_id = result.provider_payment_id
    attempt.provider_status = result.provider_status
    attempt.status = target
    attempt.updated_at = now
    attempt.last_synced_at = now
    if target in TERMINAL_ATTEMPT or target is AttemptStatus.authorized:
        attempt.next_sync_at = None
    elif target is AttemptStatus.requires_action and attempt_changed:
        waiting = now + SYNC_WAITING_FOR_CUSTOMER
        if attempt.next_sync_at is None or attempt.next_sync_at < waiting:
            attempt.next_sync_at = waiting
    if result.decline_code is not None:
        attempt.decline_code = str(result.decline_code)
    if result.card is not None and payment.card_last4 is None:
        payment.card_last4 = result.card.last4
        payment.card_scheme = str(result.card.scheme)
        payment.card_first6 = result.card.first6
    if result.action is not None:
        payment.action = {
            "type": str(result.action.type),
            "url": result.action.url,
            "qr_payload": result.action.qr_payload,
        }

    latest = payment.attempts[-1].id == attempt.id if payment.attempts else True
    changed = attempt_changed
    if target is AttemptStatus.succeeded:
        changed |= await _on_succeeded(session, payment, attempt, result, now=now)
    elif target is AttemptStatus.authorized:
        changed |= await _on_authorized(session, payment, attempt, now=now)
    elif target is AttemptStatus.requires_action and latest:
        changed |= await _set_status(session, payment, PaymentStatus.requires_action, now=now)
    elif target is AttemptStatus.pending and latest and payment.status is PaymentStatus.requires_action:
        changed |= await _set_status(session, payment, PaymentStatus.pending, now=now)
    elif target is AttemptStatus.failed and latest and payment.status not in TERMINAL_PAYMENT:
        await _finish_failed(session, payment, now=now, decline_code=attempt.decline_code or "declined", message=None)
        changed = True
    elif target is AttemptStatus.canceled:
        changed |= await _on_canceled(session, payment, now=now)
    if result.fee_minor is not None and payment.fee_minor is None and payment.captured_minor > 0:
        await _record_fee(session, payment, attempt, result.fee_minor, now=now)
        changed = True
    if changed:
        payment.updated_at = now
    return changed


async def _on_authorized(session: AsyncSession, payment: Payment, attempt: PaymentAttempt, *, now: datetime) -> bool:
    if payment.status in TERMINAL_PAYMENT or payment.status is PaymentStatus.authorized:
        if payment.status in TERMINAL_PAYMENT:
            log.error("late_authorization", payment_id=str(payment.id), status=payment.status)
        return False
    amount = Money(payment.amount_minor, payment.currency)
    credited = _purpose_account(payment)
    ceilings = None
    if PaymentPurpose(payment.purpose) is PaymentPurpose.wallet_top_up:
        ceilings = {credited: Money(get_settings().wallet.max_balance_minor, payment.currency)}
    try:
        async with session.begin_nested():
            hold = await ledger_service.hold(
                session,
                postings=[Posting(accounts.provider_clearing(attempt.provider, payment.currency), credited, amount)],
                idempotency_key=f"{_reference(payment)}:authorize",
                reference=_reference(payment),
                reason="payment_authorized",
                now=now,
                ceilings=ceilings,
            )
    except ledger_service.LimitExceeded:
        # The wallet would pass its ceiling: no hold; the capture that follows is refused by the
        # same ceiling and booked for a refund (see ``_on_succeeded``).
        log.warning("top_up_over_wallet_ceiling", payment_id=str(payment.id))
        return False
    payment.ledger_hold_id = hold.id
    payment.provider = attempt.provider
    payment.provider_payment_id = attempt.provider_payment_id
    payment.capture_before = now + CAPTURE_WINDOW
    return await _set_status(session, payment, PaymentStatus.authorized, now=now)


async def _book_late_money(
    session: AsyncSession,
    payment: Payment,
    attempt: PaymentAttempt,
    amount_minor: int,
    *,
    now: datetime,
    provider_payment_id: str | None = None,
) -> bool:
    """Money arrived for a payment or attempt we had given up on (expired, canceled, failed over),
    or on a provider payment the attempt does not own (``provider_payment_id``: a second create).

    Keep it on the books (provider clearing → order clearing) and ask for a refund; never pretend
    it did not happen. Idempotent: a repeated report finds the transfer and emits nothing.
    """
    clearing = accounts.provider_clearing(attempt.provider, payment.currency)
    other = f":{provider_payment_id}" if provider_payment_id is not None else ""
    booked = await ledger_service.transfer(
        session,
        postings=[Posting(clearing, accounts.order_clearing(payment.currency), Money(amount_minor, payment.currency))],
        idempotency_key=f"{_reference(payment)}:late:{attempt.id}{other}",
        reference=_reference(payment),
        reason="late_payment_refund_due",
        now=now,
    )
    if booked.replayed:
        return False
    LATE_SUCCESS.labels(attempt.provider).inc()
    log.error(
        "late_payment_success",
        payment_id=str(payment.id),
        attempt_id=str(attempt.id),
        payment_status=str(payment.status),
        attempt_status=str(attempt.status),
    )
    await outbox_service.emit(
        session,
        events.PaymentRefundRequired(
            payment_id=payment.id,
            attempt_id=attempt.id,
            provider=attempt.provider,
            amount_minor=amount_minor,
            currency=payment.currency,
            reason=(
                f"paid on provider payment {provider_payment_id}, not the attempt's {attempt.provider_payment_id}"
                if provider_payment_id is not None
                else f"paid after the payment was {payment.status} (attempt {attempt.status})"
            ),
            provider_payment_id=provider_payment_id or attempt.provider_payment_id,
            occurred_at=now,
        ),
        key=payment.id,
    )
    return True


async def _late_authorization(
    session: AsyncSession, payment: Payment, attempt: PaymentAttempt, *, now: datetime
) -> bool:
    """A provider holds money for an attempt we gave up on: ask for the hold to be voided (once)."""
    return await _ask_for_void(
        session,
        payment,
        attempt,
        marker="late_authorization",
        amount_minor=attempt.amount_minor,
        reason="authorized at the provider after we gave the attempt up: void the hold",
        now=now,
    )


async def _other_payment_authorized(
    session: AsyncSession, payment: Payment, attempt: PaymentAttempt, result: ProviderResult, *, now: datetime
) -> bool:
    """A hold on a second provider payment of the attempt (see the branch in
    :func:`apply_provider_result`): the customer's money is blocked for nothing, so ask for that
    hold to be voided, once per provider payment (the reports repeat: webhook, sync)."""
    return await _ask_for_void(
        session,
        payment,
        attempt,
        marker=f"other_hold:{result.provider_payment_id}"[:64],
        amount_minor=result.amount_minor,
        reason="a second provider payment of this attempt holds money: void that hold",
        now=now,
        provider_payment_id=result.provider_payment_id,
    )


async def _ask_for_void(
    session: AsyncSession,
    payment: Payment,
    attempt: PaymentAttempt,
    *,
    marker: str,
    amount_minor: int,
    reason: str,
    now: datetime,
    provider_payment_id: str | None = None,
) -> bool:
    """Publish ``payment.refund_required`` asking for a provider hold to be voided, once per
    ``marker`` (kept in the attempt's ``error_code``: the provider's reports repeat)."""
    if attempt.error_code == marker:
        return False
    attempt.error_code = marker
    attempt.updated_at = now
    LATE_SUCCESS.labels(attempt.provider).inc()
    log.error(
        "late_authorization",
        payment_id=str(payment.id),
        attempt_id=str(attempt.id),
        marker=marker,
        provider_payment_id=provider_payment_id,
    )
    await outbox_service.emit(
        session,
        events.PaymentRefundRequired(
            payment_id=payment.id,
            attempt_id=attempt.id,
            provider=attempt.provider,
            amount_minor=amount_minor,
            currency=payment.currency,
            reason=reason,
            provider_payment_id=provider_payment_id,
            occurred_at=now,
        ),
        key=payment.id,
    )
    return True


async def _on_succeeded(
    session: AsyncSession, payment: Payment, attempt: PaymentAttempt, result: ProviderResult, *, now: datetime
) -> bool:
    captured = result.captured_minor or result.amount_minor
    clearing = accounts.provider_clearing(attempt.provider, payment.currency)
    if payment.status in TERMINAL_PAYMENT:
        if payment.status is PaymentStatus.succeeded:
            return False
        return await _book_late_money(session, payment, attempt, captured, now=now)
    if payment.ledger_hold_id is not None:
        postings = None
        if captured < payment.amount_minor:
            postings = [Posting(clearing, _purpose_account(payment), Money(captured, payment.currency))]
        await ledger_service.post_hold(
            session,
            hold_id=payment.ledger_hold_id,
            idempotency_key=f"{_reference(payment)}:capture",
            now=now,
            postings=postings,
            reason=_credit_reason(payment, captured=True),
        )
    elif PaymentPurpose(payment.purpose) is PaymentPurpose.wallet_top_up:
        if not await _credit_wallet(session, payment, clearing, captured, now=now):
            # The wallet would pass its ceiling (a race past the check at creation): the money is
            # kept on the books for a refund and the payment is reported as not topped up.
            await _book_late_money(session, payment, attempt, captured, now=now)
            payment.decline_code = "wallet_limit_exceeded"
            return await _set_status(session, payment, PaymentStatus.failed, now=now)
    else:
        await ledger_service.transfer(
            session,
            postings=[Posting(clearing, _purpose_account(payment), Money(captured, payment.currency))],
            idempotency_key=f"{_reference(payment)}:charge",
            reference=_reference(payment),
            reason=_credit_reason(payment),
            now=now,
        )
    payment.captured_minor = captured
    payment.provider = attempt.provider
    payment.provider_payment_id = attempt.provider_payment_id
    payment.succeeded_at = now
    payment.action = None
    payment.pending_operation = None
    return await _set_status(session, payment, PaymentStatus.succeeded, now=now)


async def _credit_wallet(
    session: AsyncSession, payment: Payment, clearing: accounts.AccountSpec, amount_minor: int, *, now: datetime
) -> bool:
    """Credit a top-up to the wallet under its balance ceiling; False when the ceiling refuses it."""
    wallet = accounts.user_wallet(payment.payer_id, payment.currency)
    ceiling = Money(get_settings().wallet.max_balance_minor, payment.currency)
    try:
        async with session.begin_nested():
            await ledger_service.transfer(
                session,
                postings=[Posting(clearing, wallet, Money(amount_minor, payment.currency))],
                idempotency_key=f"{_reference(payment)}:charge",
                reference=_reference(payment),
                reason=_credit_reason(payment),
                now=now,
                ceilings={wallet: ceiling},
            )
    except ledger_service.LimitExceeded:
        return False
    return True


async def _on_canceled(session: AsyncSession, payment: Payment, *, now: datetime) -> bool:
    if payment.status in TERMINAL_PAYMENT:
        return False
    if payment.ledger_hold_id is not None:
        await ledger_service.void_hold(
            session,
            hold_id=payment.ledger_hold_id,
            idempotency_key=f"{_reference(payment)}:void",
            now=now,
            reason="payment_canceled",
        )
    payment.pending_operation = None
    expired = payment.capture_before is not None and payment.capture_before <= now
    target = PaymentStatus.expired if expired or payment.expires_at <= now else PaymentStatus.canceled
    return await _set_status(session, payment, target, now=now)


async def _record_fee(
    session: AsyncSession, payment: Payment, attempt: PaymentAttempt, fee_minor: int, *, now: datetime
) -> None:
    payment.fee_minor = fee_minor
    if fee_minor <= 0:
        return
    await ledger_service.transfer(
        session,
        postings=[
            Posting(
                accounts.provider_fees(attempt.provider, payment.currency),
                accounts.provider_clearing(attempt.provider, payment.currency),
                Money(fee_minor, payment.currency),
            )
        ],
        idempotency_key=f"{_reference(payment)}:fee",
        reference=_reference(payment),
        reason="provider_fee",
        now=now,
    )


async def _set_status(session: AsyncSession, payment: Payment, target: PaymentStatus, *, now: datetime) -> bool:
    if not advance_payment(payment.status, target):
        return False
    payment.status = target
    payment.updated_at = now
    wake_after_commit(session, WATCH_CHANNEL, str(payment.id))  # long-polls of this payment
    if target in TERMINAL_PAYMENT:
        payment.finished_at = now
        payment.action = None if target is not PaymentStatus.succeeded else payment.action
    await _emit(session, payment, now=now)
    for hook in status_hooks(PaymentPurpose(payment.purpose)):
        await hook(session, payment, now)
    return True


async def _emit(session: AsyncSession, payment: Payment, *, now: datetime) -> None:
    PAYMENT_STATUS.labels(str(payment.status), payment.method).inc()
    event_cls = events.PAYMENT_EVENT_FOR_STATUS[str(payment.status)]
    await outbox_service.emit(
        session,
        event_cls(
            payment_id=payment.id,
            payer_id=payment.payer_id,
            purpose=str(payment.purpose),
            order_reference=payment.order_reference,
            status=str(payment.status),
            method=payment.method,
            provider=payment.provider,
            amount_minor=payment.amount_minor,
            captured_minor=payment.captured_minor,
            currency=payment.currency,
            decline_code=payment.decline_code,
            occurred_at=now,
        ),
        key=payment.id,
    )


async def _fail_attempt(
    session: AsyncSession,
    attempt: PaymentAttempt,
    error: ProviderError,
    *,
    now: datetime,
    decline_code: Any = None,
    failover: bool = False,
) -> None:
    if advance_attempt(attempt.status, AttemptStatus.failed):
        attempt.status = AttemptStatus.failed
    attempt.error_code = error.provider_code or type(error).__name__
    attempt.error_message = error.message[:500]
    attempt.decline_code = str(decline_code) if decline_code is not None else attempt.decline_code
    attempt.failover = failover
    attempt.next_sync_at = None
    attempt.updated_at = now


async def _finish_failed(
    session: AsyncSession, payment: Payment, *, now: datetime, decline_code: Any, message: str | None
) -> None:
    if payment.status in TERMINAL_PAYMENT:
        return
    if payment.status is PaymentStatus.authorized:
        # An authorization cannot "fail": what the provider no longer holds was voided or expired.
        await _on_canceled(session, payment, now=now)
        return
    payment.decline_code = str(decline_code)
    payment.failure_message = message[:500] if message else None
    await _set_status(session, payment, PaymentStatus.failed, now=now)


async def _mark_unknown(session: AsyncSession, attempt: PaymentAttempt, error: Exception, *, now: datetime) -> None:
    if attempt.status is not AttemptStatus.unknown and advance_attempt(attempt.status, AttemptStatus.unknown):
        attempt.status = AttemptStatus.unknown
    attempt.error_code = getattr(error, "provider_code", None) or type(error).__name__
    attempt.error_message = str(error)[:500]
    attempt.next_sync_at = now + SYNC_BACKOFF[0]
    attempt.updated_at = now
    log.warning(
        "attempt_outcome_unknown", attempt_id=str(attempt.id), provider=attempt.provider, error=attempt.error_code
    )


# ---- capture and cancel -------------------------------------------------------------------------


async def _begin_operation(
    session: AsyncSession, payment: Payment, attempt: PaymentAttempt, operation: str, *, now: datetime
) -> AttemptStatus:
    """Mark a capture/cancel in flight and commit before calling the provider.

    The attempt becomes ``unknown`` with a sync due after the operation timeout: if the process
    dies during the call, the status sync finds out what the provider did. Returns the attempt's
    status before, to restore on a definite refusal.
    """
    if (
        payment.pending_operation is not None
        and payment.pending_operation_at is not None
        and payment.pending_operation_at > now - OPERATION_TIMEOUT
    ):
        raise PaymentOperationInProgress(operation=payment.pending_operation)
    before = AttemptStatus(attempt.status)
    payment.pending_operation = operation
    payment.pending_operation_at = now
    if advance_attempt(before, AttemptStatus.unknown):
        attempt.status = AttemptStatus.unknown
    attempt.next_sync_at = now + OPERATION_TIMEOUT
    await checkpoint(session)
    return before


async def _end_operation_and_raise(
    session: AsyncSession, payment_id: uuid.UUID, attempt_id: uuid.UUID, restore: AttemptStatus, error: Exception
) -> None:
    """The provider definitely refused: put the attempt back as it was, commit, raise ``error``."""
    payment, attempt = await _load(session, payment_id, attempt_id, lock=True)
    payment.pending_operation = None
    if attempt.status is AttemptStatus.unknown and advance_attempt(attempt.status, restore):
        attempt.status = restore
        attempt.next_sync_at = None if restore is AttemptStatus.authorized else attempt.next_sync_at
    await checkpoint(session)  # the request's error response rolls back only what follows
    raise error


def _capture_target(payment: Payment, amount: Money | None, providers: ProviderRegistry) -> int | None:
    if amount is None or amount.amount_minor == payment.amount_minor:
        return None
    if amount.currency != payment.currency:
        raise InvalidPaymentAmount("capture currency differs from the payment's")
    if not 0 < amount.amount_minor < payment.amount_minor:
        raise CaptureExceedsAuthorized(authorized=Money(payment.amount_minor, payment.currency).to_decimal_string())
    provider = providers.resolve(payment.provider or "")
    if Capability.partial_capture not in provider.capabilities:
        raise PartialCaptureNotSupported(provider=payment.provider)
    return amount.amount_minor


async def capture(
    session: AsyncSession,
    *,
    principal: Principal,
    payment_id: uuid.UUID,
    amount: Money | None,
    providers: ProviderRegistry,
    clock: Clock,
) -> Payment:
    """Capture an authorized payment fully or partly (the rest of the hold is released).

    Raises PaymentNotFound, PaymentNotCapturable, CaptureExceedsAuthorized,
    PartialCaptureNotSupported, PaymentOperationInProgress, ProviderRejected. A capture whose answer
    is lost leaves the payment authorized with an ``unknown`` attempt that the status sync resolves.
    """
    payment = await repository.get(session, payment_id, lock=True)
    if payment is None or not can_see(principal, payment):
        raise PaymentNotFound()
    if payment.status is not PaymentStatus.authorized:
        raise PaymentNotCapturable(payment_status=str(payment.status))
    target = _capture_target(payment, amount, providers)
    attempt = payment.attempts[-1]
    ref = PaymentRef(idempotency_key=str(attempt.id), provider_payment_id=attempt.provider_payment_id)
    before = await _begin_operation(session, payment, attempt, "capture", now=clock.now())
    try:
        result = await providers.resolve(attempt.provider).capture(ref, amount_minor=target, currency=payment.currency)
    except (ProviderTimeout, ProviderAmountMismatch) as exc:
        payment, attempt = await _load(session, payment_id, attempt.id, lock=True)
        await _mark_unknown(session, attempt, exc, now=clock.now())
        return payment
    except ProviderError as exc:
        await _end_operation_and_raise(
            session, payment_id, attempt.id, before, ProviderRejected(exc.message, provider_code=exc.provider_code)
        )
        raise  # unreachable
    payment, attempt = await _load(session, payment_id, attempt.id, lock=True)
    await apply_provider_result(session, payment=payment, attempt=attempt, result=result, now=clock.now())
    payment.pending_operation = None
    return payment


async def cancel(
    session: AsyncSession,
    *,
    principal: Principal,
    payment_id: uuid.UUID,
    providers: ProviderRegistry,
    clock: Clock,
) -> Payment:
    """Cancel a payment that has not been captured: void an authorization, or cancel an unpaid one.

    Raises PaymentNotFound, PaymentNotCancelable (already final, or the provider cannot cancel it
    in its state), PaymentOperationInProgress.
    """
    payment = await repository.get(session, payment_id, lock=True)
    if payment is None or not can_see(principal, payment):
        raise PaymentNotFound()
    if payment.status in TERMINAL_PAYMENT:
        raise PaymentNotCancelable(payment_status=str(payment.status))
    attempt = payment.attempts[-1]
    if attempt.status in (AttemptStatus.created, AttemptStatus.unknown):
        raise PaymentNotCancelable(
            "the provider's answer is still awaited; retry shortly", attempt_status=str(attempt.status)
        )
    ref = PaymentRef(idempotency_key=str(attempt.id), provider_payment_id=attempt.provider_payment_id)
    before = await _begin_operation(session, payment, attempt, "cancel", now=clock.now())
    try:
        result = await providers.resolve(attempt.provider).void(ref)
    except (ProviderTimeout, ProviderAmountMismatch) as exc:
        payment, attempt = await _load(session, payment_id, attempt.id, lock=True)
        await _mark_unknown(session, attempt, exc, now=clock.now())
        return payment
    except (ProviderOperationNotSupported, ProviderError) as exc:
        await _end_operation_and_raise(session, payment_id, attempt.id, before, PaymentNotCancelable(exc.message))
        raise  # unreachable
    payment, attempt = await _load(session, payment_id, attempt.id, lock=True)
    await apply_provider_result(session, payment=payment, attempt=attempt, result=result, now=clock.now())
    payment.pending_operation = None
    return payment


# ---- status sync and expiry (jobs) ------------------------------------------------------------


async def sync_attempt(
    session: AsyncSession, *, attempt_id: uuid.UUID, providers: ProviderRegistry, clock: Clock
) -> AttemptStatus | None:
    """Ask the provider about one open attempt and apply the answer. Safe to run twice.

    An attempt the provider never received (``ProviderNotFound`` long after it was recorded)
    failed definitely. A provider that cannot be asked stays unresolved until the next run.
    Returns the attempt's status afterwards (None if it vanished).
    """
    attempt = await repository.attempt(session, attempt_id)
    if attempt is None:
        return None
    payment = await repository.get(session, attempt.payment_id)
    assert payment is not None
    if attempt.status in TERMINAL_ATTEMPT:
        return attempt.status
    provider_name = attempt.provider
    ref = PaymentRef(idempotency_key=str(attempt.id), provider_payment_id=attempt.provider_payment_id)
    request = _charge_request(payment, attempt, None)
    await session.commit()
    try:
        provider = providers.resolve(provider_name)
        if ref.provider_payment_id is None and Capability.status_by_idempotency_key not in provider.capabilities:
            result = await provider.authorize(request)  # replays the first answer (same idempotency key)
        else:
            result = await provider.get_status(ref)
    except ProviderNotFound as exc:
        payment, attempt = await _load(session, attempt.payment_id, attempt_id, lock=True)
        if attempt.created_at < clock.now() - _never_received_after(providers, provider_name):
            await _fail_attempt(session, attempt, exc, now=clock.now())
            if payment.attempts[-1].id == attempt.id:
                await _finish_failed(
                    session, payment, now=clock.now(), decline_code="provider_not_reached", message=exc.message
                )
        return attempt.status
    except ProviderDeclined as exc:
        payment, attempt = await _load(session, attempt.payment_id, attempt_id, lock=True)
        await _fail_attempt(session, attempt, exc, now=clock.now(), decline_code=exc.decline_code)
        if payment.attempts[-1].id == attempt.id:
            await _finish_failed(session, payment, now=clock.now(), decline_code=exc.decline_code, message=exc.message)
        return attempt.status
    except ProviderError as exc:
        log.info(
            "attempt_sync_unresolved", attempt_id=str(attempt_id), provider=provider_name, error=type(exc).__name__
        )
        return AttemptStatus(attempt.status)
    payment, attempt = await _load(session, attempt.payment_id, attempt_id, lock=True)
    if _page_lost(payment, attempt, result):
        # The provider has the payment, but its status read does not carry the customer's page
        # (T-Bank GetState, Sber getOrderStatus): only the create's answer did, and it was lost.
        # Applied, this would leave the payment waiting for a customer who has nothing to open.
        # ``created``: the request that got the answer could not store it and answered 503, so
        # the client's retry with its Idempotency-Key calls the provider again (``_resume``) and
        # gets a page. ``unknown``: that request has ended and nobody will retry it, so the sync
        # calls again itself. A lost payment is never paid (nobody has its page) and lapses at
        # the provider; money on it would be booked for a refund, never merged.
        UNRESOLVED.labels(attempt.provider, "customer_page_lost").inc()
        log.warning(
            "payment_page_lost", payment_id=str(payment.id), attempt_id=str(attempt.id), provider=attempt.provider
        )
        if attempt.status == AttemptStatus.unknown:
            if payment.expires_at > clock.now():  # (an expiring payment needs no new page)
                await session.commit()  # nothing open during the call
                again: ProviderResult | None = None
                try:
                    again = await provider.authorize(request)
                except ProviderError as exc:
                    log.info("payment_page_not_recreated", attempt_id=str(attempt_id), error=type(exc).__name__)
                payment, attempt = await _load(session, attempt.payment_id, attempt_id, lock=True)
                if again is not None and not _page_lost(payment, attempt, again):
                    result = again
            # else no new page to be had (expiring; Sber without ``payment_page_url`` when it
            # refuses a second registration of the order; the call failed): what the provider said is applied after all, so that the
            # payment leaves ``unknown`` and can expire (an unknown outcome is never expired)
        else:
            # Asked again like an attempt waiting for its customer, not at the pace of unknown
            # outcomes (it would head every sync batch for the payment's whole life).
            attempt.next_sync_at = clock.now() + SYNC_WAITING_FOR_CUSTOMER
            return AttemptStatus(attempt.status)
    await apply_provider_result(session, payment=payment, attempt=attempt, result=result, now=clock.now())
    return attempt.status


def _page_lost(payment: Payment, attempt: PaymentAttempt, result: ProviderResult) -> bool:
    """A report that the customer must act, without what to show them, for an attempt whose
    create answer (the one that had it) was never applied: lost with its request (``created``)
    or in transit (``unknown``)."""
    return (
        attempt.status in (AttemptStatus.created, AttemptStatus.unknown)
        and result.status is ProviderStatus.requires_action
        and result.action is None
        and payment.action is None
    )


async def expire(
    session: AsyncSession, *, payment_id: uuid.UUID, providers: ProviderRegistry, clock: Clock
) -> PaymentStatus | None:
    """Expire an unpaid payment past ``expires_at`` or void an authorization past ``capture_before``.

    The provider is asked first: a payment that was paid meanwhile is applied as paid, never
    expired. Returns the payment's status afterwards.
    """
    payment = await repository.get(session, payment_id)
    if payment is None:
        return None
    now = clock.now()
    due = (payment.status in (PaymentStatus.pending, PaymentStatus.requires_action) and payment.expires_at <= now) or (
        payment.status is PaymentStatus.authorized
        and payment.capture_before is not None
        and payment.capture_before <= now
    )
    if not due:
        return payment.status
    if (
        payment.pending_operation is not None
        and payment.pending_operation_at is not None
        and payment.pending_operation_at > now - OPERATION_TIMEOUT
    ):
        return payment.status  # a capture or cancel is in flight: its outcome decides
    attempt = payment.attempts[-1]
    status = await sync_attempt(session, attempt_id=attempt.id, providers=providers, clock=clock)
    payment = await repository.get(session, payment_id, lock=True)
    assert payment is not None
    if payment.status in TERMINAL_PAYMENT or status is AttemptStatus.unknown:
        return payment.status
    attempt = payment.attempts[-1]
    ref = PaymentRef(idempotency_key=str(attempt.id), provider_payment_id=attempt.provider_payment_id)
    await session.commit()
    try:
        result: ProviderResult | None = await providers.resolve(attempt.provider).void(ref)
    except (ProviderOperationNotSupported, ProviderInvalidRequest) as exc:
        # The provider cannot cancel it in this state (YooKassa: a pending payment); it expires it
        # itself. Expire ours now and keep asking, so a late payment is still seen and refunded.
        log.info("expire_without_void", payment_id=str(payment_id), error=type(exc).__name__)
        result = None
    except ProviderError as exc:
        # Unknown or unreachable: nothing is decided; the next run tries again.
        log.info("expire_void_failed", payment_id=str(payment_id), error=type(exc).__name__)
        return PaymentStatus(payment.status)
    payment, attempt = await _load(session, payment_id, attempt.id, lock=True)
    if result is not None:
        await apply_provider_result(session, payment=payment, attempt=attempt, result=result, now=clock.now())
    if payment.status not in TERMINAL_PAYMENT:
        if payment.status is PaymentStatus.authorized:
            return PaymentStatus(payment.status)  # the provider still holds the money: never drop our hold
        attempt.next_sync_at = clock.now() + SYNC_BACKOFF[-1]  # keep asking: a late success must be seen
        await _set_status(session, payment, PaymentStatus.expired, now=clock.now())
    return PaymentStatus(payment.status)


def _never_received_after(providers: ProviderRegistry, provider_name: str) -> timedelta:
    """How old an attempt must be before "not found at the provider" means it never arrived.

    Longer than the longest create call can last (every retry timing out, plus backoff), so a
    call still in flight can never be judged lost while it may yet succeed.
    """
    conf = providers.settings.by_name().get(provider_name)
    if conf is None:
        return timedelta(minutes=5)
    longest = conf.max_attempts * (conf.total_timeout_seconds + conf.backoff_max_seconds)
    return timedelta(seconds=longest + 60)


def next_sync_delay(sync_count: int) -> timedelta:
    return SYNC_BACKOFF[min(sync_count, len(SYNC_BACKOFF) - 1)]
