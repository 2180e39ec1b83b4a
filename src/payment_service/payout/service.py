"""Payouts: payee accounts, and sending held balances out through payout providers.

Invariants this module keeps:

* **Money first.** A payout exists only with its amount held on the payee's ledger balance (hold
  balance → ``provider:<p>:payouts``, key ``payout:<id>:hold``, same transaction as the row). The
  hold is posted when the provider confirms (``payout:<id>:post``) and voided when the payout fails
  or is canceled (``payout:<id>:void``): the money is back on the balance, with the reason on the
  payout and in ``payout.failed``.
* **Record, commit, call, apply** (like payments): the attempt is committed with ``submitted_at``
  before the provider is called; no transaction is open during the call; the answer is applied in
  a new transaction by :func:`apply_result` — the same function for the synchronous answer,
  webhooks and the status sync, so duplicates and late answers have no second effect.
* **Unknown is resolved, never guessed.** A lost answer leaves the attempt ``unknown`` and the
  payout ``processing`` until :func:`sync_attempt` learns the outcome. A new attempt (a new
  idempotency key) is made only after a *definite* failure of the previous one, so the payee is
  never paid twice.
* **Details stay secret.** Payout details are Vault Transit ciphertext at rest (a snapshot on each
  payout); they are decrypted only to call the provider and never logged.
* Every status change goes through ``states.py`` and writes an outbox event in the same
  transaction; the earning module that created the payout hears the outcome through
  :func:`on_finished` hooks (same transaction).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import orjson
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service import vault
from payment_service.auth import Principal, PrincipalKind
from payment_service.config import PayoutSettings, Settings
from payment_service.db import checkpoint
from payment_service.errors import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
)
from payment_service.kit.money import InvalidAmount, Money, MoneyValue, UnknownCurrency
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.accounts import AccountSpec
from payment_service.ledger.schemas import Posting
from payment_service.models.payout import (
    KycStatus,
    PayeeAccount,
    Payout,
    PayoutAttempt,
    PayoutBatch,
    PayoutSchedule,
    PayoutSource,
)
from payment_service.outbox import events
from payment_service.outbox import service as outbox_service
from payment_service.payout import repository
from payment_service.payout.metrics import (
    PAYOUT_ANOMALIES,
    PAYOUT_ATTEMPTS,
    PAYOUT_FAILURES,
    PAYOUT_STATUS,
    PAYOUTS_OPEN,
    PAYOUTS_STUCK,
)
from payment_service.payout.rules import SchedulePeriods
from payment_service.payout.states import (
    PROVIDER_NOT_REACHED,
    PROVIDER_REJECTED,
    PROVIDER_UNAVAILABLE,
    TERMINAL_ATTEMPT,
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
from payment_service.providers.errors import (
    ProviderAmountMismatch,
    ProviderError,
    ProviderInvalidRequest,
    ProviderNotFound,
    ProviderSignatureInvalid,
    ProviderTimeout,
)
from payment_service.providers.payout_registry import PayoutRegistry, PayoutRouter
from payment_service.providers.ports import (
    PayoutCapability,
    PayoutDestination,
    PayoutEvent,
    PayoutMethod,
    PayoutRef,
    PayoutRequest,
    PayoutResult,
    ProviderPayoutStatus,
)
from payment_service.providers.registry import UnknownProvider, should_fail_over

log = structlog.get_logger(__name__)

LEDGER_REASON = "payout"
SUBMIT_LEASE = timedelta(minutes=5)
"""A submitted attempt whose answer was never applied (crash mid-call) is sent again, with the same
idempotency key, after this long."""
REPLAY_WINDOW = timedelta(hours=23)
"""YooKassa replays a create under the same Idempotence-Key for 24 h: a lost answer is recovered by
repeating the create within this window; later the attempt stays unknown for an operator."""
NOT_REACHED_AFTER = timedelta(minutes=1)
VAULT_RETRY = timedelta(minutes=1)
ADMIN_SCOPE = "admin:payouts"


class PayeeNotFound(NotFound):
    code = "payee_not_found"
    title = "This user has no payee account"


class PayeeForUsersOnly(Forbidden):
    code = "payee_for_users_only"
    title = "Only a user (a user token) has a payee account of their own"


class PayeeNotVerified(Conflict):
    code = "payee_not_verified"
    title = "The payee's identity is not verified (KYC); payouts are not allowed yet"


class PayoutMethodMissing(Conflict):
    code = "payout_method_missing"
    title = "The payee has no payout method that can take this payout"


class InvalidPayoutDetails(Unprocessable):
    code = "invalid_payout_details"
    title = "The payout details are not valid for the method"


class InvalidSchedule(Unprocessable):
    code = "invalid_schedule"
    title = "Weekly schedules need a weekday 1-7, monthly ones a day 1-28, manual none"


class InvalidPayoutAmount(Unprocessable):
    code = "invalid_amount"
    title = "The amount is not valid for a payout"


class PayoutBelowMinimum(Unprocessable):
    code = "amount_below_minimum"
    title = "The amount is below the minimum payout"


class NoPayoutProvider(ServiceUnavailable):
    code = "no_payout_provider"
    title = "No payout provider can make this payout now"


class InsufficientBalance(Conflict):
    code = "insufficient_balance"
    title = "The balance does not hold the amount to pay out"


class PayoutDetailsUnavailable(ServiceUnavailable):
    code = "payout_details_unavailable"
    title = "Payout details cannot be encrypted or decrypted right now; retry"


class PayoutNotFound(NotFound):
    code = "payout_not_found"
    title = "Payout not found"


class PayoutNotCancelable(Conflict):
    code = "payout_not_cancelable"
    title = "Only a payout no provider has yet can be canceled"


class PayoutNotRetryable(Conflict):
    code = "payout_not_retryable"
    title = "A finished payout cannot be retried"


class UnknownPayoutProvider(NotFound):
    code = "unknown_provider"
    title = "No such payout provider"


class PayoutWebhookSignatureInvalid(Unauthorized):
    code = "webhook_signature_invalid"
    title = "The webhook could not be authenticated"


class PayoutWebhookVerificationUnavailable(ServiceUnavailable):
    code = "webhook_verification_unavailable"
    title = "The webhook cannot be verified with the provider right now; deliver it again later"


REFUSALS: tuple[type[AppError], ...] = (
    PayeeNotFound,
    PayeeNotVerified,
    PayoutMethodMissing,
    InvalidPayoutAmount,
    PayoutBelowMinimum,
    NoPayoutProvider,
    InsufficientBalance,
)
"""Why :func:`create_payout` refuses a payout (business answers, not failures to retry)."""


# ---- details at rest ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DetailsVault:
    """Seals payout details with Vault Transit (key ``payouts.details_key``) and opens them again."""

    settings: Settings
    http: httpx.AsyncClient

    async def seal(self, destination: PayoutDestination) -> str:
        """Ciphertext of the details. Raises vault.VaultError."""
        plaintext = orjson.dumps(destination.to_json())
        return await vault.encrypt(self.settings, self.http, self.settings.payouts.details_key, plaintext)

    async def open(self, ciphertext: str) -> PayoutDestination:
        """The details sealed in ``ciphertext``. Raises vault.VaultError."""
        plaintext = await vault.decrypt(self.settings, self.http, self.settings.payouts.details_key, ciphertext)
        return PayoutDestination.from_json(orjson.loads(plaintext))


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


# ---- texts for the payee (Russian) --------------------------------------------------------------

_SYMBOLS = {"RUB": "₽"}
_FAILURE_TEXT = {
    "insufficient_funds": "временно недостаточно средств на счёте выплат платформы",
    "recipient_not_found": "получатель не найден",
    "invalid_destination": "реквизиты не подходят для выплаты",
    "limit_exceeded": "превышен лимит выплат",
    "fraud_suspected": "выплата отклонена службой безопасности",
    "issuer_unavailable": "банк получателя не ответил",
    "rejected_by_payee": "получатель отказался от выплаты",
    "recipient_check_failed": "данные получателя не совпали",
    PROVIDER_UNAVAILABLE: "платёжный сервис недоступен",
    PROVIDER_REJECTED: "платёжный сервис отклонил выплату",
}


def format_rub(money: Money) -> str:
    """``1 500,00 ₽`` (non-breaking thin grouping, decimal comma)."""
    whole, _, frac = money.to_decimal_string().lstrip("-").partition(".")
    groups: list[str] = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    sign = "-" if money.is_negative else ""
    text = "\u00a0".join(groups or ["0"]) + ("," + frac if frac else "")
    return f"{sign}{text}\u00a0{_SYMBOLS.get(money.currency, money.currency)}"


def _destination_ru(payout: Payout) -> str:
    digits = re.findall(r"\d{4}", payout.destination_masked)
    tail = f" *{digits[0]}" if digits else ""
    return {
        PayoutMethod.bank_card: f"карту{tail}",
        PayoutMethod.bank_account: f"счёт{tail}",
        PayoutMethod.yoomoney: f"кошелёк ЮMoney{tail}",
        PayoutMethod.sbp: f"номер телефона по СБП{tail}",
    }[PayoutMethod(payout.method)]


def notification_text(payout: Payout) -> str:
    amount = format_rub(Money(payout.amount_minor, payout.currency))
    status = PayoutStatus(payout.status)
    if status is PayoutStatus.succeeded:
        return f"Выплата {amount} отправлена на {_destination_ru(payout)}"
    if status is PayoutStatus.failed:
        reason = _FAILURE_TEXT.get(payout.failure_code or "", "выплата отклонена")
        return f"Выплата {amount} не выполнена: {reason}. Деньги вернулись на ваш баланс"
    if status is PayoutStatus.canceled:
        return f"Выплата {amount} отменена. Деньги вернулись на ваш баланс"
    return f"Выплата {amount} на {_destination_ru(payout)} создана и скоро будет отправлена"


# ---- payees -------------------------------------------------------------------------------------


def _own_user(principal: Principal) -> str:
    if principal.kind is not PrincipalKind.user:
        raise PayeeForUsersOnly()
    return principal.subject


def _check_user_id(user_id: str) -> None:
    try:
        accounts.user_wallet(user_id)
    except ValueError:
        raise PayeeNotFound(user_id=user_id[:64]) from None


async def _payee_for_update(session: AsyncSession, user_id: str, settings: PayoutSettings) -> PayeeAccount:
    _check_user_id(user_id)
    await repository.insert_payee_if_missing(
        session,
        PayeeAccount(
            id=uuid.uuid4(),
            user_id=user_id,
            kyc_status=KycStatus.unverified,
            currency=settings.currency,
            min_payout_minor=settings.min_amount_minor,
            schedule=PayoutSchedule.manual,
        ),
    )
    payee = await repository.payee_by_user(session, user_id, lock=True)
    assert payee is not None
    return payee


async def get_payee(session: AsyncSession, *, principal: Principal, user_id: str | None = None) -> PayeeAccount:
    """The caller's payee account (users), or ``user_id``'s (admins with ``admin:payouts``).
    Raises PayeeNotFound, PayeeForUsersOnly."""
    if user_id is None:
        user_id = _own_user(principal)
    elif not (principal.subject == user_id if principal.kind is PrincipalKind.user else principal.has(ADMIN_SCOPE)):
        raise PayeeNotFound()
    payee = await repository.payee_by_user(session, user_id)
    if payee is None:
        raise PayeeNotFound()
    return payee


def parse_money(value: MoneyValue, *, currency: str) -> Money:
    """A positive Money in ``currency`` from the API's decimal string. Raises InvalidPayoutAmount."""
    try:
        money = value.to_money()
    except (UnknownCurrency, InvalidAmount) as exc:
        raise InvalidPayoutAmount(str(exc)) from None
    if money.currency != currency:
        raise InvalidPayoutAmount(f"payouts are made in {currency}", currency=money.currency)
    if not money.is_positive:
        raise InvalidPayoutAmount("the amount must be positive")
    return money


