"""Streamer payouts: the schedule pays donation balances out; statements are read from the ledger.

Invariants this module keeps:

* **Only settled donations are paid out.** What a scheduled payout takes is the balance's
  available amount minus the donations credited within the holding period
  (``payouts.holding_days``, chargeback risk), read from the ledger under the balance's lock —
  never from a cached number.
* **One scheduled payout per streamer and period** (reference ``streamer:<id>:<period>``), however
  often the job runs; the payee's ``last_scheduled_period`` records that the period was handled
  (paid, or nothing payable).
* Statements are the ledger history of ``streamer:<id>:balance`` (donations with their fees,
  refunds and chargebacks, payouts); nothing is kept twice.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.auth import Principal, PrincipalKind
from payment_service.config import PayoutSettings
from payment_service.donation import service as donation_service
from payment_service.errors import Forbidden, Unprocessable
from payment_service.kit.money import Money
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.models.ledger import EntryPhase, HoldStatus
from payment_service.models.payout import PayeeAccount, Payout, PayoutSource
from payment_service.payout import service as payout_service
from payment_service.payout.rules import SchedulePeriods, due_period
from payment_service.providers.payout_registry import PayoutRouter

log = structlog.get_logger(__name__)

DONATION_REASONS = (donation_service.LEDGER_REASON,)
"""Ledger reasons of the credits the holding period applies to."""
PAYOUT_DESCRIPTION = "Выплата вознаграждения стримеру"
"""What the streamer's bank statement shows (YooKassa ``description``, bank transfer purpose)."""
MAX_STATEMENT_DAYS = 366


class StreamerOnly(Forbidden):
    code = "streamer_only"
    title = "Only a streamer (a user token) has payouts and statements of their own"


class InvalidPeriod(Unprocessable):
    code = "invalid_period"
    title = "The statement period must end after it starts and be at most a year long"


def _streamer(principal: Principal) -> str:
    if principal.kind is not PrincipalKind.user:
        raise StreamerOnly()
    return principal.subject


# ---- what can be paid out -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamerBalance:
    """The streamer's balance as the payout schedule sees it."""

    balance: Money
    """Posted: donations minus clawbacks minus paid-out payouts."""
    in_payout: Money
    """Held by payouts in progress."""
    available: Money
    """``balance - in_payout``."""
    on_hold: Money
    """Donations younger than the holding period (not paid out yet: chargeback risk)."""
    payable: Money
    """What a scheduled payout would take now: ``available - on_hold`` (never negative)."""


async def balance(
    session: AsyncSession, *, streamer_id: str, settings: PayoutSettings, now: datetime
) -> StreamerBalance:
    """The streamer's balance split for payouts. Lock the account first when the result gates a payout."""
    account = accounts.streamer_balance(streamer_id, settings.currency)
    current = await ledger_service.balance(session, account)
    recent = await ledger_service.credited_since(
        session, account, reasons=DONATION_REASONS, since=now - timedelta(days=settings.holding_days)
    )
    zero = Money.zero(settings.currency)
    on_hold = max(recent, zero)
    payable = max(current.available - on_hold, zero)
    return StreamerBalance(
        balance=current.posted,
        in_payout=current.pending_out,
        available=current.available,
        on_hold=on_hold,
        payable=payable,
    )


# ---- the schedule (job) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    created: int
    """Payouts created."""
    skipped: int
    """Periods handled with nothing to pay (below the payee's minimum)."""
    refused: int
    """Payees whose payout was refused this time (their period stays open)."""
    examined: int


async def _pay_period(
    session: AsyncSession,
    payee: PayeeAccount,
    *,
    period: str,
    router: PayoutRouter,
    settings: PayoutSettings,
    now: datetime,
    batch_day: date,
) -> Payout | None:
    account = accounts.streamer_balance(payee.user_id, settings.currency)
    await ledger_service.lock_accounts(session, [account])  # no clawback races the amount we take
    owed = await balance(session, streamer_id=payee.user_id, settings=settings, now=now)
    if owed.payable.amount_minor < payee.min_payout_minor:
        return None
    batch = await payout_service.batch_for(
        session,
        source=PayoutSource.streamer,
        reference=f"streamer:{batch_day.isoformat()}",
        currency=settings.currency,
        now=now,
    )
    return await payout_service.create_payout(
        session,
        user_id=payee.user_id,
        source=PayoutSource.streamer,
        balance_account=account,
        amount=owed.payable,
        reference=f"streamer:{payee.user_id}:{period}",
        description=PAYOUT_DESCRIPTION,
        router=router,
        now=now,
        created_by="schedule",
        batch=batch,
    )


