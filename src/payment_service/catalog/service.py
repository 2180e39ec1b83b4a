"""Game Catalog access for the business modules: build the port, ask it, translate its failures.

Invariants:

* prices, payees and revenue-share terms always come from the catalog (or its cache), never from a
  client; a question the catalog cannot answer is :class:`CatalogUnavailable` (503, retryable) —
  a checkout fails rather than uses a guessed price;
* the cache is invalidated by the catalog's own events (``tasks.py``) and expires on its own.

Errors: :class:`CatalogUnavailable` (503 ``catalog_unavailable``).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import redis.asyncio as aioredis

from payment_service.catalog import cache
from payment_service.catalog.cache import CachedCatalog
from payment_service.catalog.client import HttpCatalogClient
from payment_service.catalog.ports import CatalogItem, CatalogUnavailableError, GameCatalog
from payment_service.config import CatalogSettings
from payment_service.errors import ServiceUnavailable

RETRY_AFTER_SECONDS = 5


class CatalogUnavailable(ServiceUnavailable):
    code = "catalog_unavailable"
    title = "The game catalog cannot be reached now; nothing was created or charged"


def build(settings: CatalogSettings, *, http: httpx.AsyncClient, redis: aioredis.Redis) -> GameCatalog:
    """The catalog as the service uses it: the HTTP client behind the Redis cache."""
    return CachedCatalog(HttpCatalogClient(settings, http), redis, ttl_seconds=settings.cache_ttl_seconds)


async def get_items(catalog: GameCatalog, item_ids: Sequence[str], *, region: str) -> dict[str, CatalogItem]:
    """The items priced for ``region`` (unknown ids absent). Raises CatalogUnavailable."""
    try:
        return await catalog.get_items(item_ids, region=region)
    except CatalogUnavailableError as exc:
        raise CatalogUnavailable(str(exc), retry_after=RETRY_AFTER_SECONDS) from None


async def invalidate(redis: aioredis.Redis, item_ids: Sequence[str]) -> None:
    """Forget what is cached about ``item_ids`` in every region. Raises redis errors (callers retry)."""
    await cache.invalidate(redis, item_ids)