def destination_from(fields: dict[str, str | None]) -> PayoutDestination:
    """Payout details from the API's fields. Raises InvalidPayoutDetails (naming the problem only)."""
    try:
        method = PayoutMethod(str(fields.get("method")))
        values = {k: v for k, v in fields.items() if k != "method" and v is not None}
        return PayoutDestination(method=method, **values)
    except (ValueError, TypeError) as exc:
        raise InvalidPayoutDetails(str(exc) if isinstance(exc, ValueError) else "unexpected field") from None


async def update_payee(
    session: AsyncSession,
    *,
    principal: Principal,
    destination: PayoutDestination | None,
    schedule: PayoutSchedule | None,
    schedule_day: int | None,
    min_payout: MoneyValue | None,
    details_vault: DetailsVault,
    now: datetime,
) -> PayeeAccount:
    """Set the caller's payout method and details, schedule and minimum (creating the account).

    Details are sealed with Vault Transit before they touch the database; the transaction is
    committed (``db.checkpoint``) before Vault is called. A payout already created keeps the
    details it was created with. Raises PayeeForUsersOnly, InvalidSchedule, PayoutBelowMinimum,
    InvalidPayoutAmount, PayoutDetailsUnavailable.
    """
    settings = details_vault.settings.payouts
    user_id = _own_user(principal)
    _check_user_id(user_id)
    if schedule is not None:
        fits = {
            PayoutSchedule.manual: schedule_day is None,
            PayoutSchedule.weekly: schedule_day is not None and 1 <= schedule_day <= 7,
            PayoutSchedule.monthly: schedule_day is not None and 1 <= schedule_day <= 28,
        }[schedule]
        if not fits:
            raise InvalidSchedule(schedule=str(schedule), schedule_day=schedule_day)
    minimum = None
    if min_payout is not None:
        minimum = parse_money(min_payout, currency=settings.currency)
        floor = Money(settings.min_amount_minor, settings.currency)
        if minimum < floor:
            raise PayoutBelowMinimum(
                f"the minimum payout is at least {floor}", minimum=MoneyValue.of(floor).model_dump()
            )
    sealed = None
    if destination is not None:
        await checkpoint(session)  # no transaction stays open while Vault works
        try:
            sealed = await details_vault.seal(destination)
        except vault.VaultError as exc:
            log.error("payout_details_seal_failed", error=type(exc).__name__)
            raise PayoutDetailsUnavailable(retry_after=5) from None
    payee = await _payee_for_update(session, user_id, settings)
    if destination is not None and sealed is not None:
        payee.method = destination.method
        payee.details_ciphertext = sealed
        payee.details_masked = destination.masked()
        payee.details_updated_at = now
    if schedule is not None:
        payee.schedule = schedule
        payee.schedule_day = schedule_day
    if minimum is not None:
        payee.min_payout_minor = minimum.amount_minor
    payee.updated_at = now
    await session.flush()
    log.info("payee_updated", user_id=user_id, method=str(payee.method), schedule=str(payee.schedule))
    return payee


