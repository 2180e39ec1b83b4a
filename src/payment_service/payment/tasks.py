"""Worker jobs of payments: resolve open attempts (status sync) and expire unpaid payments.

Each job first claims its rows in the job's transaction (so two workers never take the same
row) and commits; provider calls then happen with no transaction open, and each answer is
applied in a transaction of its own (``payment.service``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta

import structlog

from payment_service.jobs import JobContext
from payment_service.kit.clock import Clock
from payment_service.payment import repository
from payment_service.payment import service as payment_service

log = structlog.get_logger(__name__)

SYNC_BATCH = 50
EXPIRE_BATCH = 50


async def sync_open_attempts(ctx: JobContext) -> bool:
    """Ask providers about attempts whose outcome is open and due, unknown outcomes first. True
    (run again at once) when a full batch ran that held unknown outcomes."""
    clock: Clock = ctx.resources.clock
    now = clock.now()
    due = await repository.claim_attempts_to_sync(ctx.session, now=now, limit=SYNC_BATCH)
    if not due:
        return False
    # Next check per backoff step: one UPDATE per distinct delay (a handful), not one per attempt.
    by_delay: dict[timedelta, list[uuid.UUID]] = defaultdict(list)
    for attempt_id, sync_count, _ in due:
        by_delay[payment_service.next_sync_delay(sync_count + 1)].append(attempt_id)
    for delay, ids in by_delay.items():
        await repository.postpone_sync(ctx.session, ids, until=now + delay)
    await ctx.session.commit()
    providers = ctx.providers
    for attempt_id, _, _ in due:
        try:
            await payment_service.sync_attempt(ctx.session, attempt_id=attempt_id, providers=providers, clock=clock)
            await ctx.session.commit()
        except Exception:
            await ctx.session.rollback()
            log.exception("attempt_sync_failed", attempt_id=str(attempt_id))
    # Run again at once only while unknown outcomes wait (money we cannot account for yet); checks
    # of payments waiting on their webhook are paced at one batch per run (every 5 s), so that under
    # load they do not take the worker from the webhooks themselves.
    return len(due) >= SYNC_BATCH and any(status in repository.URGENT_SYNC for _, _, status in due)


async def expire_payments(ctx: JobContext) -> bool:
    """Expire unpaid payments and void stale authorizations. True when a full batch ran."""
    clock: Clock = ctx.resources.clock
    ids = await repository.expired_ids(ctx.session, now=clock.now(), limit=EXPIRE_BATCH)
    await ctx.session.commit()
    providers = ctx.providers
    for payment_id in ids:
        try:
            await payment_service.expire(ctx.session, payment_id=payment_id, providers=providers, clock=clock)
            await ctx.session.commit()
        except Exception:
            await ctx.session.rollback()
            log.exception("payment_expiry_failed", payment_id=str(payment_id))
    return len(ids) >= EXPIRE_BATCH
