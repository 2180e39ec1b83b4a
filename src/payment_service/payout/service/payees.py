"""Payee accounts: payout method and sealed details, KYC status, minimum, schedule."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service import vault
from payment_service.auth import Principal, PrincipalKind
from payment_service.config import PayoutSettings, Settings
from payment_service.db import checkpoint
from payment_service.kit.money import InvalidAmount, Money, MoneyValue, UnknownCurrency
from payment_service.ledger import accounts
from payment_service.models.payout import KycStatus, PayeeAccount, PayoutSchedule
from payment_service.payout import repository
from payment_service.payout.rules import SchedulePeriods
from payment_service.payout.service.errors import (
    InvalidPayoutAmount,
    InvalidPayoutDetails,
    InvalidSchedule,
    PayeeForUsersOnly,
    PayeeNotFound,
    PayoutBelowMinimum,
    PayoutDetailsUnavailable,
)
from payment_service.providers.ports import PayoutDestination, PayoutMethod

log = structlog.get_logger(__name__)

ADMIN_SCOPE = "admin:payouts"


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
