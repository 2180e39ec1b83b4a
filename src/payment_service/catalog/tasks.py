"""Worker side of the catalog: forget cached prices when the Game Catalog announces a change.

The Game Catalog Service publishes CloudEvents to the logical topic ``catalog.prices`` (key = item
id) whenever a price, a discount or an item's sale terms change; ``data`` names the items
(``{"item_id": "game-1"}`` or ``{"item_ids": ["game-1", "dlc-7"]}``). The handler runs through
the inbox (a redelivery is a no-op) and deletes the items from the cache in every region. A
Redis failure raises, so the consumer retries and finally dead-letters the event — a lost
invalidation would keep serving the old price until the cache entry expires.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.catalog import service as catalog_service
from payment_service.config import get_settings
from payment_service.inbox.consumer import dispatch_by_type
from payment_service.inbox.schemas import IncomingEvent
from payment_service.inbox.service import Handler, PermanentError

log = structlog.get_logger(__name__)

TOPIC = "catalog.prices"
"""Logical topic the Game Catalog Service publishes price and sale-terms changes to."""
CHANGE_TYPES = ("catalog.price_changed", "catalog.discount_changed", "catalog.item_updated")
"""CloudEvents types that make cached items stale."""

ItemId = str


class CatalogChange(BaseModel):
    """``data`` of a change event: one item or several."""

    model_config = ConfigDict(extra="ignore")

    item_id: ItemId | None = Field(None, min_length=1, max_length=64)
    item_ids: list[ItemId] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _names_items(self) -> CatalogChange:
        if self.item_id is None and not self.item_ids:
            raise ValueError("the event names no item")
        return self

    @property
    def ids(self) -> list[str]:
        return list(dict.fromkeys([*([self.item_id] if self.item_id else []), *self.item_ids]))


_redis: aioredis.Redis | None = None


def bind_redis(redis: aioredis.Redis | None) -> None:
    """Use ``redis`` for invalidations (tests; by default a client is made from the settings)."""
    global _redis
    _redis = redis


def _redis_client() -> aioredis.Redis:
    global _redis
    if _redis is None:
        url = get_settings().redis.url.get_secret_value()
        _redis = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    return _redis


async def handle_catalog_change(session: AsyncSession, event: IncomingEvent) -> None:
    """Forget the named items in the cache. Unknown sources and malformed data go to the DLQ."""
    settings = get_settings().catalog
    if event.source not in settings.event_sources:
        raise PermanentError(f"catalog changes are not accepted from {event.source!r}")
    try:
        change = CatalogChange.model_validate(event.data)
    except ValidationError as exc:
        raise PermanentError(f"invalid catalog change: {exc.error_count()} errors: {exc.errors()[:3]}") from None
    await catalog_service.invalidate(_redis_client(), change.ids)
    log.info("catalog_cache_invalidated", items=len(change.ids), type=event.type, event_id=event.id)


CONSUMERS: Mapping[str, Handler] = {TOPIC: dispatch_by_type(dict.fromkeys(CHANGE_TYPES, handle_catalog_change))}
"""Topic → handler, listed in ``worker.CONSUMERS``."""