async def set_verification(
    session: AsyncSession, *, user_id: str, status: KycStatus, by: str, settings: PayoutSettings, now: datetime
) -> PayeeAccount:
    """Record the outcome of the payee's identity check (creating the account). Raises PayeeNotFound
    for an impossible user id."""
    payee = await _payee_for_update(session, user_id, settings)
    payee.kyc_status = status
    payee.kyc_updated_at = now
    payee.kyc_updated_by = by[:128]
    payee.updated_at = now
    await session.flush()
    return payee


async def scheduled_payees_due(
    session: AsyncSession, *, periods: SchedulePeriods, limit: int
) -> Sequence[PayeeAccount]:
    """Verified payees with a method whose payout day of the current period has come and whose period
    was not handled yet; locked (skip locked) so one worker takes each."""
    return await repository.scheduled_payees_due(
        session,
        weekly_period=periods.weekly,
        weekday=periods.weekday,
        monthly_period=periods.monthly,
        day=periods.day.day,
        limit=limit,
    )


def mark_scheduled(payee: PayeeAccount, period: str, *, now: datetime) -> None:
    """Record that the scheduled payout of ``period`` was handled (paid, or nothing payable)."""
    payee.last_scheduled_period = period
    payee.updated_at = now


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


def _reference(payout: Payout) -> str:
    return f"payout:{payout.id}"


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
        payout = await repository.get(session, payout_id, lock=True)
        assert payout is not None
        payout.next_attempt_at = clock() + VAULT_RETRY
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


