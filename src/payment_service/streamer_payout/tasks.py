"""Worker job of streamer payouts: create the scheduled payouts that are due."""

from __future__ import annotations

from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.payout import tasks as payout_tasks
from payment_service.resources import Resources
from payment_service.streamer_payout import service as streamer_service

log = structlog.get_logger(__name__)

BATCH = 100


class _Ctx(Protocol):
    @property
    def session(self) -> AsyncSession: ...
    @property
    def resources(self) -> Resources: ...


async def create_scheduled_payouts(ctx: _Ctx) -> bool:
    """Create the weekly/monthly streamer payouts due now (the submit job sends them).
    True when a full batch of payees was examined and progress was made (run again at once)."""
    run = await streamer_service.run_schedule(
        ctx.session,
        router=payout_tasks.registry_of(ctx.resources),
        settings=ctx.resources.settings.payouts,
        now=ctx.resources.clock.now(),
        limit=BATCH,
    )
    if run.examined:
        log.info("streamer_schedule_run", created=run.created, skipped=run.skipped, refused=run.refused)
    return run.examined >= BATCH and run.created + run.skipped > 0
