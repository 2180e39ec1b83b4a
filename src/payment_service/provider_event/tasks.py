"""Worker jobs of the webhook inbox."""

from __future__ import annotations

from payment_service.provider_event import service as provider_event_service


async def apply_received(ctx: object) -> bool:
    """Apply stored payment webhooks; True when a full batch was handled (run again at once)."""
    session = ctx.session  # type: ignore[attr-defined]
    now = ctx.now  # type: ignore[attr-defined]
    batch = 100
    return await provider_event_service.process_received(session, now=now, limit=batch) >= batch