async def run_schedule(
    session: AsyncSession, *, router: PayoutRouter, settings: PayoutSettings, now: datetime, limit: int = 100
) -> ScheduleRun:
    """Create the scheduled payouts that are due now (in the caller's transaction).

    For each verified payee whose weekly/monthly payout day has come in the current period and
    whose period is not handled yet: pay out what is payable if it reaches the payee's minimum,
    and mark the period handled either way. One payee's refusal (no provider, a race on the
    balance) is rolled back to its savepoint and logged; the period then stays open for the next
    run. Returns counts; ``examined == limit`` means more may be waiting.
    """
    periods = SchedulePeriods.at(now, settings.schedule_timezone)
    created = skipped = refused = 0
    payees = await payout_service.scheduled_payees_due(session, periods=periods, limit=limit)
    for payee in payees:
        period = due_period(payee.schedule, payee.schedule_day, periods)
        if period is None:
            continue
        try:
            async with session.begin_nested():
                payout = await _pay_period(
                    session, payee, period=period, router=router, settings=settings, now=now, batch_day=periods.day
                )
                payout_service.mark_scheduled(payee, period, now=now)
                await session.flush()
        except payout_service.REFUSALS as exc:
            refused += 1
            log.warning("scheduled_payout_refused", user_id=payee.user_id, period=period, code=exc.code)
            continue
        if payout is None:
            skipped += 1
        else:
            created += 1
            log.info("scheduled_payout_created", user_id=payee.user_id, period=period, payout_id=str(payout.id))
    return ScheduleRun(created=created, skipped=skipped, refused=refused, examined=len(payees))


# ---- reports ------------------------------------------------------------------------------------


async def my_balance(
    session: AsyncSession, *, principal: Principal, settings: PayoutSettings, now: datetime
) -> StreamerBalance:
    """The calling streamer's balance as the payout schedule sees it. Raises StreamerOnly."""
    return await balance(session, streamer_id=_streamer(principal), settings=settings, now=now)


async def my_payee(session: AsyncSession, *, principal: Principal) -> PayeeAccount | None:
    try:
        return await payout_service.get_payee(session, principal=principal)
    except payout_service.PayeeNotFound:
        return None


async def my_payouts(
    session: AsyncSession, *, principal: Principal, cursor: str | None, limit: int
) -> tuple[Sequence[Payout], str | None]:
    """The calling streamer's donation payouts, newest first. Raises StreamerOnly."""
    return await payout_service.list_payouts(
        session, user_id=_streamer(principal), source=PayoutSource.streamer, cursor=cursor, limit=limit
    )


KIND_DONATION = "donation"
KIND_REFUND = "donation_refund"
KIND_CHARGEBACK = "donation_chargeback"
KIND_PAYOUT = "payout"
KIND_OTHER = "adjustment"


@dataclass(frozen=True, slots=True)
class StatementLine:
    at: datetime
    kind: str
    """donation, donation_refund, donation_chargeback, payout or adjustment."""
    reference: str
    gross: Money
    """Donations: what the donor paid; clawbacks: what went back (negative); payouts: the payout (negative)."""
    fee: Money
    """The platform's fee in ``gross`` (negative for a clawback returning a fee)."""
    net: Money
    """The change of the streamer's balance (``gross - fee``)."""
    status: str
    """posted, or pending (a payout in progress: not in the balance yet)."""


@dataclass(frozen=True, slots=True)
class Statement:
    streamer_id: str
    start: datetime
    end: datetime
    currency: str
    opening_balance: Money
    closing_balance: Money
    donations_gross: Money
    fees: Money
    donations_net: Money
    clawbacks: Money
    payouts: Money
    lines: tuple[StatementLine, ...]


def _kind(reason: str) -> str:
    if reason == donation_service.LEDGER_REASON:
        return KIND_DONATION
    if reason in (KIND_REFUND, KIND_CHARGEBACK, KIND_PAYOUT):
        return reason
    return KIND_OTHER


def period_bounds(start: date, end: date, *, timezone: str) -> tuple[datetime, datetime]:
    """[start 00:00, end 00:00) in the schedule's timezone. Raises InvalidPeriod."""
    if end <= start or (end - start).days > MAX_STATEMENT_DAYS:
        raise InvalidPeriod(start=start.isoformat(), end=end.isoformat())
    tz = ZoneInfo(timezone)
    return datetime.combine(start, time(), tz), datetime.combine(end, time(), tz)


