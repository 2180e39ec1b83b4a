"""Player wallets: one ledger account per user and currency (``user:{id}:wallet``), RUB by default.

A wallet has no table of its own: its balance IS the ledger account, and every movement below is
one or two ``ledger.service`` calls in the caller's transaction. What this module adds:

* create on first use, and the view a player sees (balance, available, pending, limits);
* paying an order from the wallet: a hold (wallet → order clearing) posted on fulfilment,
  voided on cancel, released by the ledger's expiry job when forgotten;
* split tender (part wallet, part card): hold the wallet part; post it together with the card
  leg in one transaction; release it when the card fails;
* refunds to the wallet and support adjustments;
* limits (:class:`~payment_service.config.WalletSettings`): the maximum balance is a ledger
  ceiling, checked under the wallet's row lock; the daily top-up sum is read under the same lock.

Errors: :class:`InsufficientWalletFunds` (402, with the shortfall), :class:`WalletLimitExceeded`
(409), :class:`InvalidWalletOwner` (400), :class:`WalletOwnerRequired` (403),
:class:`InvalidWalletAmount` (422); ledger errors (holds, idempotency) pass through.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import WalletSettings
from payment_service.errors import AppError, BadRequest, Conflict, Forbidden, Unprocessable
from payment_service.kit.money import Money, MoneyValue
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.accounts import AccountSpec
from payment_service.ledger.schemas import Balance, HistoryPage, Posting, Transfer

TOP_UP = "wallet_top_up"
ORDER_PAYMENT = "order_payment"
REFUND = "refund"
ADJUSTMENT = "wallet_adjustment"


class InsufficientWalletFunds(AppError):
    """The wallet cannot cover the amount; ``shortfall`` says how much is missing."""

    code = "insufficient_funds"
    status = 402
    title = "Not enough money in the wallet"

    def __init__(self, *, available: Money, required: Money) -> None:
        self.available = available
        self.required = required
        self.shortfall = required - available
        super().__init__(
            f"The wallet has {available} available; {required} is needed",
            available=MoneyValue.of(available).model_dump(),
            required=MoneyValue.of(required).model_dump(),
            shortfall=MoneyValue.of(self.shortfall).model_dump(),
        )


class WalletLimitExceeded(Conflict):
    """A top-up would exceed the maximum balance or the daily top-up limit."""

    code = "wallet_limit_exceeded"
    title = "The wallet limit does not allow this top-up"

    def __init__(self, *, limit: str, limit_amount: Money, excess: Money) -> None:
        self.limit = limit
        self.limit_amount = limit_amount
        self.excess = excess
        super().__init__(
            f"The {limit.replace('_', ' ')} of {limit_amount} would be exceeded by {excess}",
            limit=limit,
            limit_amount=MoneyValue.of(limit_amount).model_dump(),
            excess=MoneyValue.of(excess).model_dump(),
        )


class InvalidWalletOwner(BadRequest):
    code = "invalid_wallet_owner"
    title = "This principal cannot own a wallet"


class WalletOwnerRequired(Forbidden):
    code = "wallet_owner_required"
    title = "Only a user has a wallet of their own; use the admin endpoints"


class InvalidWalletAmount(Unprocessable):
    code = "invalid_wallet_amount"
    title = "The amount must be positive and in the wallet's currency"


@dataclass(frozen=True, slots=True)
class WalletLimits:
    max_balance: Money
    daily_top_up: Money
    top_up_left_today: Money


@dataclass(frozen=True, slots=True)
class WalletState:
    user_id: str
    account: AccountSpec
    balance: Balance
    limits: WalletLimits


@dataclass(frozen=True, slots=True)
class SplitTender:
    """How an order is paid: ``wallet`` from the wallet, ``card`` by card (either may be zero)."""

    wallet: Money
    card: Money


@dataclass(frozen=True, slots=True)
class SplitTenderCapture:
    wallet: Transfer
    card: Transfer


def wallet_account(user_id: str, currency: str = "RUB") -> AccountSpec:
    """The ledger account of ``user_id``'s wallet. Raises InvalidWalletOwner for unusable ids."""
    try:
        return accounts.user_wallet(user_id, currency)
    except ValueError:
        raise InvalidWalletOwner() from None


