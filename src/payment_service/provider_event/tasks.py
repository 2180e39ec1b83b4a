"""Worker jobs of the webhook inbox."""

from __future__ import annotations

from payment_service.jobs import JobContext
from payment_service.provider_event import service as provider_event_service

BATCH = 100


async def apply_received(ctx: JobContext) -> bool:
    """Apply stored payment webhooks; True when a full batch was handled (run again at once)."""
    return await provider_event_service.process_received(ctx.session, now=ctx.now, limit=BATCH) >= BATCH