# ---- operators ----------------------------------------------------------------------------------


async def cancel(session: AsyncSession, *, payout_id: uuid.UUID, by: str, now: datetime) -> Payout:
    """Cancel a payout that no provider has: never submitted, or waiting for its next attempt.

    The hold is voided (the money is back on the balance) and ``payout.canceled`` emitted; the
    earning module hears it (a referral payout answers ``failed`` with ``canceled``). Raises
    PayoutNotFound, PayoutNotCancelable.
    """
    payout = await repository.get(session, payout_id, lock=True)
    if payout is None:
        raise PayoutNotFound()
    if payout.status is not PayoutStatus.pending:
        raise PayoutNotCancelable(payout_status=str(payout.status))
    last = payout.attempts[-1] if payout.attempts else None
    if last is not None and last.status is PayoutAttemptStatus.created:
        if last.submitted_at is not None:
            raise PayoutNotCancelable("the provider may have the payout already; wait for its outcome")
        last.status = PayoutAttemptStatus.failed
        last.failure_code = "canceled"
        last.updated_at = now
    log.info("payout_canceled", payout_id=str(payout.id), by=by)
    await _finish_failed(
        session, payout, code="canceled", message=f"canceled by {by}"[:500], now=now, status=PayoutStatus.canceled
    )
    return payout


