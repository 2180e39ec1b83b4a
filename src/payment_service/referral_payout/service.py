"""Referral payouts: the Social Service asks us to pay a user a referral reward.

Invariants this module keeps:

* **One request, one effect, one answer.** A request is unique by its ``request_id`` (REST and
  Kafka deliveries of the same request meet on that row); the same id with other content is
  refused. The answer event (``referral_payout.completed`` or ``.failed``) is written in the
  transaction that moves the row out of ``pending`` (``answered_at`` set then, checked by the
  database), so each request is answered exactly once.
* **Money.** ``internal_balance``: one ledger transfer ``platform:referral_expense`` →
  ``user:<id>:wallet`` (within the wallet's ceiling). ``bank``/``e_wallet``: the reward is credited
  to ``referrer:<id>:balance`` and paid out from there by the payout engine (which retries
  transient failures with backoff); if the payout finally fails, the credit is reversed, so a
  failed request leaves nothing credited anywhere.
* A refusal (bad amount, no verified payee, no method) is a ``failed`` answer, not an error: the
  Social Service always hears back.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.auth import Principal, PrincipalKind
from payment_service.config import Settings
from payment_service.errors import Conflict, NotFound
from payment_service.kit.money import Money
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.models.payout import (
    Payout,
    PayoutSource,
    ReferralPayout,
    ReferralPayoutMethod,
    ReferralPayoutStatus,
)
from payment_service.outbox import events
from payment_service.outbox import service as outbox_service
from payment_service.payout import service as payout_service
from payment_service.payout.states import PayoutStatus
from payment_service.providers.payout_registry import PayoutRouter
from payment_service.providers.ports import PayoutMethod
from payment_service.referral_payout import repository

log = structlog.get_logger(__name__)

LEDGER_REASON = "referral_reward"
PAYOUT_DESCRIPTION = "Вознаграждение по реферальной программе"
READ_SCOPE = "referral_payouts:read"
METHODS: dict[ReferralPayoutMethod, frozenset[PayoutMethod]] = {
    ReferralPayoutMethod.bank: frozenset({PayoutMethod.bank_card, PayoutMethod.bank_account, PayoutMethod.sbp}),
    ReferralPayoutMethod.e_wallet: frozenset({PayoutMethod.yoomoney}),
}


class ReferralPayoutNotFound(NotFound):
    code = "referral_payout_not_found"
    title = "No referral payout with this request id"


class ReferralRequestConflict(Conflict):
    code = "referral_request_conflict"
    title = "This request id was already used for a different request"


class ReferralPayoutNotActionable(Conflict):
    code = "referral_payout_not_actionable"
    title = "This referral payout has no payout in progress"


@dataclass(frozen=True, slots=True)
class ReferralRequest:
    request_id: str
    user_id: str
    amount: Money
    reason: str
    referral_id: str
    method: ReferralPayoutMethod

    def fingerprint(self) -> str:
        content = {
            "user_id": self.user_id,
            "amount_minor": self.amount.amount_minor,
            "currency": self.amount.currency,
            "reason": self.reason,
            "referral_id": self.referral_id,
            "method": str(self.method),
        }
        return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _reference(row: ReferralPayout) -> str:
    return f"referral:{row.request_id}"


# ---- answering ----------------------------------------------------------------------------------


async def _answer(
    session: AsyncSession,
    row: ReferralPayout,
    status: ReferralPayoutStatus,
    *,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Move the row to its final status and write THE answer (once: only from ``pending``)."""
    if row.status is not ReferralPayoutStatus.pending:
        return
    row.status = status
    row.failure_code = reason[:64] if reason else None
    row.answered_at = now
    row.updated_at = now
    await session.flush()
    common = {
        "request_id": row.request_id,
        "user_id": row.user_id,
        "referral_id": row.referral_id,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "method": str(row.method),
        "payout_id": row.payout_id,
        "occurred_at": now,
    }
    event: events.Event
    if status is ReferralPayoutStatus.completed:
        event = events.ReferralPayoutCompleted(**common)
    else:
        event = events.ReferralPayoutFailed(**common, reason_code=row.failure_code or "unknown")
    await outbox_service.emit(session, event, key=row.request_id)
    log.info("referral_payout_answered", request_id=row.request_id, status=str(status), reason=row.failure_code)


# ---- requests -----------------------------------------------------------------------------------


