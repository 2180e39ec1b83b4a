"""Worker jobs of the webhook inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.provider_event import service as provider_event_service

BATCH = 100


class _Ctx(Protocol):
    @property
    def session(self) -> AsyncSession: ...
    @property
    def now(self) -> datetime: ...


async def apply_received(ctx: _Ctx) -> bool:
    """Apply stored payment webhooks; True when a full batch was handled (run again at once)."""
    return await provider_event_service.process_received(ctx.session, now=ctx.now, limit=BATCH) >= BATCH
