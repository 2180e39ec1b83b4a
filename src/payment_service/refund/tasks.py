"""Worker job of refunds: resolve approved refunds whose provider outcome is open (status sync).

The job claims due refunds in its own transaction (so two workers never take the same one),
postpones their next check and commits; each refund is then synced with no transaction open
during the provider call and its answer applied in a transaction of its own.
"""

from __future__ import annotations

import structlog

from payment_service.jobs import JobContext
from payment_service.kit.clock import Clock
from payment_service.refund import repository
from payment_service.refund import service as refund_service

log = structlog.get_logger(__name__)

SYNC_BATCH = 50


async def sync_open_refunds(ctx: JobContext) -> bool:
    """Ask providers about refunds whose outcome is open and due. True when a full batch ran."""
    clock: Clock = ctx.resources.clock
    now = clock.now()
    due = await repository.claim_to_sync(ctx.session, now=now, limit=SYNC_BATCH)
    if not due:
        return False
    for refund_id in due:
        refund = await repository.get(ctx.session, refund_id)
        if refund is not None:
            await repository.postpone_sync(
                ctx.session, refund_id, until=now + refund_service.next_sync_delay(refund.sync_count + 1)
            )
    await ctx.session.commit()
    providers = ctx.providers
    for refund_id in due:
        try:
            await refund_service.sync(ctx.session, refund_id=refund_id, providers=providers, clock=clock)
            await ctx.session.commit()
        except Exception:
            await ctx.session.rollback()
            log.exception("refund_sync_failed", refund_id=str(refund_id))
    return len(due) >= SYNC_BATCH
