"""Pure schedule rules: which period a day belongs to and whether a payee's payout day has come.

A weekly payee with ``schedule_day`` 5 is due from Friday of each ISO week (``2026-W48``); a monthly
one with day 10 from the 10th of each month (``2026-11``). "From" — not "on": a worker that was down
on the day still pays the period out later in it. One scheduled payout per payee and period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from payment_service.models.payout import PayoutSchedule


@dataclass(frozen=True, slots=True)
class SchedulePeriods:
    """The periods a local calendar day belongs to."""

    day: date
    weekly: str
    """ISO week, ``2026-W48``."""
    weekday: int
    """ISO weekday of ``day`` (1 = Monday)."""
    monthly: str
    """``2026-11``."""

    @classmethod
    def of(cls, day: date) -> SchedulePeriods:
        year, week, weekday = day.isocalendar()
        return cls(day=day, weekly=f"{year}-W{week:02d}", weekday=weekday, monthly=f"{day:%Y-%m}")

    @classmethod
    def at(cls, now: datetime, timezone: str) -> SchedulePeriods:
        return cls.of(now.astimezone(ZoneInfo(timezone)).date())


def due_period(schedule: PayoutSchedule, schedule_day: int | None, periods: SchedulePeriods) -> str | None:
    """The period to pay out now, or None when the payee's day of the current period has not come."""
    if schedule is PayoutSchedule.weekly and schedule_day is not None and periods.weekday >= schedule_day:
        return periods.weekly
    if schedule is PayoutSchedule.monthly and schedule_day is not None and periods.day.day >= schedule_day:
        return periods.monthly
    return None
