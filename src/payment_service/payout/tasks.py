"""Worker jobs of payouts: submit due payouts, resolve open attempts (status sync), health gauges.

Each job first picks its rows in the job's transaction and commits; provider calls then happen with
no transaction open, and each answer is applied in a transaction of its own (``payout.service``).
The service re-checks every row under its lock, so two workers never act twice on one payout.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import Settings
from payment_service.payout import repository
from payment_service.payout import service as payout_service
from payment_service.providers.payout_registry import PayoutRegistry
from payment_service.resources import Resources

log = structlog.get_logger(__name__)

SUBMIT_BATCH = 20
SYNC_BATCH = 50


class _Ctx(Protocol):
    @property
    def session(self) -> AsyncSession: ...
    @property
    def resources(self) -> Resources: ...
    @property
    def settings(self) -> Settings: ...


def registry_of(resources: Resources) -> PayoutRegistry:
    """The process's payout adapters (built from settings and the Vault credentials on first use)."""
    return resources.payout_providers or resources.start_payout_providers()


def details_vault_of(resources: Resources) -> payout_service.DetailsVault:
    return payout_service.DetailsVault(resources.settings, resources.http)


async def submit_due_payouts(ctx: _Ctx) -> bool:
    """Call the provider for pending payouts whose attempt is due. True when a full batch ran."""
    clock = ctx.resources.clock
    due = await repository.claim_due(ctx.session, now=clock.now(), limit=SUBMIT_BATCH)
    await ctx.session.commit()
    if not due:
        return False
    registry, details = registry_of(ctx.resources), details_vault_of(ctx.resources)
    for payout_id in due:
        try:
            await payout_service.submit(
                ctx.session, payout_id=payout_id, registry=registry, details_vault=details, clock=clock.now
            )
            await ctx.session.commit()
        except Exception:
            await ctx.session.rollback()
            log.exception("payout_submit_failed", payout_id=str(payout_id))
    return len(due) >= SUBMIT_BATCH


async def sync_open_attempts(ctx: _Ctx) -> bool:
    """Ask providers about attempts whose outcome is open and due. True when a full batch ran."""
    clock = ctx.resources.clock
    now = clock.now()
    settings = ctx.resources.settings.payouts
    backoff = settings.sync_backoff_seconds or [60.0]
    due = await repository.claim_attempts_to_sync(ctx.session, now=now, limit=SYNC_BATCH)
    for attempt_id in due:
        attempt = await repository.attempt(ctx.session, attempt_id)
        if attempt is not None:
            wait = timedelta(seconds=backoff[min(attempt.sync_count + 1, len(backoff) - 1)])
            await repository.postpone_sync(ctx.session, attempt_id, until=now + wait, now=now)
    await ctx.session.commit()
    if not due:
        return False
    registry, details = registry_of(ctx.resources), details_vault_of(ctx.resources)
    for attempt_id in due:
        try:
            await payout_service.sync_attempt(
                ctx.session, attempt_id=attempt_id, registry=registry, details_vault=details, clock=clock.now
            )
            await ctx.session.commit()
        except Exception:
            await ctx.session.rollback()
            log.exception("payout_attempt_sync_failed", attempt_id=str(attempt_id))
    return len(due) >= SYNC_BATCH


async def report_health(ctx: _Ctx) -> bool:
    """Refresh ``payouts_open`` / ``payouts_stuck`` (alert on stuck > 0)."""
    await payout_service.report_health(
        ctx.session, settings=ctx.resources.settings.payouts, now=ctx.resources.clock.now()
    )
    return False