async def statement(
    session: AsyncSession, *, principal: Principal, start: date, end: date, settings: PayoutSettings
) -> Statement:
    """The calling streamer's statement for [start, end) (local dates of the schedule's timezone):
    donations with their fees, refunds and chargebacks, payouts; opening and closing balance.
    Raises StreamerOnly, InvalidPeriod."""
    streamer_id = _streamer(principal)
    begin, finish = period_bounds(start, end, timezone=settings.schedule_timezone)
    cur = settings.currency
    account = accounts.streamer_balance(streamer_id, cur)
    fees_account = accounts.platform_fees(cur).id
    zero = Money.zero(cur)
    lines: list[StatementLine] = []
    cursor: str | None = None
    while True:
        page = await ledger_service.history(session, account, cursor=cursor, limit=500)
        for line in page.lines:
            if line.effective_at >= finish:
                continue
            if line.effective_at < begin:
                break
            kind = _kind(line.reason)
            fee = zero
            if kind in (KIND_DONATION, KIND_REFUND, KIND_CHARGEBACK):
                transfer = await ledger_service.get_transfer(session, line.transfer_id)
                fee = Money(
                    sum(leg.amount.amount_minor for leg in transfer.legs if leg.account_id == fees_account), cur
                )
            pending = line.phase is EntryPhase.pending and line.hold_status is HoldStatus.pending
            lines.append(
                StatementLine(
                    at=line.effective_at,
                    kind=kind,
                    reference=line.reference,
                    gross=line.amount + fee,
                    fee=fee,
                    net=line.amount,
                    status="pending" if pending else "posted",
                )
            )
        else:
            if page.next_cursor is not None:
                cursor = page.next_cursor
                continue
        break
    lines.reverse()
    posted = [ln for ln in lines if ln.status == "posted"]

    def total(kinds: tuple[str, ...], attr: str) -> Money:
        return Money(sum(getattr(ln, attr).amount_minor for ln in posted if ln.kind in kinds), cur)

    opening = await ledger_service.balance_at(session, account, at=begin - timedelta(microseconds=1))
    closing = await ledger_service.balance_at(session, account, at=finish - timedelta(microseconds=1))
    return Statement(
        streamer_id=streamer_id,
        start=begin,
        end=finish,
        currency=cur,
        opening_balance=opening.posted,
        closing_balance=closing.posted,
        donations_gross=total((KIND_DONATION,), "gross"),
        fees=total((KIND_DONATION, KIND_REFUND, KIND_CHARGEBACK), "fee"),
        donations_net=total((KIND_DONATION,), "net"),
        clawbacks=total((KIND_REFUND, KIND_CHARGEBACK), "net"),
        payouts=total((KIND_PAYOUT,), "net"),
        lines=tuple(lines),
    )


_KIND_RU = {
    KIND_DONATION: "Донат",
    KIND_REFUND: "Возврат доната",
    KIND_CHARGEBACK: "Чарджбэк доната",
    KIND_PAYOUT: "Выплата",
    KIND_OTHER: "Корректировка",
}
_STATUS_RU = {"posted": "проведено", "pending": "в обработке"}


def _ru_amount(money: Money) -> str:
    return money.to_decimal_string().replace(".", ",")


def statement_csv(st: Statement, *, timezone: str) -> str:
    """The statement as CSV for a spreadsheet in Russian locale: ``;`` separator, decimal comma,
    Russian headers (the streamer reads it), local times; a totals block at the end."""
    tz = ZoneInfo(timezone)
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    w.writerow(["Дата", "Операция", "Основание", "Сумма доната", "Комиссия платформы", "Изменение баланса", "Статус"])
    for ln in st.lines:
        w.writerow(
            [
                ln.at.astimezone(tz).strftime("%d.%m.%Y %H:%M:%S"),
                _KIND_RU[ln.kind],
                ln.reference,
                _ru_amount(ln.gross),
                _ru_amount(ln.fee),
                _ru_amount(ln.net),
                _STATUS_RU[ln.status],
            ]
        )
    w.writerow([])
    for label, value in (
        ("Баланс на начало периода", st.opening_balance),
        ("Донаты (сумма)", st.donations_gross),
        ("Комиссия платформы", st.fees),
        ("Донаты (к зачислению)", st.donations_net),
        ("Возвраты и чарджбэки", st.clawbacks),
        ("Выплаты", st.payouts),
        ("Баланс на конец периода", st.closing_balance),
    ):
        w.writerow([label, "", "", "", "", _ru_amount(value), ""])
    return out.getvalue()