async def request(
    session: AsyncSession,
    *,
    req: ReferralRequest,
    requested_by: str,
    router: PayoutRouter,
    settings: Settings,
    now: datetime,
) -> tuple[ReferralPayout, bool]:
    """Accept a payout request; returns the row and whether it is new.

    A known ``request_id`` with the same content returns the existing row (no second effect);
    with other content raises ReferralRequestConflict. A new request is carried out at once as
    far as it can be: a wallet credit completes it; a bank/e-wallet payout is created (held) and
    sent by the worker; a refusal answers ``failed`` with a reason code.
    """
    fingerprint = req.fingerprint()
    existing = await repository.by_request_id(session, req.request_id)
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise ReferralRequestConflict(referral_request_id=req.request_id)
        return existing, False
    row = ReferralPayout(
        id=uuid.uuid4(),
        request_id=req.request_id,
        requested_by=requested_by[:128],
        fingerprint=fingerprint,
        user_id=req.user_id,
        amount_minor=req.amount.amount_minor,
        currency=req.amount.currency,
        reason=req.reason[:200],
        referral_id=req.referral_id[:128],
        method=req.method,
        status=ReferralPayoutStatus.pending,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            await repository.add(session, row)
    except IntegrityError:
        concurrent = await repository.by_request_id(session, req.request_id)  # the other delivery won
        if concurrent is None:
            raise
        if concurrent.fingerprint != fingerprint:
            raise ReferralRequestConflict(referral_request_id=req.request_id) from None
        return concurrent, False

    refusal = _refusal(req, settings)
    if refusal is not None:
        await _answer(session, row, ReferralPayoutStatus.failed, now=now, reason=refusal)
    elif req.method is ReferralPayoutMethod.internal_balance:
        await _credit_wallet(session, row, settings=settings, now=now)
    else:
        await _start_payout(session, row, router=router, now=now)
    return row, True


def _refusal(req: ReferralRequest, settings: Settings) -> str | None:
    if req.amount.currency != settings.payouts.currency or not req.amount.is_positive:
        return "invalid_amount"
    try:
        accounts.referrer_balance(req.user_id, req.amount.currency)
    except ValueError:
        return "payee_not_found"
    return None


async def _credit_wallet(session: AsyncSession, row: ReferralPayout, *, settings: Settings, now: datetime) -> None:
    money = Money(row.amount_minor, row.currency)
    wallet = accounts.user_wallet(row.user_id, row.currency)
    try:
        transfer = await ledger_service.transfer(
            session,
            postings=[Posting(accounts.referral_expense(row.currency), wallet, money)],
            idempotency_key=f"{_reference(row)}:credit",
            reference=_reference(row),
            reason=LEDGER_REASON,
            now=now,
            metadata={"referral_id": row.referral_id, "method": str(row.method)},
            ceilings={wallet: Money(settings.wallet.max_balance_minor, row.currency)},
        )
    except ledger_service.LimitExceeded:
        await _answer(session, row, ReferralPayoutStatus.failed, now=now, reason="wallet_limit_exceeded")
        return
    row.credit_transfer_id = transfer.id
    await _answer(session, row, ReferralPayoutStatus.completed, now=now)


async def _start_payout(session: AsyncSession, row: ReferralPayout, *, router: PayoutRouter, now: datetime) -> None:
    money = Money(row.amount_minor, row.currency)
    balance = accounts.referrer_balance(row.user_id, row.currency)
    try:
        async with session.begin_nested():  # a refused payout takes the credit back with it
            credit = await ledger_service.transfer(
                session,
                postings=[Posting(accounts.referral_expense(row.currency), balance, money)],
                idempotency_key=f"{_reference(row)}:credit",
                reference=_reference(row),
                reason=LEDGER_REASON,
                now=now,
                metadata={"referral_id": row.referral_id, "method": str(row.method)},
            )
            payout = await payout_service.create_payout(
                session,
                user_id=row.user_id,
                source=PayoutSource.referral,
                balance_account=balance,
                amount=money,
                reference=_reference(row),
                description=PAYOUT_DESCRIPTION,
                router=router,
                now=now,
                created_by=row.requested_by,
                methods=METHODS[row.method],
                enforce_minimum=False,
            )
    except payout_service.REFUSALS as exc:
        await _answer(session, row, ReferralPayoutStatus.failed, now=now, reason=exc.code)
        return
    row.credit_transfer_id = credit.id
    row.payout_id = payout.id
    row.updated_at = now
    await session.flush()


async def on_payout_finished(session: AsyncSession, payout: Payout, now: datetime) -> None:
    """Payout hook for source ``referral`` (same transaction): answer the request.

    Succeeded → ``completed``. Failed or canceled → the credit is reversed (the voided hold has
    just returned the money to the referrer balance) and the answer is ``failed`` with the payout's
    failure code. Idempotent: a request is answered once.
    """
    row = await repository.by_payout_id(session, payout.id, lock=True)
    if row is None:
        log.error("referral_payout_without_request", payout_id=str(payout.id))
        return
    if row.status is not ReferralPayoutStatus.pending:
        return
    if payout.status is PayoutStatus.succeeded:
        await _answer(session, row, ReferralPayoutStatus.completed, now=now)
        return
    if row.credit_transfer_id is not None and row.reversal_transfer_id is None:
        reversal = await ledger_service.reverse(
            session,
            transfer_id=row.credit_transfer_id,
            idempotency_key=f"{_reference(row)}:reverse",
            now=now,
            reason="referral_reward_reversal",
            reference=_reference(row),
        )
        row.reversal_transfer_id = reversal.id
    await _answer(session, row, ReferralPayoutStatus.failed, now=now, reason=payout.failure_code or "canceled")


payout_service.on_finished(PayoutSource.referral, on_payout_finished)


# ---- reading and operators ----------------------------------------------------------------------


def can_see(principal: Principal) -> bool:
    """The Social Service (``referral_payouts:read``) and operators (``admin:payouts``); not users."""
    return principal.kind is not PrincipalKind.user and (
        principal.has(READ_SCOPE) or principal.has(payout_service.ADMIN_SCOPE)
    )


async def get(session: AsyncSession, *, principal: Principal, request_id: str) -> tuple[ReferralPayout, Payout | None]:
    """The request and its payout. Raises ReferralPayoutNotFound (also for callers who may not see it)."""
    row = await repository.by_request_id(session, request_id)
    if row is None or not can_see(principal):
        raise ReferralPayoutNotFound()
    payout = await payout_service.find(session, row.payout_id) if row.payout_id is not None else None
    return row, payout


async def payout_of(session: AsyncSession, *, request_id: str) -> uuid.UUID:
    """The payout carrying a request (for operators' retry/cancel). Raises ReferralPayoutNotFound,
    ReferralPayoutNotActionable."""
    row = await repository.by_request_id(session, request_id)
    if row is None:
        raise ReferralPayoutNotFound()
    if row.payout_id is None or row.status is not ReferralPayoutStatus.pending:
        raise ReferralPayoutNotActionable(request_status=str(row.status))
    return row.payout_id
