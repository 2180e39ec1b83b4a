"""The worker process: outbox relay, event consumers and scheduled jobs (stub; see issue #2)."""

from __future__ import annotations

import asyncio

from payment_service.config import Settings


async def run_worker(settings: Settings, *, stop: asyncio.Event) -> None:
    """Run every background loop until ``stop`` is set, then finish the current batch and return."""
    await stop.wait()
