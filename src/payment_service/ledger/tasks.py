"""Ledger jobs: fold hot-account deltas, expire holds. Safe to run twice, and concurrently.

* :func:`fold_deltas` moves committed deltas of hot accounts into their rows (one statement:
  try an advisory lock, then ``ledger_fold_deltas``), so reads stay cheap; balances are exact
  whether or not it ran. Run it every 100 ms–1 s (:func:`run_fold_loop`).
* :func:`expire_holds` releases holds whose ``expires_at`` passed, each in its own transaction.

:func:`fold_job` and :func:`expire_holds_job` are the same as periodic jobs of the worker
(``worker.PERIODIC_JOBS``: a session in its own transaction, ``now``; return True when more work
is waiting, so the worker runs them again at once in a new transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment_service.ledger import repository
from payment_service.ledger import service as ledger_service
from payment_service.ledger.repository import Executor

log = structlog.get_logger(__name__)

FOLD_MAX_ACCOUNTS = 1000


class JobContext(Protocol):
    """What the worker passes to a periodic job (``worker.JobContext``)."""

    @property
    def session(self) -> AsyncSession: ...

    @property
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class FoldResult:
    folded: int
    """Deltas folded; -1 when another folder held the lock."""
    backlog: int
    """Unfolded deltas seen before folding."""
    oldest_age_ms: int
    """Age of the oldest of them: the fold lag."""


async def fold_deltas(executor: Executor, *, now: datetime, max_accounts: int = 1000, **_: Any) -> FoldResult:
    """Fold hot-account deltas into the account rows (one statement, one folder at a time)."""
    row = await repository.fold_deltas(executor, now=now, max_accounts=max_accounts)
    return FoldResult(folded=int(row["folded"]), backlog=int(row["backlog"]), oldest_age_ms=int(row["oldest_age_ms"]))


async def run_fold_loop(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    stop: asyncio.Event,
    now: Callable[[], datetime],
    interval_seconds: float = 0.2,
) -> None:
    """The worker loop: fold every ``interval_seconds`` until ``stop`` is set."""
    while not stop.is_set():
        try:
            async with sessionmaker() as session:
                result = await fold_deltas(session, now=now())
                await session.commit()
            if result.oldest_age_ms > 1000:
                log.warning("ledger_fold_lag", backlog=result.backlog, oldest_age_ms=result.oldest_age_ms)
        except Exception:
            log.exception("ledger_fold_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_seconds)


async def expire_holds(
    sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime, batch: int = 100, **_: Any
) -> list[uuid.UUID]:
    """Release up to ``batch`` holds whose expiry passed; returns the ids expired by this run.

    Each hold is released in its own transaction (a hold resolved meanwhile is skipped).
    """
    async with sessionmaker() as session:
        candidates = await repository.expired_holds(session, now=now, limit=batch)
        await session.commit()
    expired: list[uuid.UUID] = []
    for hold_id in candidates:

        async def work(session: AsyncSession, hold_id: uuid.UUID = hold_id) -> None:
            await ledger_service.expire_hold(session, hold_id=hold_id, now=now)

        try:
            await ledger_service.run_in_transaction(sessionmaker, work)
            expired.append(hold_id)
        except (ledger_service.HoldNotPending, ledger_service.HoldNotExpired):
            continue
    return expired


async def fold_job(ctx: JobContext) -> bool:
    """Periodic job: fold hot-account deltas; True when accounts with deltas are left over."""
    result = await fold_deltas(ctx.session, now=ctx.now, max_accounts=FOLD_MAX_ACCOUNTS)
    if result.oldest_age_ms > 1000:
        log.warning("ledger_fold_lag", backlog=result.backlog, oldest_age_ms=result.oldest_age_ms)
    return result.folded >= 0 and result.backlog > result.folded


async def expire_holds_job(ctx: JobContext) -> bool:
    """Periodic job: release one expired hold per transaction; True when more are due.

    One hold per transaction: its locks (the hold row, then its accounts in id order) are all
    the transaction holds, so it cannot deadlock with postings.
    """
    due = await repository.expired_holds(ctx.session, now=ctx.now, limit=2)
    if not due:
        return False
    with contextlib.suppress(ledger_service.HoldNotPending, ledger_service.HoldNotExpired):
        await ledger_service.expire_hold(ctx.session, hold_id=due[0], now=ctx.now)
    return len(due) > 1