def _amount(amount: Money, currency: str) -> Money:
    if not isinstance(amount, Money):
        raise TypeError("amount must be Money")
    if amount.currency != currency or amount.amount_minor <= 0:
        raise InvalidWalletAmount(f"expected a positive amount in {currency}, got {amount}")
    return amount


def _day_start(now: datetime, settings: WalletSettings) -> datetime:
    local = now.astimezone(ZoneInfo(settings.day_timezone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _limits(settings: WalletSettings, topped_up_today: Money) -> WalletLimits:
    daily = Money(settings.daily_top_up_minor, settings.currency)
    left = daily - topped_up_today
    return WalletLimits(
        max_balance=Money(settings.max_balance_minor, settings.currency),
        daily_top_up=daily,
        top_up_left_today=left if left.amount_minor > 0 else Money.zero(settings.currency),
    )


# ---- reads ----------------------------------------------------------------------------------------


async def get_wallet(session: AsyncSession, *, user_id: str, settings: WalletSettings, now: datetime) -> WalletState:
    """The wallet of ``user_id``, created on first use. Raises InvalidWalletOwner."""
    account = wallet_account(user_id, settings.currency)
    await ledger_service.ensure_accounts(session, [account])
    balance = await ledger_service.balance(session, account)
    topped_up = await ledger_service.credited_since(session, account, reasons=[TOP_UP], since=_day_start(now, settings))
    return WalletState(user_id=user_id, account=account, balance=balance, limits=_limits(settings, topped_up))


async def transactions(
    session: AsyncSession, *, user_id: str, settings: WalletSettings, cursor: str | None = None, limit: int = 50
) -> HistoryPage:
    """Lines of the wallet, newest first: posted movements and holds still pending, each with
    its business reason. Raises InvalidWalletOwner, ledger InvalidCursor."""
    return await ledger_service.history(session, wallet_account(user_id, settings.currency), cursor=cursor, limit=limit)


# ---- top-ups, refunds, adjustments ------------------------------------------------------------------


async def top_up(
    session: AsyncSession,
    *,
    user_id: str,
    amount: Money,
    provider: str,
    payment_id: str,
    idempotency_key: str,
    settings: WalletSettings,
    now: datetime,
) -> Transfer:
    """Credit money paid in through ``provider`` (its clearing account is debited).

    Atomic with the limits: the wallet row is locked first, so neither the daily top-up sum nor
    the balance can change before commit. A replay of ``idempotency_key`` returns the first
    transfer without counting it twice. Raises WalletLimitExceeded, InvalidWalletAmount.
    """
    amount = _amount(amount, settings.currency)
    account = wallet_account(user_id, settings.currency)
    await ledger_service.lock_accounts(session, [account])
    if await ledger_service.get_transfer_by_key(session, idempotency_key) is None:
        topped_up = await ledger_service.credited_since(
            session, account, reasons=[TOP_UP], since=_day_start(now, settings)
        )
        daily = Money(settings.daily_top_up_minor, settings.currency)
        if topped_up + amount > daily:
            raise WalletLimitExceeded(limit="daily_top_up", limit_amount=daily, excess=topped_up + amount - daily)
    max_balance = Money(settings.max_balance_minor, settings.currency)
    try:
        return await ledger_service.transfer(
            session,
            postings=[Posting(accounts.provider_clearing(provider, settings.currency), account, amount)],
            idempotency_key=idempotency_key,
            reference=f"payment:{payment_id}",
            reason=TOP_UP,
            now=now,
            ceilings={account: max_balance},
        )
    except ledger_service.LimitExceeded as exc:
        raise WalletLimitExceeded(limit="max_balance", limit_amount=max_balance, excess=exc.excess) from None


async def refund_to_wallet(
    session: AsyncSession,
    *,
    user_id: str,
    amount: Money,
    refund_id: str,
    idempotency_key: str,
    now: datetime,
    sources: Sequence[tuple[AccountSpec, Money]] | None = None,
    currency: str = "RUB",
) -> Transfer:
    """Credit a refund to the wallet (no balance limit applies: a refund always lands).

    ``sources`` are the accounts that give the money back (e.g. the developer's share, the
    platform fee and the VAT of the refunded purchase) and must add up to ``amount``; by default
    the order clearing account. Raises InvalidWalletAmount, ledger InsufficientFunds (a source
    that was already paid out), ledger idempotency errors.
    """
    amount = _amount(amount, currency)
    account = wallet_account(user_id, currency)
    legs = list(sources) if sources is not None else [(accounts.order_clearing(currency), amount)]
    if sum(m.amount_minor for _, m in legs) != amount.amount_minor:
        raise InvalidWalletAmount("refund sources must add up to the refunded amount")
    return await ledger_service.transfer(
        session,
        postings=[Posting(source, account, part) for source, part in legs],
        idempotency_key=idempotency_key,
        reference=f"refund:{refund_id}",
        reason=REFUND,
        now=now,
    )


async def adjust(
    session: AsyncSession,
    *,
    user_id: str,
    amount: Money,
    credit: bool,
    note: str,
    operator: str,
    idempotency_key: str,
    settings: WalletSettings,
    now: datetime,
) -> Transfer:
    """A support adjustment: a goodwill credit, or a debit of a wrongly credited amount.

    Raises InsufficientWalletFunds (a debit larger than what is available), InvalidWalletAmount.
    """
    amount = _amount(amount, settings.currency)
    account = wallet_account(user_id, settings.currency)
    goodwill = accounts.platform_goodwill(settings.currency)
    posting = Posting(goodwill, account, amount) if credit else Posting(account, goodwill, amount)
    try:
        return await ledger_service.transfer(
            session,
            postings=[posting],
            idempotency_key=idempotency_key,
            reference=f"adjustment:{idempotency_key}",
            reason=ADJUSTMENT,
            now=now,
            metadata={"note": note, "operator": operator},
        )
    except ledger_service.InsufficientFunds as exc:
        raise InsufficientWalletFunds(available=exc.available, required=exc.required) from None


# ---- orders -----------------------------------------------------------------------------------------


async def pay_order(
    session: AsyncSession,
    *,
    user_id: str,
    order_id: str,
    amount: Money,
    idempotency_key: str,
    settings: WalletSettings,
    now: datetime,
    expires_at: datetime | None = None,
) -> Transfer:
    """Hold ``amount`` in the wallet for an order (wallet → order clearing); the id is the hold id.

    Post it with :func:`fulfil_order`, release it with :func:`cancel_order`; if neither happens
    before ``expires_at`` (default: ``settings.order_hold_minutes``), the ledger's expiry job
    releases it. Raises InsufficientWalletFunds (with the shortfall), InvalidWalletAmount.
    """
    amount = _amount(amount, settings.currency)
    account = wallet_account(user_id, settings.currency)
    try:
        return await ledger_service.hold(
            session,
            postings=[Posting(account, accounts.order_clearing(settings.currency), amount)],
            idempotency_key=idempotency_key,
            reference=f"order:{order_id}",
            reason=ORDER_PAYMENT,
            now=now,
            expires_at=expires_at or now + timedelta(minutes=settings.order_hold_minutes),
        )
    except ledger_service.InsufficientFunds as exc:
        raise InsufficientWalletFunds(available=exc.available, required=exc.required) from None


async def fulfil_order(
    session: AsyncSession, *, hold_id: uuid.UUID, idempotency_key: str, now: datetime, amount: Money | None = None
) -> Transfer:
    """Post an order's wallet hold: all of it, or ``amount`` of it (the rest goes back).

    Raises ledger HoldNotFound, HoldNotPending, HoldExpired, InvalidHoldAmounts.
    """
    postings = None
    if amount is not None:
        held = await ledger_service.get_hold(session, hold_id)
        debit = next(leg for leg in held.legs if leg.amount.amount_minor < 0)
        credit = next(leg for leg in held.legs if leg.amount.amount_minor > 0)
        wallet = _spec_of(debit.code, amount.currency)
        postings = [Posting(wallet, _spec_of(credit.code, amount.currency), amount)]
    return await ledger_service.post_hold(
        session, hold_id=hold_id, idempotency_key=idempotency_key, now=now, postings=postings
    )


async def cancel_order(session: AsyncSession, *, hold_id: uuid.UUID, idempotency_key: str, now: datetime) -> Transfer:
    """Release an order's wallet hold. Raises ledger HoldNotFound, HoldNotPending."""
    return await ledger_service.void_hold(session, hold_id=hold_id, idempotency_key=idempotency_key, now=now)


def _spec_of(code: str | None, currency: str) -> AccountSpec:
    """The spec of an account on a wallet hold (the wallet or the order clearing account)."""
    if code == accounts.order_clearing(currency).code:
        return accounts.order_clearing(currency)
    if code and code.startswith("user:") and code.endswith(":wallet"):
        return accounts.user_wallet(code.removeprefix("user:").removesuffix(":wallet"), currency)
    raise InvalidWalletAmount(f"not a wallet hold: {code}")


# ---- split tender -----------------------------------------------------------------------------------


async def plan_split_tender(
    session: AsyncSession, *, user_id: str, total: Money, settings: WalletSettings
) -> SplitTender:
    """How much of ``total`` the wallet can pay now; the rest is to be paid by card."""
    total = _amount(total, settings.currency)
    balance = await ledger_service.balance(session, wallet_account(user_id, settings.currency))
    from_wallet = min(max(balance.available.amount_minor, 0), total.amount_minor)
    return SplitTender(
        wallet=Money(from_wallet, total.currency), card=Money(total.amount_minor - from_wallet, total.currency)
    )


async def complete_split_tender(
    session: AsyncSession,
    *,
    wallet_hold_id: uuid.UUID,
    order_id: str,
    card_amount: Money,
    provider: str,
    idempotency_key: str,
    now: datetime,
) -> SplitTenderCapture:
    """The card leg was captured: post the wallet hold and book the card leg, together.

    Both postings run in the caller's transaction, so either both are committed or neither is.
    Keys ``<key>:wallet`` and ``<key>:card`` make a retry a replay of both. Raises ledger hold
    errors, InvalidWalletAmount.
    """
    card_amount = _amount(card_amount, card_amount.currency)
    wallet = await ledger_service.post_hold(
        session, hold_id=wallet_hold_id, idempotency_key=f"{idempotency_key}:wallet", now=now
    )
    card = await ledger_service.transfer(
        session,
        postings=[
            Posting(
                accounts.provider_clearing(provider, card_amount.currency),
                accounts.order_clearing(card_amount.currency),
                card_amount,
            )
        ],
        idempotency_key=f"{idempotency_key}:card",
        reference=f"order:{order_id}",
        reason=ORDER_PAYMENT,
        now=now,
    )
    return SplitTenderCapture(wallet=wallet, card=card)


async def release_split_tender(
    session: AsyncSession, *, wallet_hold_id: uuid.UUID, idempotency_key: str, now: datetime
) -> Transfer:
    """The card leg failed: give the held wallet part back. Raises ledger HoldNotFound, HoldNotPending."""
    return await ledger_service.void_hold(session, hold_id=wallet_hold_id, idempotency_key=idempotency_key, now=now)
