"""Redis read-through cache in front of a :class:`~payment_service.catalog.ports.GameCatalog`.

Redis is never the source of truth: an item is cached for ``ttl_seconds`` at most, forgotten when
the catalog announces a price or discount change (``tasks.py``), and when Redis itself fails the
cache steps aside and the catalog is asked directly.

Layout (``prefix`` = ``catalog:v1``):

* ``<prefix>:item:<id>`` — a hash, one field per region holding the item priced for that region
  (JSON), expiring ``ttl_seconds`` after it was last filled;
* ``<prefix>:gen:<id>`` — the item's generation, incremented by every invalidation.

A read that missed remembers the generation *before* asking the catalog and stores the answer
only if the generation is still the same (one Lua script, atomic in Redis). So an answer fetched
before a price change can never be written after the change's invalidation and outlive it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from payment_service.catalog.ports import CatalogItem, GameCatalog

log = structlog.get_logger(__name__)

DEFAULT_PREFIX = "catalog:v1"
GENERATION_TTL_SECONDS = 86_400
"""A generation key outlives any read in flight by far; it expires so that ids do not pile up."""

_STORE_IF_CURRENT = """
local gen = redis.call('GET', KEYS[2])
if (gen or '0') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CachedCatalog:
    """A :class:`GameCatalog` that remembers answers per item and region."""

    def __init__(
        self, inner: GameCatalog, redis: aioredis.Redis, *, ttl_seconds: int, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self.inner = inner
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.prefix = prefix

    def _item_key(self, item_id: str) -> str:
        return f"{self.prefix}:item:{item_id}"

    def _gen_key(self, item_id: str) -> str:
        return f"{self.prefix}:gen:{item_id}"

    async def get_items(self, item_ids: Sequence[str], *, region: str) -> dict[str, CatalogItem]:
        ids = list(dict.fromkeys(item_ids))
        if self.ttl_seconds <= 0:
            return await self.inner.get_items(ids, region=region)
        try:
            cached, generations = await self._read(ids, region)
        except RedisError as exc:
            log.warning("catalog_cache_unavailable", error=type(exc).__name__)
            return await self.inner.get_items(ids, region=region)
        missing = [i for i in ids if i not in cached]
        if not missing:
            return cached
        fetched = await self.inner.get_items(missing, region=region)
        try:
            for item_id, item in fetched.items():
                await self._store(item, region=region, generation=generations[item_id])
        except RedisError as exc:
            log.warning("catalog_cache_unavailable", error=type(exc).__name__)
        return {**cached, **fetched}

    async def _read(self, ids: list[str], region: str) -> tuple[dict[str, CatalogItem], dict[str, str]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.hget(self._item_key(item_id), region)
                pipe.get(self._gen_key(item_id))
            raw = await pipe.execute()
        cached: dict[str, CatalogItem] = {}
        generations: dict[str, str] = {}
        for n, item_id in enumerate(ids):
            value, gen = raw[2 * n], raw[2 * n + 1]
            generations[item_id] = _text(gen) if gen is not None else "0"
            if value is not None:
                try:
                    cached[item_id] = CatalogItem.from_json(orjson.loads(value))
                except (ValueError, KeyError, TypeError):
                    log.warning("catalog_cache_entry_unreadable", item_id=item_id)
        return cached, generations

    async def _store(self, item: CatalogItem, *, region: str, generation: str) -> None:
        payload = orjson.dumps(item.to_json()).decode()
        await self.redis.eval(
            _STORE_IF_CURRENT,
            2,
            self._item_key(item.item_id),
            self._gen_key(item.item_id),
            generation,
            str(self.ttl_seconds),
            region,
            payload,
        )

    async def invalidate(self, item_ids: Sequence[str]) -> None:
        """Forget ``item_ids`` in every region (see :func:`invalidate`), then tell the inner catalog."""
        await invalidate(self.redis, item_ids, prefix=self.prefix)
        await self.inner.invalidate(item_ids)


async def invalidate(redis: aioredis.Redis, item_ids: Sequence[str], *, prefix: str = DEFAULT_PREFIX) -> None:
    """Forget ``item_ids`` in every region and bump their generations (so that an answer fetched
    before now is not stored after now). Raises RedisError: the caller retries, because a lost
    invalidation would keep a stale price until the entry expires."""
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        return
    async with redis.pipeline(transaction=True) as pipe:
        for item_id in ids:
            pipe.incr(f"{prefix}:gen:{item_id}")
            pipe.expire(f"{prefix}:gen:{item_id}", GENERATION_TTL_SECONDS)
            pipe.delete(f"{prefix}:item:{item_id}")
        await pipe.execute()
