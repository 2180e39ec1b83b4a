"""Reading and creating payouts (the money is held in the same transaction)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.auth import Principal, PrincipalKind
from payment_service.errors import Unprocessable
from payment_service.kit.money import Money, MoneyValue
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.accounts import AccountSpec
from payment_service.ledger.schemas import Posting
from payment_service.models.payout import KycStatus, Payout, PayoutAttempt, PayoutBatch, PayoutSource
from payment_service.payout import repository
from payment_service.payout.service.errors import (
    InsufficientBalance,
    InvalidPayoutAmount,
    NoPayoutProvider,
    PayeeNotFound,
    PayeeNotVerified,
    PayoutBelowMinimum,
    PayoutMethodMissing,
    PayoutNotFound,
)
from payment_service.payout.service.lifecycle import _emit
from payment_service.payout.service.payees import ADMIN_SCOPE
from payment_service.payout.states import PayoutAttemptStatus, PayoutStatus
from payment_service.providers.payout_registry import PayoutRouter
from payment_service.providers.ports import PayoutMethod

log = structlog.get_logger(__name__)

LEDGER_REASON = "payout"


# ---- reading payouts ----------------------------------------------------------------------------


def can_see(principal: Principal, payout: Payout) -> bool:
    """Users see their own payouts; admins with ``admin:payouts`` see all."""
    if principal.kind is PrincipalKind.user:
        return payout.user_id == principal.subject
    return principal.has(ADMIN_SCOPE)


async def get(session: AsyncSession, *, principal: Principal, payout_id: uuid.UUID) -> Payout:
    """The payout if the principal may see it. Raises PayoutNotFound (also for others')."""
    payout = await repository.get(session, payout_id)
    if payout is None or not can_see(principal, payout):
        raise PayoutNotFound()
    return payout


async def find(session: AsyncSession, payout_id: uuid.UUID) -> Payout | None:
    """A payout by id, without authorization (for the earning modules that created it)."""
    return await repository.get(session, payout_id)


async def list_payouts(
    session: AsyncSession,
    *,
    user_id: str | None,
    source: PayoutSource | None = None,
    statuses: Sequence[PayoutStatus] | None = None,
    created_before: datetime | None = None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Payout], str | None]:
    """A page of payouts, newest first (callers decide whose). Raises Unprocessable on a bad cursor."""
    try:
        after = repository.decode_cursor(cursor) if cursor else None
    except ValueError:
        raise Unprocessable("cursor is not valid", field="cursor") from None
    rows = await repository.page(
        session,
        user_id=user_id,
        source=source,
        statuses=statuses,
        created_before=created_before,
        after=after,
        limit=limit + 1,
    )
    items = rows[:limit]
    next_cursor = repository.encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return items, next_cursor


# ---- creating -----------------------------------------------------------------------------------


async def batch_for(
    session: AsyncSession, *, source: PayoutSource, reference: str, currency: str, now: datetime
) -> PayoutBatch:
    """The batch ``reference`` (``streamer:2026-11-30``), created on first use."""
    return await repository.batch(session, source=source, reference=reference, currency=currency, now=now)


async def create_payout(
    session: AsyncSession,
    *,
    user_id: str,
    source: PayoutSource,
    balance_account: AccountSpec,
    amount: Money,
    reference: str,
    description: str,
    router: PayoutRouter,
    now: datetime,
    created_by: str,
    methods: frozenset[PayoutMethod] | None = None,
    batch: PayoutBatch | None = None,
    enforce_minimum: bool = True,
) -> Payout:
    """Create a payout of ``amount`` from ``balance_account`` to the payee's method, and hold the money.

    Idempotent on ``reference``: an existing payout with it is returned unchanged. The payout is
    ``pending`` with its first attempt due now (the worker's submit job calls the provider).
    Everything happens in a savepoint: a refusal leaves the caller's transaction as it was.
    Raises PayeeNotFound, PayeeNotVerified, PayoutMethodMissing (none, or not one of ``methods``),
    InvalidPayoutAmount, PayoutBelowMinimum (unless ``enforce_minimum`` is False),
    NoPayoutProvider, InsufficientBalance.
    """
    existing = await repository.by_reference(session, reference)
    if existing is not None:
        return existing
    payee = await repository.payee_by_user(session, user_id)
    if payee is None:
        raise PayeeNotFound(user_id=user_id[:64])
    if payee.kyc_status is not KycStatus.verified:
        raise PayeeNotVerified(kyc_status=str(payee.kyc_status))
    if payee.method is None or payee.details_ciphertext is None or (methods and payee.method not in methods):
        raise PayoutMethodMissing(method=str(payee.method) if payee.method else None)
    if amount.currency != payee.currency or amount.currency != balance_account.currency or not amount.is_positive:
        raise InvalidPayoutAmount(currency=amount.currency)
    if enforce_minimum and amount.amount_minor < payee.min_payout_minor:
        minimum = Money(payee.min_payout_minor, payee.currency)
        raise PayoutBelowMinimum(f"the minimum payout is {minimum}", minimum=MoneyValue.of(minimum).model_dump())
    candidates = router.route(
        method=PayoutMethod(payee.method), currency=amount.currency, amount_minor=amount.amount_minor
    )
    if not candidates:
        raise NoPayoutProvider(f"no provider pays {payee.method} {amount} now", retry_after=60)
    provider = candidates[0]
    payout_id = uuid.uuid4()
    payout = Payout(
        id=payout_id,
        payee_id=payee.id,
        user_id=user_id,
        source=source,
        reference=reference,
        batch_id=batch.id if batch else None,
        balance_account=balance_account.code,
        amount_minor=amount.amount_minor,
        currency=amount.currency,
        method=payee.method,
        provider=provider,
        destination_masked=payee.details_masked or str(payee.method),
        details_ciphertext=payee.details_ciphertext,
        description=description[:128],
        status=PayoutStatus.pending,
        attempts_count=1,
        next_attempt_at=now,
        created_by=created_by[:128],
        created_at=now,
        updated_at=now,
    )
    attempt = PayoutAttempt(
        id=uuid.uuid4(),
        payout_id=payout_id,
        number=1,
        provider=provider,
        status=PayoutAttemptStatus.created,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            hold = await ledger_service.hold(
                session,
                postings=[Posting(balance_account, accounts.provider_payouts(provider, amount.currency), amount)],
                idempotency_key=f"payout:{payout_id}:hold",
                reference=f"payout:{payout_id}",
                reason=LEDGER_REASON,
                now=now,
                metadata={"source": str(source), "user_id": user_id},
            )
            payout.ledger_hold_id = hold.id
            await repository.add(session, payout, attempt)
            if batch is not None:
                await repository.count_into_batch(session, batch.id, amount.amount_minor)
            await _emit(session, payout, now=now)
    except IntegrityError:
        concurrent = await repository.by_reference(session, reference)  # created meanwhile by another transaction
        if concurrent is None:
            raise
        return concurrent
    except ledger_service.InsufficientFunds as exc:
        raise InsufficientBalance(
            available=MoneyValue.of(exc.available).model_dump(), required=MoneyValue.of(exc.required).model_dump()
        ) from None
    log.info(
        "payout_created",
        payout_id=str(payout_id),
        source=str(source),
        provider=provider,
        amount_minor=amount.amount_minor,
        destination=payout.destination_masked,
    )
    return payout