async def retry(
    session: AsyncSession,
    *,
    payout_id: uuid.UUID,
    registry: PayoutRegistry,
    details_vault: DetailsVault,
    clock: Callable[[], datetime],
) -> Payout:
    """Operator's "try now": a pending payout makes its next attempt at once, a processing one asks
    its provider now. Raises PayoutNotFound, PayoutNotRetryable (finished payouts)."""
    payout = await repository.get(session, payout_id, lock=True)
    if payout is None:
        raise PayoutNotFound()
    if payout.status in TERMINAL_PAYOUT:
        raise PayoutNotRetryable(payout_status=str(payout.status))
    if payout.status is PayoutStatus.pending:
        payout.next_attempt_at = clock()
        await session.flush()
        found = await submit(session, payout_id=payout_id, registry=registry, details_vault=details_vault, clock=clock)
    else:
        for attempt_id in await repository.open_attempt_ids(session, payout_id):
            await sync_attempt(
                session, attempt_id=attempt_id, registry=registry, details_vault=details_vault, clock=clock
            )
        found = await repository.get(session, payout_id)
    assert found is not None
    return found


async def report_health(session: AsyncSession, *, settings: PayoutSettings, now: datetime) -> int:
    """Refresh the open/stuck gauges; returns how many payouts are stuck."""
    stuck_total = 0
    PAYOUTS_OPEN.clear()
    PAYOUTS_STUCK.clear()
    for source, status, open_count, stuck in await repository.open_counts(
        session, stuck_before=now - timedelta(minutes=settings.stuck_after_minutes)
    ):
        PAYOUTS_OPEN.labels(source, status).set(open_count)
        PAYOUTS_STUCK.labels(source, status).set(stuck)
        stuck_total += stuck
    if stuck_total:
        log.warning("payouts_stuck", count=stuck_total)
    return stuck_total
