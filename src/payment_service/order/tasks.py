"""Order jobs: expire unpaid orders.

Payment rounds need no job of their own: they end in their payment's transaction (status hook),
and payments that nobody completes are expired by ``payment.tasks.expire_payments``, which ends
the round (wallet part released) the same way.
"""

from __future__ import annotations

import structlog

from payment_service.jobs import JobContext
from payment_service.order import service as order_service

log = structlog.get_logger(__name__)

BATCH = 200


async def expire_orders(ctx: JobContext) -> bool:
    """Expire unpaid orders past their ``expires_at`` (``order.expired``). True when a full batch ran."""
    expired = await order_service.expire_due(ctx.session, now=ctx.now, limit=BATCH)
    if expired:
        log.info("orders_expired", count=expired)
    return expired >= BATCH
